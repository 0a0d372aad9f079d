//! The x86 family of seccomp architectures and their syscall numbers.

use oci_spec::runtime::Arch as OciArch;

use crate::tables;
use crate::SeccompError;

/// `AUDIT_ARCH_X86_64` from linux/audit.h: what `seccomp_data.arch` holds for x86_64 and x32.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386` from linux/audit.h.
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `__X32_SYSCALL_BIT`: set in `nr` for x32 syscalls, which share `AUDIT_ARCH_X86_64`.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A syscall ABI a filter can cover on an x86_64 host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// Native 64-bit (`SCMP_ARCH_X86_64`).
    X86_64,
    /// 32-bit i386 compat (`SCMP_ARCH_X86`).
    X86,
    /// The x32 ABI (`SCMP_ARCH_X32`).
    X32,
}

impl Arch {
    /// Maps an OCI architecture; `SCMP_ARCH_NATIVE` is x86_64, everything outside the x86
    /// family is rejected because this compiler only targets x86_64 hosts.
    pub(crate) fn from_oci(arch: OciArch) -> Result<Arch, SeccompError> {
        match arch {
            OciArch::ScmpArchNative | OciArch::ScmpArchX86_64 => Ok(Arch::X86_64),
            OciArch::ScmpArchX86 => Ok(Arch::X86),
            OciArch::ScmpArchX32 => Ok(Arch::X32),
            other => Err(SeccompError::Unsupported(format!(
                "architecture {other} (only SCMP_ARCH_X86_64, SCMP_ARCH_X86 and SCMP_ARCH_X32 \
                 can be compiled on this host)"
            ))),
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::X86 => tables::X86,
            Arch::X32 => tables::X32,
        }
    }
}

/// The number the kernel reports in `seccomp_data.nr` for `name` on `arch` (x32 numbers include
/// the x32 bit), or `None` when the architecture has no such syscall.
pub fn syscall_number(name: &str, arch: Arch) -> Option<u32> {
    let table = arch.table();
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for arch in [Arch::X86_64, Arch::X86, Arch::X32] {
            let t = arch.table();
            assert!(
                t.windows(2).all(|w| w[0].0 < w[1].0),
                "{arch:?} not strictly sorted"
            );
            assert!(
                t.len() > 330,
                "{arch:?} table looks incomplete: {}",
                t.len()
            );
        }
    }

    #[test]
    fn well_known_numbers() {
        assert_eq!(syscall_number("read", Arch::X86_64), Some(0));
        assert_eq!(syscall_number("getpid", Arch::X86_64), Some(39));
        assert_eq!(syscall_number("mkdir", Arch::X86_64), Some(83));
        assert_eq!(syscall_number("personality", Arch::X86_64), Some(135));
        assert_eq!(syscall_number("clone3", Arch::X86_64), Some(435));
        assert_eq!(syscall_number("mseal", Arch::X86_64), Some(462));
        assert_eq!(syscall_number("getpid", Arch::X86), Some(20));
        assert_eq!(syscall_number("socketcall", Arch::X86), Some(102));
        assert_eq!(syscall_number("_llseek", Arch::X86), Some(140));
        assert_eq!(syscall_number("read", Arch::X32), Some(X32_SYSCALL_BIT));
        // x32 has its own numbers for syscalls with compat structures.
        assert_eq!(
            syscall_number("execve", Arch::X32),
            Some(X32_SYSCALL_BIT + 520)
        );
        assert_eq!(syscall_number("execve", Arch::X86_64), Some(59));
    }

    #[test]
    fn arch_specific_syscalls_are_absent_elsewhere() {
        assert_eq!(syscall_number("socketcall", Arch::X86_64), None);
        assert_eq!(syscall_number("mmap2", Arch::X86_64), None);
        assert_eq!(syscall_number("mmap2", Arch::X86), Some(192));
        assert_eq!(syscall_number("no_such_syscall", Arch::X86_64), None);
        assert_eq!(syscall_number("", Arch::X86_64), None);
    }

    #[test]
    fn only_x86_family_architectures_are_accepted() {
        assert_eq!(
            Arch::from_oci(OciArch::ScmpArchNative).ok(),
            Some(Arch::X86_64)
        );
        assert_eq!(Arch::from_oci(OciArch::ScmpArchX32).ok(), Some(Arch::X32));
        let err = Arch::from_oci(OciArch::ScmpArchAarch64).unwrap_err();
        assert!(matches!(err, SeccompError::Unsupported(_)), "{err}");
    }
}
