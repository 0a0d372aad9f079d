//! A small classic-BPF assembler with symbolic labels.
//!
//! Classic BPF only jumps forward and a conditional jump's offsets are 8 bits wide. Code is
//! emitted against labels; [`Assembler::finish`] lays it out and, wherever a conditional target
//! is more than 255 instructions away, routes that branch through an unconditional `ja` (32-bit
//! offset) placed right after the jump. A trampoline can only lengthen other jumps, so the
//! layout is repeated until no further jump needs one; that terminates because each jump gains
//! at most two.

use libc::sock_filter;

use crate::SeccompError;

/// The kernel's limit on a classic BPF program's length.
pub(crate) const BPF_MAXINSNS: usize = 4096;
/// The longest distance an 8-bit conditional offset can encode.
const MAX_SHORT_JUMP: usize = 255;

const OP_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const OP_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const OP_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const OP_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// A position in the program, bound exactly once with [`Assembler::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Label(usize);

/// The conditional jumps classic BPF offers (all compare the accumulator with a constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    /// `A == k`
    Eq,
    /// `A > k` (unsigned)
    Gt,
    /// `A >= k` (unsigned)
    Ge,
}

impl Cmp {
    fn opcode(self) -> u16 {
        let op = match self {
            Cmp::Eq => libc::BPF_JEQ,
            Cmp::Gt => libc::BPF_JGT,
            Cmp::Ge => libc::BPF_JGE,
        };
        (libc::BPF_JMP | op | libc::BPF_K) as u16
    }
}

enum Op {
    Load(u32),
    And(u32),
    Jump {
        cmp: Cmp,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Goto(Label),
    Ret(u32),
    Bind(Label),
}

/// Which branches of a conditional jump go through a trampoline.
#[derive(Clone, Copy, Default)]
struct Far {
    on_true: bool,
    on_false: bool,
}

impl Far {
    fn extra(self) -> usize {
        usize::from(self.on_true) + usize::from(self.on_false)
    }
}

/// Collects instructions against labels; see the module docs for the layout.
#[derive(Default)]
pub(crate) struct Assembler {
    ops: Vec<Op>,
    labels: usize,
}

impl Assembler {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A fresh, unbound label.
    pub(crate) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    /// Binds `label` to the next instruction emitted.
    pub(crate) fn bind(&mut self, label: Label) {
        self.ops.push(Op::Bind(label));
    }

    /// `A = seccomp_data[offset..offset + 4]`
    pub(crate) fn load(&mut self, offset: u32) {
        self.ops.push(Op::Load(offset));
    }

    /// `A &= k`
    pub(crate) fn and(&mut self, k: u32) {
        self.ops.push(Op::And(k));
    }

    /// Go to `jt` if `A <cmp> k`, else to `jf`.
    pub(crate) fn jump(&mut self, cmp: Cmp, k: u32, jt: Label, jf: Label) {
        self.ops.push(Op::Jump { cmp, k, jt, jf });
    }

    /// Unconditional jump.
    pub(crate) fn goto(&mut self, target: Label) {
        self.ops.push(Op::Goto(target));
    }

    /// Ends the program with the seccomp action `value`.
    pub(crate) fn ret(&mut self, value: u32) {
        self.ops.push(Op::Ret(value));
    }

