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
