//! OCI `linux.seccomp` -> classic BPF.
//!
//! Program shape:
//! ```text
//!   ld arch; jeq X86_64 -> S64; jeq I386 -> S32; ret KILL_PROCESS      (foreign arch)
//!   S64: ld nr; binary search over nr ranges -> one target per range
//!        targets: `ret <action>` or a rule block for syscalls with argument conditions
//!   S32: the same for i386
//! ```
//! x32 shares `AUDIT_ARCH_X86_64` and is told apart by the 0x40000000 bit in `nr`, so the x86_64
//! section's ranges cover both: below the bit x86_64 numbers, at or above it x32 numbers (or the
//! bad-arch kill when x32 is not in the filter). Ranges are merged before the search tree is
//! built, so a whole run of allowed syscalls costs one comparison. Argument conditions compare
//! full 64-bit values on x86_64 and, like libseccomp, only the low 32 bits on i386 and x32.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

use crate::bpf::{Assembler, Cmp, Label};
use crate::syscalls::{syscall_number, Arch, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use crate::{Filter, SeccompError};

/// `offsetof(struct seccomp_data, nr)`
const OFF_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`
const OFF_ARCH: u32 = 4;
/// `offsetof(struct seccomp_data, args)`; each argument is a little-endian u64.
const OFF_ARGS: u32 = 16;
/// libseccomp's default bad-arch action is a kill; take the whole process so a multi-threaded
/// program cannot keep running with one thread gone.
const RET_BAD_ARCH: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS.unsigned_abs();
const MAX_ARGS: usize = 6;

/// Compiles `spec` for an x86_64 host. See the crate docs for the semantics.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::Unsupported(
            "the seccomp compiler only targets x86_64 hosts".into(),
        ));
    }
    let default = action_value(spec.default_action(), spec.default_errno_ret())?;
    let flags = filter_flags(spec.flags().as_deref().unwrap_or_default())?;
    let listed = spec
        .architectures()
        .iter()
        .flatten()
        .map(|a| Arch::from_oci(*a))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let rules = spec
        .syscalls()
        .iter()
        .flatten()
        .map(Rule::from_oci)
        .collect::<Result<Vec<_>, _>>()?;
    let program = Plan {
        default,
        listed,
        rules,
    }
    .generate()?;
    Ok(Filter::new(program, flags))
}

/// The 32-bit `SECCOMP_RET_*` value for an action (`errno` defaults to EPERM like runc).
fn action_value(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    let data = || {
        let errno = errno.unwrap_or(libc::EPERM.unsigned_abs());
        if errno > libc::SECCOMP_RET_DATA {
            return Err(SeccompError::InvalidProfile(format!(
                "errno return value {errno} does not fit in 16 bits"
            )));
        }
        Ok(errno)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data()?,
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | data()?,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported(
                "SCMP_ACT_NOTIFY (seccomp user notification)".into(),
            ))
        }
    })
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> Result<libc::c_ulong, SeccompError> {
    flags.iter().try_fold(0, |acc, flag| {
        Ok(acc
            | match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    return Err(SeccompError::Unsupported(
                        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (needs SCMP_ACT_NOTIFY)".into(),
                    ))
                }
            })
    })
}

/// One `syscalls[]` entry, validated.
struct Rule {
    names: Vec<String>,
    action: u32,
    conds: Vec<Cond>,
}

/// One argument condition; `value` is the mask and `value_two` the datum for MASKED_EQ.
#[derive(Clone, Copy)]
struct Cond {
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

impl Rule {
    fn from_oci(sc: &LinuxSyscall) -> Result<Rule, SeccompError> {
        let action = action_value(sc.action(), sc.errno_ret())?;
        let conds = sc
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let index = u32::try_from(a.index())
                    .ok()
                    .filter(|i| (*i as usize) < MAX_ARGS)
                    .ok_or_else(|| {
                        SeccompError::InvalidProfile(format!(
                            "syscalls {:?}: argument index {} is not in 0..{MAX_ARGS}",
                            sc.names(),
                            a.index()
                        ))
                    })?;
                Ok(Cond {
                    index,
                    op: a.op(),
                    value: a.value(),
                    value_two: a.value_two().unwrap_or(0),
                })
            })
            .collect::<Result<_, SeccompError>>()?;
        Ok(Rule {
            names: sc.names().clone(),
            action,
            conds,
        })
    }
}

/// Where a range of syscall numbers goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Ret(u32),
    /// A rule block: index into [`Blocks::list`].
    Rules(usize),
}

/// A run of syscall numbers starting at `start` and ending where the next segment starts.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u32,
    target: Target,
}

/// Numbers `lo..=hi` of one `AUDIT_ARCH` section, interpreted with `arch`'s table, or killed as
/// a foreign architecture when `arch` is None.
struct Part {
    arch: Option<Arch>,
    lo: u32,
    hi: u32,
}

struct Plan {
    default: u32,
    /// Architectures the spec names (x86_64 is always covered, like libseccomp's native arch).
    listed: BTreeSet<Arch>,
    rules: Vec<Rule>,
}

impl Plan {
    fn generate(&self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut asm = Assembler::new();
        let (s64, s32, bad) = (asm.label(), asm.label(), asm.label());
        asm.load(OFF_ARCH);
        let with_x86 = self.listed.contains(&Arch::X86);
        if with_x86 {
            let next = asm.label();
            asm.jump(Cmp::Eq, AUDIT_ARCH_X86_64, s64, next);
            asm.bind(next);
            asm.jump(Cmp::Eq, AUDIT_ARCH_I386, s32, bad);
        } else {
            asm.jump(Cmp::Eq, AUDIT_ARCH_X86_64, s64, bad);
        }
        asm.bind(bad);
        asm.ret(RET_BAD_ARCH);

        let x32 = self.listed.contains(&Arch::X32).then_some(Arch::X32);
        self.section(
            &mut asm,
            s64,
            &[
                Part {
                    arch: Some(Arch::X86_64),
                    lo: 0,
                    hi: X32_SYSCALL_BIT - 1,
                },
                Part {
                    arch: x32,
                    lo: X32_SYSCALL_BIT,
                    hi: u32::MAX,
                },
            ],
        )?;
        if with_x86 {
            self.section(
                &mut asm,
                s32,
                &[Part {
                    arch: Some(Arch::X86),
                    lo: 0,
                    hi: u32::MAX,
                }],
            )?;
        }
        asm.finish()
    }

    /// runc's enosys stub: unless the default action lets syscalls through, numbers above the
    /// highest one the profile names return ENOSYS, so programs fall back from syscalls newer
    /// than the profile instead of failing with the default errno. Like runc, only for
    /// architectures the spec lists.
    fn enosys_above(&self, arch: Arch, highest: Option<u32>) -> Option<u32> {
        let allows = matches!(
            self.default & libc::SECCOMP_RET_ACTION_FULL,
            libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE
        );
        if allows || !self.listed.contains(&arch) {
            return None;
        }
        highest
    }

    /// Emits one `AUDIT_ARCH` section at `entry`: the search tree, then its targets.
    fn section(
        &self,
        asm: &mut Assembler,
        entry: Label,
        parts: &[Part],
    ) -> Result<(), SeccompError> {
        let mut dispatch = Dispatch::default();
        for part in parts {
            match part.arch {
                Some(arch) => self.plan_part(&mut dispatch, part, arch),
                None => {
                    dispatch.segments.push(part.lo, Target::Ret(RET_BAD_ARCH));
                    // nr -1 is how a tracer skips a syscall; it runs nothing, so it is no sign
                    // of a foreign ABI and must not kill.
                    if part.hi == u32::MAX {
                        dispatch.segments.push(u32::MAX, Target::Ret(self.default));
                    }
                }
            }
        }
        let segments = dispatch.segments.0;

        let mut targets = Targets::default();
        asm.bind(entry);
        asm.load(OFF_NR);
        match segments.as_slice() {
            [] => return Err(SeccompError::Internal("empty syscall range table")),
            [only] => {
                let l = targets.label(asm, only.target);
                asm.goto(l);
            }
            _ => {
                let root = asm.label();
                search_tree(asm, &mut targets, &segments, root);
            }
        }
        for (target, label) in targets.order {
            asm.bind(label);
            match target {
                Target::Ret(value) => asm.ret(value),
                Target::Rules(id) => {
                    let block = dispatch
                        .blocks
                        .list
                        .get(id)
                        .ok_or(SeccompError::Internal("rule block without rules"))?;
                    self.rule_block(asm, block);
                }
            }
        }
        Ok(())
    }

    /// Adds the segments for `part`, whose numbers belong to `arch`.
    fn plan_part(&self, dispatch: &mut Dispatch, part: &Part, arch: Arch) {
        // Indices of the applicable rules per syscall number, in profile order.
        let mut by_nr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let mut highest = None;
        for (index, rule) in self.rules.iter().enumerate() {
            for nr in rule.names.iter().filter_map(|n| syscall_number(n, arch)) {
                highest = highest.max(Some(nr));
                // Rules that repeat the default action change nothing (runc drops them).
                if rule.action != self.default {
                    let list = by_nr.entry(nr).or_default();
                    if list.last() != Some(&index) {
                        list.push(index);
                    }
                }
            }
        }
        let segments = &mut dispatch.segments;
        let mut cursor = u64::from(part.lo);
        for (nr, rules) in by_nr {
            if u64::from(nr) > cursor {
                segments.push_at(cursor, Target::Ret(self.default));
            }
            let first = &self.rules[rules[0]];
            let target = if first.conds.is_empty() {
                Target::Ret(first.action)
            } else {
                let block = Block {
                    rules,
                    wide: arch == Arch::X86_64,
                };
                Target::Rules(dispatch.blocks.id(block))
            };
            segments.push(nr, target);
            cursor = u64::from(nr) + 1;
        }
        match self.enosys_above(arch, highest).map(|h| u64::from(h) + 1) {
            Some(start) if start <= u64::from(part.hi) => {
                if start > cursor {
                    segments.push_at(cursor, Target::Ret(self.default));
                }
                segments.push_at(start, Target::Ret(RET_ENOSYS));
            }
            _ => segments.push_at(cursor, Target::Ret(self.default)),
        }
    }

    /// First matching rule wins; a rule matches when all its conditions hold.
    fn rule_block(&self, asm: &mut Assembler, block: &Block) {
        for rule in block.rules.iter().map(|i| &self.rules[*i]) {
            if rule.conds.is_empty() {
                asm.ret(rule.action);
                return;
            }
            let next = asm.label();
            for cond in &rule.conds {
                condition(asm, *cond, block.wide, next);
            }
            asm.ret(rule.action);
            asm.bind(next);
        }
        asm.ret(self.default);
    }
}

/// The rules a syscall number is checked against, and whether its ABI has 64-bit arguments.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Block {
    rules: Vec<usize>,
    wide: bool,
}

/// Segments of one section plus the rule blocks they point at.
#[derive(Default)]
struct Dispatch {
    segments: Segments,
    blocks: Blocks,
}

/// Interned rule blocks: syscalls with the same rule list share one, so a conditional rule
/// naming many syscalls is emitted once.
#[derive(Default)]
struct Blocks {
    list: Vec<Block>,
    ids: HashMap<Block, usize>,
}

impl Blocks {
    fn id(&mut self, block: Block) -> usize {
        let list = &mut self.list;
        *self.ids.entry(block).or_insert_with_key(|b| {
            list.push(b.clone());
            list.len() - 1
        })
    }
}

/// Ordered, merged segments covering the 32-bit syscall-number space.
#[derive(Default)]
struct Segments(Vec<Segment>);

impl Segments {
    fn push(&mut self, start: u32, target: Target) {
        if self.0.last().is_some_and(|s| s.target == target) {
            return;
        }
        self.0.push(Segment { start, target });
    }

    /// `push` for a start computed in u64: beyond u32::MAX there is nothing left to cover.
    fn push_at(&mut self, start: u64, target: Target) {
        if let Ok(start) = u32::try_from(start) {
            self.push(start, target);
        }
    }
}

/// One label per distinct target, emitted in first-use order after the search tree.
#[derive(Default)]
struct Targets {
    labels: HashMap<Target, Label>,
    order: Vec<(Target, Label)>,
}

impl Targets {
    fn label(&mut self, asm: &mut Assembler, target: Target) -> Label {
        if let Some(l) = self.labels.get(&target) {
            return *l;
        }
        let l = asm.label();
        self.labels.insert(target, l);
        self.order.push((target, l));
        l
    }
}

/// Emits a balanced binary search over `segs` (at least two) at `label`.
fn search_tree(asm: &mut Assembler, targets: &mut Targets, segs: &[Segment], label: Label) {
    let (left, right) = segs.split_at(segs.len() / 2);
    let mut child = |asm: &mut Assembler, part: &[Segment]| match part {
        [only] => (targets.label(asm, only.target), false),
        _ => (asm.label(), true),
    };
    let (l_label, l_tree) = child(asm, left);
    let (r_label, r_tree) = child(asm, right);
    asm.bind(label);
    asm.jump(Cmp::Ge, right[0].start, r_label, l_label);
    if l_tree {
        search_tree(asm, targets, left, l_label);
    }
    if r_tree {
        search_tree(asm, targets, right, r_label);
    }
}

/// Emits an argument comparison: falls through when it holds, jumps to `fail` when it does not.
///
/// A 64-bit ABI (`wide`) compares the full u64 from its 32-bit halves: the high halves decide
/// unless they are equal, then the low halves do. Like libseccomp, 32-bit ABIs (i386, x32)
/// compare only the low halves of the argument and the value.
fn condition(asm: &mut Assembler, cond: Cond, wide: bool, fail: Label) {
    use LinuxSeccompOperator as Op;

    let lo_off = OFF_ARGS + 8 * cond.index;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (vh, vl) = split(cond.value);
    let (dh, dl) = split(cond.value_two);
    let ok = asm.label();
    let step = |asm: &mut Assembler, cmp, k, jt: Option<Label>, jf: Option<Label>| {
        // `None` means "the next instruction".
        let next = asm.label();
        asm.jump(cmp, k, jt.unwrap_or(next), jf.unwrap_or(next));
        asm.bind(next);
    };
    if wide {
        asm.load(lo_off + 4);
        match cond.op {
            Op::ScmpCmpEq => step(asm, Cmp::Eq, vh, None, Some(fail)),
            Op::ScmpCmpNe => step(asm, Cmp::Eq, vh, None, Some(ok)),
            Op::ScmpCmpGt | Op::ScmpCmpGe => {
                step(asm, Cmp::Gt, vh, Some(ok), None);
                step(asm, Cmp::Eq, vh, None, Some(fail));
            }
            Op::ScmpCmpLt | Op::ScmpCmpLe => {
                step(asm, Cmp::Gt, vh, Some(fail), None);
                step(asm, Cmp::Eq, vh, None, Some(ok));
            }
            Op::ScmpCmpMaskedEq => {
                asm.and(vh);
                step(asm, Cmp::Eq, dh, None, Some(fail));
            }
        }
    }
    asm.load(lo_off);
    match cond.op {
        Op::ScmpCmpEq => asm.jump(Cmp::Eq, vl, ok, fail),
        Op::ScmpCmpNe => asm.jump(Cmp::Eq, vl, fail, ok),
        Op::ScmpCmpGt => asm.jump(Cmp::Gt, vl, ok, fail),
        Op::ScmpCmpGe => asm.jump(Cmp::Ge, vl, ok, fail),
        // a < v is !(a >= v); a <= v is !(a > v).
        Op::ScmpCmpLt => asm.jump(Cmp::Ge, vl, fail, ok),
        Op::ScmpCmpLe => asm.jump(Cmp::Gt, vl, fail, ok),
        Op::ScmpCmpMaskedEq => {
            asm.and(vl);
            asm.jump(Cmp::Eq, dl, ok, fail);
        }
    }
    asm.bind(ok);
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{Arch as OciArch, LinuxSeccompArg};
    use serde_json::json;

    use super::*;
    use crate::test_utils::{run, Data};

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;
    const ENOSYS: u32 = RET_ENOSYS;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn spec(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    fn nr(name: &str) -> u32 {
        syscall_number(name, Arch::X86_64).unwrap()
    }

    fn eval(spec: &LinuxSeccomp, data: Data) -> u32 {
        let filter = compile(spec).unwrap();
        let got = run(filter.instructions(), &data).unwrap();
        assert_eq!(
            got,
            reference(spec, &data),
            "interpreter vs reference for {data:?}"
        );
        got
    }

    /// `arch` decides the width: i386 and x32 compare low 32 bits only, like libseccomp.
    fn holds(cond: &LinuxSeccompArg, arch: Arch, arg: u64) -> bool {
        let width = |x: u64| {
            if arch == Arch::X86_64 {
                x
            } else {
                x & 0xffff_ffff
            }
        };
        let (v, arg, two) = (
            width(cond.value()),
            width(arg),
            width(cond.value_two().unwrap_or(0)),
        );
        match cond.op() {
            LinuxSeccompOperator::ScmpCmpNe => arg != v,
            LinuxSeccompOperator::ScmpCmpLt => arg < v,
            LinuxSeccompOperator::ScmpCmpLe => arg <= v,
            LinuxSeccompOperator::ScmpCmpEq => arg == v,
            LinuxSeccompOperator::ScmpCmpGe => arg >= v,
            LinuxSeccompOperator::ScmpCmpGt => arg > v,
            LinuxSeccompOperator::ScmpCmpMaskedEq => arg & v == two,
        }
    }

    /// The intended semantics written directly over the spec, as the oracle for the program.
    fn reference(spec: &LinuxSeccomp, data: &Data) -> u32 {
        let default = action_value(spec.default_action(), spec.default_errno_ret()).unwrap();
        let listed: BTreeSet<Arch> = spec
            .architectures()
            .iter()
            .flatten()
            .map(|a| Arch::from_oci(*a).unwrap())
            .collect();
        let arch = match data.arch {
            // Like libseccomp: everything from the x32 bit up belongs to x32.
            AUDIT_ARCH_X86_64 if data.nr < X32_SYSCALL_BIT => Arch::X86_64,
            AUDIT_ARCH_X86_64 if listed.contains(&Arch::X32) => Arch::X32,
            AUDIT_ARCH_X86_64 if data.nr == u32::MAX => return default,
            AUDIT_ARCH_I386 if listed.contains(&Arch::X86) => Arch::X86,
            _ => return KILL_PROCESS,
        };
        let rules = spec.syscalls().clone().unwrap_or_default();
        for rule in &rules {
            let action = action_value(rule.action(), rule.errno_ret()).unwrap();
            let named = rule
                .names()
                .iter()
                .any(|n| syscall_number(n, arch) == Some(data.nr));
            let args = rule.args().clone().unwrap_or_default();
            if action != default
                && named
                && args.iter().all(|c| holds(c, arch, data.args[c.index()]))
            {
                return action;
            }
        }
        let highest = rules
            .iter()
            .flat_map(|r| r.names().iter().filter_map(|n| syscall_number(n, arch)))
            .max();
        let allows = matches!(
            default & 0xffff_0000,
            ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE
        );
        match highest {
            Some(h) if !allows && listed.contains(&arch) && data.nr > h => ENOSYS,
            _ => default,
        }
    }

    #[test]
    fn errno_rule_denies_only_its_syscall() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert_eq!(eval(&s, Data::nr(nr("mkdir"))), EPERM);
        assert_eq!(eval(&s, Data::nr(nr("mkdirat"))), EPERM);
        assert_eq!(eval(&s, Data::nr(nr("getpid"))), ALLOW);
        assert_eq!(eval(&s, Data::nr(0)), ALLOW);
        assert_eq!(eval(&s, Data::nr(u32::MAX >> 2)), ALLOW);
    }

    #[test]
    fn every_action_encodes_like_libseccomp() {
        let cases = [
            ("SCMP_ACT_KILL", None, 0),
            ("SCMP_ACT_KILL_THREAD", None, 0),
            ("SCMP_ACT_KILL_PROCESS", None, 0x8000_0000),
            ("SCMP_ACT_TRAP", None, 0x0003_0000),
            ("SCMP_ACT_ERRNO", None, 0x0005_0001),
            ("SCMP_ACT_ERRNO", Some(13), 0x0005_000d),
            ("SCMP_ACT_TRACE", Some(7), 0x7ff0_0007),
            ("SCMP_ACT_LOG", None, 0x7ffc_0000),
        ];
        for (action, errno, want) in cases {
            let s = spec(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["uname"], "action": action, "errnoRet": errno}]
            }));
            assert_eq!(eval(&s, Data::nr(nr("uname"))), want, "{action}");
        }
        let s = spec(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}));
        assert_eq!(
            eval(&s, Data::nr(nr("uname"))),
            libc::SECCOMP_RET_ERRNO | 38
        );
    }

    #[test]
    fn notify_and_bad_values_are_rejected() {
        let notify = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(matches!(
            compile(&notify),
            Err(SeccompError::Unsupported(_))
        ));
        let notify_default = spec(json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert!(matches!(
            compile(&notify_default),
            Err(SeccompError::Unsupported(_))
        ));
        let arm =
            spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_ARM"]}));
        assert!(matches!(compile(&arm), Err(SeccompError::Unsupported(_))));
        let index = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]
        }));
        assert!(matches!(
            compile(&index),
            Err(SeccompError::InvalidProfile(_))
        ));
        let errno = spec(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
        assert!(matches!(
            compile(&errno),
            Err(SeccompError::InvalidProfile(_))
        ));
    }

    #[test]
    fn flags_map_to_kernel_bits() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        }));
        assert_eq!(compile(&s).unwrap().flags(), 0b111);
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        }));
        assert!(matches!(compile(&s), Err(SeccompError::Unsupported(_))));
    }

    #[test]
    fn unknown_names_are_skipped() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["no_such_call", "getpid", "socketcall"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(eval(&s, Data::nr(nr("getpid"))), ALLOW);
        assert_eq!(eval(&s, Data::nr(nr("read"))), EPERM);
    }

    #[test]
    fn architectures_and_x32_bit() {
        let only64 = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"}]
        }));
        let i386_getpid = Data::nr(20).arch(AUDIT_ARCH_I386);
        let x32_read = Data::nr(X32_SYSCALL_BIT);
        assert_eq!(eval(&only64, i386_getpid), KILL_PROCESS);
        assert_eq!(eval(&only64, x32_read), KILL_PROCESS);
        assert_eq!(eval(&only64, Data::nr(39).arch(0xc000_00b7)), KILL_PROCESS);
        assert_eq!(eval(&only64, Data::nr(u32::MAX)), EPERM); // a tracer's skipped syscall
        assert_eq!(eval(&only64, Data::nr(u32::MAX - 1)), KILL_PROCESS);

        let all = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getpid", "read", "execve"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(eval(&all, i386_getpid), ALLOW);
        // i386 number 12 is chdir (below the highest named i386 number, so no ENOSYS stub).
        assert_eq!(eval(&all, Data::nr(12).arch(AUDIT_ARCH_I386)), EPERM);
        assert_eq!(eval(&all, x32_read), ALLOW);
        assert_eq!(eval(&all, Data::nr(X32_SYSCALL_BIT + 520)), ALLOW); // x32 execve
        assert_eq!(eval(&all, Data::nr(X32_SYSCALL_BIT + 59)), EPERM); // the 64-bit execve number
        assert_eq!(eval(&all, Data::nr(39)), ALLOW);
    }

    #[test]
    fn thirty_two_bit_abis_compare_low_halves() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]
        }));
        let wide = 0x1_0000_0008;
        assert_eq!(eval(&s, Data::nr(nr("personality")).arg(0, wide)), EPERM);
        let x32 = syscall_number("personality", Arch::X32).unwrap();
        assert_eq!(eval(&s, Data::nr(x32).arg(0, wide)), ALLOW);
        let i386 =
            Data::nr(syscall_number("personality", Arch::X86).unwrap()).arch(AUDIT_ARCH_I386);
        assert_eq!(eval(&s, i386.arg(0, 8)), ALLOW);
        assert_eq!(eval(&s, i386.arg(0, 9)), EPERM);
    }

    #[test]
    fn enosys_for_syscalls_newer_than_the_profile() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
            ]
        }));
        let mkdir = nr("mkdir");
        assert_eq!(eval(&s, Data::nr(mkdir)), EPERM);
        assert_eq!(eval(&s, Data::nr(mkdir - 1)), EPERM);
        assert_eq!(eval(&s, Data::nr(mkdir + 1)), ENOSYS);
        assert_eq!(eval(&s, Data::nr(X32_SYSCALL_BIT - 1)), ENOSYS);
        assert_eq!(eval(&s, Data::nr(X32_SYSCALL_BIT)), KILL_PROCESS);
        // i386: mkdir is 39, the highest named there.
        assert_eq!(eval(&s, Data::nr(21).arch(AUDIT_ARCH_I386)), EPERM);
        assert_eq!(eval(&s, Data::nr(40).arch(AUDIT_ARCH_I386)), ENOSYS);
        // An allowing default needs no stub.
        let allow = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert_eq!(eval(&allow, Data::nr(5)), ALLOW);
    }

    #[test]
    fn conditions_are_anded_and_rules_ored_in_order() {
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_GE"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_KILL"}
            ]
        }));
        let ioctl = Data::nr(nr("ioctl"));
        assert_eq!(eval(&s, ioctl.arg(0, 1).arg(1, 2)), ALLOW);
        assert_eq!(eval(&s, ioctl.arg(0, 1).arg(1, 3)), libc::SECCOMP_RET_TRAP);
        assert_eq!(eval(&s, ioctl.arg(0, 5)), libc::SECCOMP_RET_LOG);
    }

    #[test]
    fn rules_equal_to_the_default_are_dropped() {
        // runc skips them, so the later unconditional ALLOW wins even for arg0 == 1.
        let s = spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["dup"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["dup"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        assert_eq!(eval(&s, Data::nr(nr("dup")).arg(0, 1)), ALLOW);
    }

    #[test]
    fn sixty_four_bit_comparisons_match_reference() {
        let values: [u64; 12] = [
            0,
            1,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0001,
            0x1_ffff_ffff,
            0x8000_0000_0000_0000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let ops = [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ];
        for op in ops {
            for v in values {
                let s = spec(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 3, "value": v, "valueTwo": v & 0xffff_0000_ffff_0000, "op": op}]}]
                }));
                let filter = compile(&s).unwrap();
                for arg in values {
                    let data = Data::nr(nr("write")).arg(3, arg);
                    let got = run(filter.instructions(), &data).unwrap();
                    assert_eq!(got, reference(&s, &data), "{op} value {v:#x} arg {arg:#x}");
                }
            }
        }
    }

    #[test]
    fn huge_profiles_need_trampolines_and_still_match() {
        // Every x86_64 syscall gets three conditional rules: rule blocks far beyond 255
        // instructions from the search tree.
        let names: Vec<&str> = crate::tables::X86_64.iter().map(|(n, _)| *n).collect();
        let syscalls: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"names": [n], "action": if i % 2 == 0 { "SCMP_ACT_ALLOW" } else { "SCMP_ACT_TRAP" },
                                 "args": [{"index": i % 6, "value": i, "op": "SCMP_CMP_EQ"}]}))
            .collect();
        let s = spec(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls}));
        let filter = compile(&s).unwrap();
        assert!(filter.instructions().len() > 2000);
        for (i, (_, nr)) in crate::tables::X86_64.iter().enumerate() {
            for arg in [i as u64, i as u64 + 1] {
                let data = Data::nr(*nr).arg(i % 6, arg);
                assert_eq!(
                    run(filter.instructions(), &data).unwrap(),
                    reference(&s, &data)
                );
            }
        }
    }

    #[test]
    fn random_specs_match_reference() {
        let mut rng = wharf_testutil::Rng(0x5eed_c0ff_ee12_3457);
        let names: Vec<&str> = crate::tables::X86_64
            .iter()
            .chain(crate::tables::X86)
            .map(|(n, _)| *n)
            .chain(["no_such_call"])
            .collect();
        let actions = [
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_LOG",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_TRACE",
        ];
        let ops = [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ];
        let values = [
            0u64,
            1,
            2,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0002,
            u64::MAX,
        ];
        let arch_sets: [&[&str]; 4] = [
            &[],
            &["SCMP_ARCH_X86_64"],
            &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        ];
        let audit = [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xc000_00b7];
        let mut too_large = 0;
        for round in 0..150 {
            let rules: Vec<_> = (0..1 + rng.below(80))
                .map(|_| {
                    let conds: Vec<_> = (0..rng.below(4))
                        .map(|_| {
                            json!({"index": rng.below(6), "op": rng.pick(&ops),
                                        "value": rng.pick(&values), "valueTwo": rng.pick(&values)})
                        })
                        .collect();
                    let names: Vec<_> = (0..1 + rng.below(4)).map(|_| rng.pick(&names)).collect();
                    json!({"names": names, "action": rng.pick(&actions),
                           "errnoRet": rng.below(3), "args": conds})
                })
                .collect();
            let s = spec(json!({
                "defaultAction": rng.pick(&actions),
                "defaultErrnoRet": rng.below(3),
                "architectures": rng.pick(&arch_sets),
                "syscalls": rules
            }));
            let filter = match compile(&s) {
                Ok(f) => f,
                Err(SeccompError::TooLarge { .. }) => {
                    too_large += 1;
                    continue;
                }
                Err(e) => panic!("round {round}: {e}"),
            };
            for _ in 0..400 {
                let mut data = Data::nr(match rng.below(4) {
                    0 => rng.below(600) as u32,
                    1 => X32_SYSCALL_BIT + rng.below(600) as u32,
                    2 => u32::MAX - rng.below(2) as u32,
                    _ => rng.next_u64() as u32,
                })
                .arch(rng.pick(&audit));
                for i in 0..6 {
                    data = data.arg(i, rng.pick(&values).wrapping_add(rng.below(2) as u64));
                }
                let got = run(filter.instructions(), &data).unwrap();
                assert_eq!(
                    got,
                    reference(&s, &data),
                    "round {round}, {data:?}, spec {s:?}"
                );
            }
        }
        assert!(
            too_large < 15,
            "{too_large} of 150 random specs exceeded BPF_MAXINSNS"
        );
    }

    #[test]
    fn too_many_rules_is_a_clear_error() {
        let syscalls: Vec<_> = (0..1500)
            .map(|i| {
                json!({"names": ["write"], "action": "SCMP_ACT_TRAP",
                            "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})
            })
            .collect();
        let s = spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}));
        assert!(matches!(compile(&s), Err(SeccompError::TooLarge { .. })));
    }

    #[test]
    fn native_arch_name_means_x86_64() {
        let s =
            spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NATIVE"]}));
        assert_eq!(eval(&s, Data::nr(0)), ALLOW);
        assert_eq!(
            Arch::from_oci(OciArch::ScmpArchNative).unwrap(),
            Arch::X86_64
        );
    }
}