    /// Lays the program out and encodes it.
    pub(crate) fn finish(self) -> Result<Vec<sock_filter>, SeccompError> {
        let mut far = vec![Far::default(); self.ops.len()];
        let (pcs, labels, len) = loop {
            let (pcs, labels, len) = self.layout(&far)?;
            let mut changed = false;
            for (i, op) in self.ops.iter().enumerate() {
                if let Op::Jump { jt, jf, .. } = op {
                    let next = pcs[i] + 1;
                    if !far[i].on_true && distance(next, resolve(&labels, *jt)?)? > MAX_SHORT_JUMP {
                        far[i].on_true = true;
                        changed = true;
                    }
                    if !far[i].on_false && distance(next, resolve(&labels, *jf)?)? > MAX_SHORT_JUMP
                    {
                        far[i].on_false = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break (pcs, labels, len);
            }
        };
        if len > BPF_MAXINSNS {
            return Err(SeccompError::TooLarge {
                len,
                max: BPF_MAXINSNS,
            });
        }

        let mut out = Vec::with_capacity(len);
        for (i, op) in self.ops.iter().enumerate() {
            let pc = pcs[i];
            match *op {
                Op::Bind(_) => {}
                Op::Load(off) => out.push(stmt(OP_LD_W_ABS, off)),
                Op::And(k) => out.push(stmt(OP_AND_K, k)),
                Op::Ret(k) => out.push(stmt(OP_RET_K, k)),
                Op::Goto(target) => out.push(ja(pc, resolve(&labels, target)?)?),
                Op::Jump { cmp, k, jt, jf } => {
                    let (t, f) = (resolve(&labels, jt)?, resolve(&labels, jf)?);
                    let Far { on_true, on_false } = far[i];
                    // A far branch lands on its trampoline: the true one sits at pc+1, the false
                    // one after it.
                    let jt_off = if on_true {
                        0
                    } else {
                        short(distance(pc + 1, t)?)?
                    };
                    let jf_off = if on_false {
                        u8::from(on_true)
                    } else {
                        short(distance(pc + 1, f)?)?
                    };
                    out.push(sock_filter {
                        code: cmp.opcode(),
                        jt: jt_off,
                        jf: jf_off,
                        k,
                    });
                    if on_true {
                        out.push(ja(pc + 1, t)?);
                    }
                    if on_false {
                        out.push(ja(pc + 1 + usize::from(on_true), f)?);
                    }
                }
            }
        }
        if out.len() != len {
            return Err(SeccompError::Internal(
                "BPF layout and encoding disagree on length",
            ));
        }
        Ok(out)
    }

    /// Program counter of every op, address of every label, and the total length.
    #[allow(clippy::type_complexity)]
    fn layout(&self, far: &[Far]) -> Result<(Vec<usize>, Vec<Option<usize>>, usize), SeccompError> {
        let mut pcs = Vec::with_capacity(self.ops.len());
        let mut labels = vec![None; self.labels];
        let mut pc = 0;
        for (op, far) in self.ops.iter().zip(far) {
            pcs.push(pc);
            match op {
                Op::Bind(Label(l)) => {
                    let slot = labels
                        .get_mut(*l)
                        .ok_or(SeccompError::Internal("label from another assembler"))?;
                    if slot.replace(pc).is_some() {
                        return Err(SeccompError::Internal("label bound twice"));
                    }
                }
                Op::Jump { .. } => pc += 1 + far.extra(),
                _ => pc += 1,
            }
        }
        Ok((pcs, labels, pc))
    }
}

fn resolve(labels: &[Option<usize>], Label(l): Label) -> Result<usize, SeccompError> {
    labels
        .get(l)
        .copied()
        .flatten()
        .ok_or(SeccompError::Internal("jump to an unbound label"))
}

/// Offset from the instruction after a jump (`next`) to `target`; BPF cannot jump backwards.
fn distance(next: usize, target: usize) -> Result<usize, SeccompError> {
    target
        .checked_sub(next)
        .ok_or(SeccompError::Internal("backward jump"))
}

fn short(offset: usize) -> Result<u8, SeccompError> {
    u8::try_from(offset).map_err(|_| SeccompError::Internal("short jump out of range"))
}

fn ja(pc: usize, target: usize) -> Result<sock_filter, SeccompError> {
    let off = u32::try_from(distance(pc + 1, target)?)
        .map_err(|_| SeccompError::Internal("jump beyond 32-bit range"))?;
    Ok(stmt(OP_JA, off))
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{run, Data};

    #[test]
    fn short_program_encodes_directly() {
        let mut a = Assembler::new();
        let (yes, no) = (a.label(), a.label());
        a.load(0);
        a.jump(Cmp::Eq, 7, yes, no);
        a.bind(no);
        a.ret(1);
        a.bind(yes);
        a.ret(2);
        let prog = a.finish().unwrap();
        assert_eq!(prog.len(), 4);
        assert_eq!((prog[1].jt, prog[1].jf), (1, 0));
        assert_eq!(run(&prog, &Data::nr(7)), Ok(2));
        assert_eq!(run(&prog, &Data::nr(8)), Ok(1));
    }

    /// `jge` over a gap of `gap` returns, then the two targets.
    fn far_program(gap: usize) -> Vec<sock_filter> {
        let mut a = Assembler::new();
        let (set, clear) = (a.label(), a.label());
        a.load(0);
        a.jump(Cmp::Ge, 0x10, set, clear);
        for _ in 0..gap {
            a.ret(0xdead);
        }
        a.bind(clear);
        a.ret(1);
        for _ in 0..gap {
            a.ret(0xbeef);
        }
        a.bind(set);
        a.ret(2);
        a.finish().unwrap()
    }

    #[test]
    fn far_targets_get_trampolines() {
        for gap in [0, 254, 255, 256, 300, 1000] {
            let prog = far_program(gap);
            assert_eq!(run(&prog, &Data::nr(0x10)), Ok(2), "gap {gap}");
            assert_eq!(run(&prog, &Data::nr(0x01)), Ok(1), "gap {gap}");
        }
        // Only the far branches pay for a trampoline.
        assert_eq!(far_program(100).len(), 2 + 1 + 100 + 1 + 100);
        assert_eq!(far_program(300).len(), 2 + 2 + 300 + 1 + 300 + 1);
    }

    #[test]
    fn trampolines_cascade_until_stable() {
        // Many jumps whose targets sit right at the 255 boundary: each trampoline inserted
        // pushes the next jump's target out of range too.
        let mut a = Assembler::new();
        let end = a.label();
        let hits: Vec<Label> = (0..40).map(|_| a.label()).collect();
        a.load(0);
        for (i, hit) in hits.iter().enumerate() {
            let next = a.label();
            a.jump(Cmp::Eq, i as u32, *hit, next);
            a.bind(next);
        }
        a.goto(end);
        for _ in 0..230 {
            a.ret(0xdead);
        }
        for (i, hit) in hits.iter().enumerate() {
            a.bind(*hit);
            a.ret(1000 + i as u32);
        }
        a.bind(end);
        a.ret(7);
        let prog = a.finish().unwrap();
        for i in 0..40 {
            assert_eq!(run(&prog, &Data::nr(i)), Ok(1000 + i));
        }
        assert_eq!(run(&prog, &Data::nr(99)), Ok(7));
    }

    #[test]
    fn label_misuse_is_an_error_not_a_panic() {
        let mut a = Assembler::new();
        let l = a.label();
        a.goto(l);
        assert!(matches!(a.finish(), Err(SeccompError::Internal(_))));

        let mut a = Assembler::new();
        let l = a.label();
        a.bind(l);
        a.ret(0);
        a.goto(l);
        assert!(matches!(
            a.finish(),
            Err(SeccompError::Internal("backward jump"))
        ));

        let mut a = Assembler::new();
        let l = a.label();
        a.bind(l);
        a.bind(l);
        a.ret(0);
        assert!(matches!(
            a.finish(),
            Err(SeccompError::Internal("label bound twice"))
        ));
    }

    #[test]
    fn oversized_programs_are_rejected() {
        let mut a = Assembler::new();
        for _ in 0..=BPF_MAXINSNS {
            a.ret(0);
        }
        assert!(matches!(
            a.finish(),
            Err(SeccompError::TooLarge { len: 4097, .. })
        ));
    }
}
