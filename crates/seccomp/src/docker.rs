//! Docker's seccomp profile format -> OCI `LinuxSeccomp`, with moby's semantics
//! (profiles/seccomp `setupSeccomp`): `archMap` picks the host's architecture and its
//! sub-architectures, and `includes`/`excludes` drop rules by capability, architecture and
//! minimum kernel before anything is compiled.

use std::path::PathBuf;

use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSyscall,
};
use serde::Deserialize;

use crate::SeccompError;

/// The capabilities Docker gives a container by default; its seccomp profile's
/// capability conditions are written against this set.
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

static DEFAULT_PROFILE: &[u8] = include_bytes!("../profiles/default.json");

/// Docker's default seccomp profile (moby's profiles/seccomp/default.json), as JSON.
pub fn default_docker_profile() -> &'static [u8] {
    DEFAULT_PROFILE
}

/// Converts a Docker seccomp profile into the OCI section for a container whose capability set
/// is `caps` (names like "CAP_SYS_ADMIN"; the "CAP_" prefix and case are optional). Kernel
/// version filters (`minKernel`) are evaluated against the running kernel.
pub fn docker_profile_to_oci(
    profile_json: &[u8],
    caps: &[String],
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile = serde_json::from_slice(profile_json)?;
    profile.into_oci(caps, &Host::current()?)
}

/// What the host contributes to the conversion.
struct Host {
    /// libseccomp/moby's name for the architecture ("amd64", "x86", "arm64", ...).
    arch: &'static str,
    /// The OCI name of the same architecture, when moby knows one.
    seccomp_arch: Option<OciArch>,
    kernel: KernelVersion,
}

impl Host {
    fn current() -> Result<Host, SeccompError> {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let kernel = KernelVersion::parse(&release)
            .ok_or_else(|| SeccompError::KernelVersion(release.to_string()))?;
        let (arch, seccomp_arch) = if cfg!(target_arch = "x86_64") {
            ("amd64", Some(OciArch::ScmpArchX86_64))
        } else if cfg!(target_arch = "x86") {
            ("x86", Some(OciArch::ScmpArchX86))
        } else if cfg!(target_arch = "aarch64") {
            ("arm64", Some(OciArch::ScmpArchAarch64))
        } else {
            (std::env::consts::ARCH, None)
        };
        Ok(Host {
            arch,
            seccomp_arch,
            kernel,
        })
    }
}

/// "major.minor" of a kernel release; like moby, later components are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct KernelVersion {
    kernel: u32,
    major: u32,
}

impl KernelVersion {
    /// Parses "6.18", "6.18.0-1-amd64", "3.12-1-amd64".
    fn parse(release: &str) -> Option<KernelVersion> {
        let digits = |s: &str| -> Option<u32> {
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..end].parse().ok()
        };
        let (kernel, rest) = release.split_once('.')?;
        Some(KernelVersion {
            kernel: kernel.parse().ok()?,
            major: digits(rest)?,
        })
    }
}

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KernelVersion::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid kernel version {s:?}, expected \"4.8\"-style"
            ))
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<LinuxSeccompAction>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<OciArch>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: OciArch,
    sub_architectures: Option<Vec<OciArch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    /// Deprecated single-name form.
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
    includes: Option<Condition>,
    excludes: Option<Condition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<KernelVersion>,
}

