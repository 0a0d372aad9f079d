//! Compiles device rules into a `BPF_PROG_TYPE_CGROUP_DEVICE` program (pure; loading is in
//! `bpf.rs`).
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where `access_type` is `(BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*`, and returns 1 to allow.
//! Rules follow OCI order with the last matching rule winning, so they are emitted last to
//! first; a device no rule matches is allowed, like a fresh v1 cgroup.

use crate::devices::{DevKind, DeviceRule, ACC_ALL};

/// One `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(super) struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR

// Registers: R1 = ctx on entry; R2 = device type, R3 = requested access, R4 = major,
// R5 = minor; R1 is reused as scratch once the context is read.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// Device numbers are validated to 12/20 bits, so they fit an immediate.
fn imm(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn verdict(allow: bool) -> [Insn; 2] {
    [
        insn(ALU32_MOV_K, R0, 0, 0, i32::from(allow)),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// The checks for one rule, each jumping past the rule's verdict on mismatch.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    // A placeholder offset of 0 marks "jump to the end of this block", fixed up below.
    let mut block = Vec::new();
    match rule.kind {
        DevKind::All => {}
        DevKind::Char => block.push(insn(JMP_JNE_K, R2, 0, 0, DEV_CHAR)),
        DevKind::Block => block.push(insn(JMP_JNE_K, R2, 0, 0, DEV_BLOCK)),
    }
    if rule.access != ACC_ALL {
        // Matches only if every requested access bit is in the rule.
        block.push(insn(ALU32_MOV_X, R1, R3, 0, 0));
        block.push(insn(ALU32_AND_K, R1, 0, 0, imm(rule.access)));
        block.push(insn(JMP_JNE_X, R1, R3, 0, 0));
    }
    if let Some(major) = rule.major {
        block.push(insn(JMP_JNE_K, R4, 0, 0, imm(major)));
    }
    if let Some(minor) = rule.minor {
        block.push(insn(JMP_JNE_K, R5, 0, 0, imm(minor)));
    }
    let len = block.len() + 2;
    for (i, ins) in block.iter_mut().enumerate() {
        if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
            ins.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
        }
    }
    block.extend(verdict(rule.allow));
    block
}

pub(super) fn compile(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        if rule.is_catch_all() {
            // Nothing before a catch-all can match: it is the default.
            prog.extend(verdict(rule.allow));
            return prog;
        }
        prog.extend(rule_block(rule));
    }
    prog.extend(verdict(true));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE};

    /// A minimal eBPF interpreter for the instructions `compile` emits, so the encoding is
    /// checked against an independent reading of the rules.
    fn run(prog: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
            let k = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from ctx");
                    r[dst] = u64::from(ctx[usize::try_from(i.off / 4).expect("offset")]);
                }
                ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (k as u32)),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> k),
                ALU32_MOV_K => r[dst] = u64::from(k as u32),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                JMP_JNE_K if r[dst] != k => pc += usize::try_from(i.off).expect("fwd"),
                JMP_JNE_X if r[dst] != r[src] => pc += usize::try_from(i.off).expect("fwd"),
                JMP_JNE_K | JMP_JNE_X => {}
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// The reference semantics: last matching rule wins, default allow.
    fn reference(rules: &[DeviceRule], kind: DevKind, access: u32, major: u32, minor: u32) -> bool {
        rules
            .iter()
            .rev()
            .find(|r| {
                (r.kind == DevKind::All || r.kind == kind)
                    && access & !r.access == 0
                    && r.major.is_none_or(|m| m == major)
                    && r.minor.is_none_or(|m| m == minor)
            })
            .is_none_or(|r| r.allow)
    }

    fn rule(
        allow: bool,
        kind: DevKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: u32,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn program_agrees_with_reference_semantics() {
        let docker_like = vec![
            rule(false, DevKind::All, None, None, ACC_ALL),
            rule(true, DevKind::Char, Some(1), Some(3), ACC_READ | ACC_WRITE),
            rule(true, DevKind::Char, Some(136), None, ACC_ALL),
            rule(true, DevKind::All, None, None, ACC_MKNOD),
            rule(false, DevKind::Char, Some(136), Some(7), ACC_WRITE),
        ];
        let blacklist = vec![rule(false, DevKind::Block, Some(8), None, ACC_READ)];
        for rules in [docker_like, blacklist, Vec::new()] {
            let prog = compile(&rules);
            for kind in [DevKind::Char, DevKind::Block] {
                for access in 1..=ACC_ALL {
                    for (major, minor) in [(1, 3), (1, 5), (136, 7), (136, 0), (8, 0), (4095, 0)] {
                        let ty = if kind == DevKind::Char {
                            DEV_CHAR
                        } else {
                            DEV_BLOCK
                        };
                        let ctx = [(access << 16) | ty as u32, major, minor];
                        let want = reference(&rules, kind, access, major, minor);
                        assert_eq!(
                            run(&prog, ctx) == 1,
                            want,
                            "{rules:?} {kind:?} {access} {major}:{minor}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn catch_all_ends_the_program() {
        let rules = [
            rule(true, DevKind::Char, Some(1), Some(3), ACC_ALL),
            rule(false, DevKind::All, None, None, ACC_ALL),
        ];
        assert_eq!(compile(&rules).len(), 6 + 2);
    }
}