/// "sys_admin", "CAP_SYS_ADMIN" and "cap_sys_admin" all name the same capability.
fn normalize_cap(cap: &str) -> String {
    let upper = cap.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

impl Profile {
    fn into_oci(self, caps: &[String], host: &Host) -> Result<LinuxSeccomp, SeccompError> {
        let default_action = self.default_action.ok_or_else(|| {
            SeccompError::InvalidProfile("the profile has no defaultAction".into())
        })?;
        let architectures = self.architectures.unwrap_or_default();
        let arch_map = self.arch_map.unwrap_or_default();
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(SeccompError::InvalidProfile(
                "'architectures' and 'archMap' were both specified, use one of them".into(),
            ));
        }
        let caps: Vec<String> = caps.iter().map(|c| normalize_cap(c)).collect();
        let has_cap = |c: &String| caps.contains(&normalize_cap(c));

        let mut arches = architectures;
        if let Some(native) = host.seccomp_arch {
            if let Some(entry) = arch_map.into_iter().find(|e| e.architecture == native) {
                arches.push(entry.architecture);
                arches.extend(entry.sub_architectures.unwrap_or_default());
            }
        }

        let mut syscalls = Vec::new();
        for call in self.syscalls.unwrap_or_default() {
            if let Some(ex) = &call.excludes {
                let arch_hit = ex.arches.iter().flatten().any(|a| a == host.arch);
                let cap_hit = ex.caps.iter().flatten().any(has_cap);
                let kernel_hit = ex.min_kernel.is_some_and(|v| host.kernel >= v);
                if arch_hit || cap_hit || kernel_hit {
                    continue;
                }
            }
            if let Some(inc) = &call.includes {
                let arch_miss = inc
                    .arches
                    .as_ref()
                    .is_some_and(|a| !a.is_empty() && !a.iter().any(|a| a == host.arch));
                let cap_miss = inc.caps.iter().flatten().any(|c| !has_cap(c));
                let kernel_miss = inc.min_kernel.is_some_and(|v| host.kernel < v);
                if arch_miss || cap_miss || kernel_miss {
                    continue;
                }
            }
            let mut names = call.names.unwrap_or_default();
            if let Some(name) = call.name.filter(|n| !n.is_empty()) {
                if !names.is_empty() {
                    return Err(SeccompError::InvalidProfile(format!(
                        "syscall {name:?} has both 'name' and 'names', use one of them"
                    )));
                }
                names.push(name);
            }
            let mut sc = LinuxSyscall::default();
            sc.set_names(names);
            sc.set_action(call.action);
            sc.set_errno_ret(call.errno_ret);
            sc.set_args(call.args);
            syscalls.push(sc);
        }

        let mut out = LinuxSeccomp::default();
        out.set_default_action(default_action);
        out.set_default_errno_ret(self.default_errno_ret);
        out.set_architectures((!arches.is_empty()).then_some(arches));
        out.set_flags(self.flags.filter(|f| !f.is_empty()));
        out.set_listener_path(self.listener_path);
        out.set_listener_metadata(self.listener_metadata);
        out.set_syscalls(Some(syscalls));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxSeccompOperator;

    use super::*;
    use crate::syscalls::{syscall_number, Arch, AUDIT_ARCH_I386, X32_SYSCALL_BIT};
    use crate::test_utils::{run, Data};

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | 38;
    const CLONE_NEWNS: u64 = 0x0002_0000;

    fn amd64(kernel: u32, major: u32) -> Host {
        Host {
            arch: "amd64",
            seccomp_arch: Some(OciArch::ScmpArchX86_64),
            kernel: KernelVersion { kernel, major },
        }
    }

    fn convert(json: &[u8], caps: &[&str], host: &Host) -> Result<LinuxSeccomp, SeccompError> {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        serde_json::from_slice::<Profile>(json)?.into_oci(&caps, host)
    }

    fn default_for(caps: &[&str]) -> LinuxSeccomp {
        convert(default_docker_profile(), caps, &amd64(6, 18)).unwrap()
    }

    fn rules_for<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn default_profile_keeps_docker_header() {
        let s = default_for(DOCKER_DEFAULT_CAPS);
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().as_deref(),
            Some(
                &[
                    OciArch::ScmpArchX86_64,
                    OciArch::ScmpArchX86,
                    OciArch::ScmpArchX32
                ][..]
            )
        );
    }

    #[test]
    fn capability_filters_follow_moby() {
        let plain = default_for(DOCKER_DEFAULT_CAPS);
        // The CAP_SYS_ADMIN block (mount, unshare, setns, ...) is left out...
        assert!(rules_for(&plain, "mount").is_empty());
        assert!(rules_for(&plain, "unshare").is_empty());
        // ...clone is allowed only without namespace flags, clone3 gets ENOSYS.
        let clone = rules_for(&plain, "clone");
        assert_eq!(clone.len(), 1);
        let arg = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.op()),
            (0, LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        let clone3 = rules_for(&plain, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        // chroot comes with CAP_SYS_CHROOT, which is a default cap.
        assert_eq!(rules_for(&plain, "chroot").len(), 1);

        let mut admin_caps = DOCKER_DEFAULT_CAPS.to_vec();
        admin_caps.push("sys_admin"); // short and lower-case names work too
        let admin = default_for(&admin_caps);
        assert_eq!(rules_for(&admin, "mount").len(), 1);
        let clone = rules_for(&admin, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_none());
        assert!(rules_for(&admin, "clone3")
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
    }

    #[test]
    fn arch_and_kernel_filters_follow_moby() {
        let s = default_for(DOCKER_DEFAULT_CAPS);
        assert_eq!(rules_for(&s, "arch_prctl").len(), 1); // includes arches amd64
        assert!(rules_for(&s, "s390_runtime_instr").is_empty());
        // The s390 clone variant is excluded, only the amd64 one is left (checked above).
        assert_eq!(rules_for(&s, "ptrace").len(), 1); // minKernel 4.8 <= 6.18
        let old = convert(default_docker_profile(), DOCKER_DEFAULT_CAPS, &amd64(4, 4)).unwrap();
        assert!(rules_for(&old, "ptrace").is_empty());
    }

    #[test]
    fn profile_shape_errors() {
        let host = amd64(6, 1);
        let both = br#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":[]}]}"#;
        assert!(matches!(
            convert(both, &[], &host),
            Err(SeccompError::InvalidProfile(_))
        ));
        let name_and_names = br#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert!(matches!(
            convert(name_and_names, &[], &host),
            Err(SeccompError::InvalidProfile(_))
        ));
        let no_default = br#"{"syscalls":[]}"#;
        assert!(matches!(
            convert(no_default, &[], &host),
            Err(SeccompError::InvalidProfile(_))
        ));
        for bad in [
            &b"{"[..],
            br#"{"defaultAction":"SCMP_ACT_NOPE"}"#,
            br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                        "action":"SCMP_ACT_ALLOW","includes":{"minKernel":"new"}}]}"#,
        ] {
            assert!(matches!(
                convert(bad, &[], &host),
                Err(SeccompError::Json(_))
            ));
        }
    }

    #[test]
    fn legacy_name_nulls_and_explicit_architectures() {
        let json = br#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],
            "flags":null,"syscalls":[{"name":"read","names":null,"action":"SCMP_ACT_ALLOW",
            "args":null,"includes":{},"excludes":{"caps":null}}]}"#;
        let s = convert(json, &[], &amd64(6, 1)).unwrap();
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[OciArch::ScmpArchX86][..])
        );
        assert_eq!(rules_for(&s, "read").len(), 1);
    }

    #[test]
    fn kernel_release_parsing() {
        let v = |s| KernelVersion::parse(s);
        assert_eq!(
            v("6.18.0-1-amd64"),
            Some(KernelVersion {
                kernel: 6,
                major: 18
            })
        );
        assert_eq!(
            v("3.12-1-amd64"),
            Some(KernelVersion {
                kernel: 3,
                major: 12
            })
        );
        assert_eq!(
            v("4.8"),
            Some(KernelVersion {
                kernel: 4,
                major: 8
            })
        );
        assert_eq!(v("6"), None);
        assert_eq!(v("x.1"), None);
        assert!(Host::current().is_ok());
    }

    /// runc 1.1.5 (with its libseccomp) loaded this crate's conversion of the default profile
    /// for Docker's default caps, and the program it installed was dumped with
    /// gen/dump_filter.py. Ours must decide every syscall the same way, except where the two
    /// knowingly differ: foreign architectures (libseccomp kills the thread, we kill the
    /// process) and syscalls newer than runc's libseccomp tables, which it cannot name and so
    /// answers with EPERM or ENOSYS: uretprobe (335), numbers from 457 (for x32 up to its legacy
    /// range 512-547, which is compared), and map_shadow_stack on x32 (453, x86_64-only until
    /// the kernel made it common).
    #[test]
    fn agrees_with_runc_on_the_default_profile() {
        let dump: Vec<[u32; 4]> = serde_json::from_str(include_str!(
            "../testdata/runc-1.1.5-docker-default-amd64.json"
        ))
        .unwrap();
        let runc: Vec<libc::sock_filter> = dump
            .iter()
            .map(|&[code, jt, jf, k]| libc::sock_filter {
                code: code as u16,
                jt: jt as u8,
                jf: jf as u8,
                k,
            })
            .collect();
        let ours = crate::compile(&default_for(DOCKER_DEFAULT_CAPS)).unwrap();
        let values = [
            0,
            1,
            2,
            8,
            0x11,
            37,
            38,
            39,
            40,
            41,
            0x2_0008,
            0x7e02_0000,
            0xffff_ffff,
        ];
        let values = values.into_iter().chain([0x1_0000_0000, u64::MAX]);
        let mut args: Vec<[u64; 2]> = values.clone().map(|v| [v, 0]).collect();
        args.extend(values.map(|v| [0x11, v]));
        let numbers = (0..1100).chain(X32_SYSCALL_BIT..X32_SYSCALL_BIT + 1100);
        let mut compared = 0;
        for nr in numbers.chain([X32_SYSCALL_BIT - 1, u32::MAX]) {
            for arch in [crate::syscalls::AUDIT_ARCH_X86_64, AUDIT_ARCH_I386] {
                let base = nr & !X32_SYSCALL_BIT;
                let x32 = nr & X32_SYSCALL_BIT != 0 && arch != AUDIT_ARCH_I386;
                let unknown_to_runc = (base == 335 && arch != AUDIT_ARCH_I386)
                    || (base == 453 && x32)
                    || (457..512).contains(&base)
                    || (base >= 512 && !x32);
                if unknown_to_runc {
                    continue;
                }
                for [a0, a1] in &args {
                    let data = Data::nr(nr).arch(arch).arg(0, *a0).arg(1, *a1);
                    let (want, got) = (run(&runc, &data), run(ours.instructions(), &data));
                    assert_eq!(got, want, "{data:?}");
                    compared += 1;
                }
            }
            let foreign = Data::nr(nr).arch(0xc000_00b7);
            assert_eq!(run(&runc, &foreign), Ok(libc::SECCOMP_RET_KILL_THREAD));
            assert_eq!(
                run(ours.instructions(), &foreign),
                Ok(libc::SECCOMP_RET_KILL_PROCESS)
            );
        }
        assert!(compared > 40_000, "only {compared} comparisons");
    }

    #[test]
    fn compiled_default_profile_behaves_like_docker() {
        let filter = crate::compile(&default_for(DOCKER_DEFAULT_CAPS)).unwrap();
        let prog = filter.instructions();
        assert!(prog.len() < crate::bpf::BPF_MAXINSNS);
        let nr = |n| syscall_number(n, Arch::X86_64).unwrap();
        let call = |n| Data::nr(nr(n));
        let act = |d: Data| run(prog, &d).unwrap();
        for allowed in [
            "read",
            "write",
            "getpid",
            "execve",
            "openat",
            "mkdir",
            "exit_group",
        ] {
            assert_eq!(act(call(allowed)), ALLOW, "{allowed}");
        }
        for denied in [
            "mount",
            "unshare",
            "setns",
            "umount2",
            "reboot",
            "bpf",
            "kexec_load",
        ] {
            assert_eq!(act(call(denied)), EPERM, "{denied}");
        }
        assert_eq!(act(call("clone").arg(0, 0x11)), ALLOW);
        assert_eq!(act(call("clone").arg(0, 0x11 | CLONE_NEWNS)), EPERM);
        assert_eq!(act(call("clone3")), ENOSYS);
        assert_eq!(act(call("personality").arg(0, 0xffff_ffff)), ALLOW);
        assert_eq!(act(call("personality").arg(0, 8)), ALLOW);
        assert_eq!(act(call("personality").arg(0, 0x0040_0000)), EPERM);
        assert_eq!(act(call("socket").arg(0, 2)), ALLOW);
        assert_eq!(act(call("socket").arg(0, 40)), EPERM); // AF_VSOCK
        assert_eq!(act(Data::nr(1000)), ENOSYS); // newer than anything the profile names
        assert_eq!(act(Data::nr(20).arch(AUDIT_ARCH_I386)), ALLOW); // i386 getpid
        assert_eq!(act(Data::nr(X32_SYSCALL_BIT + 39)), ALLOW); // x32 getpid
    }
}
