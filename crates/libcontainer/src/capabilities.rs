//! The five capability sets: mapping spec names to bits, and applying them.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{LibcontainerError, Result};

/// The kernel's number for a capability.
pub fn cap_number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// Every capability the runtime knows, in kernel order.
pub const ALL: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The spec names (`CAP_…`) of [`ALL`].
pub fn all_names() -> Vec<String> {
    ALL.iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The five sets as bit masks (bit n = capability n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

fn mask(set: &Option<Capabilities>) -> u64 {
    set.iter()
        .flatten()
        .fold(0, |m, c| m | (1u64 << cap_number(*c)))
}

impl CapSets {
    /// Converts the spec's sets; a missing `capabilities` section means no capabilities at all.
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> CapSets {
        let Some(c) = caps else {
            return CapSets::default();
        };
        CapSets {
            bounding: mask(c.bounding()),
            effective: mask(c.effective()),
            permitted: mask(c.permitted()),
            inheritable: mask(c.inheritable()),
            ambient: mask(c.ambient()),
        }
    }

    /// Drops what the host's bounding set does not hold: those caps cannot be granted by anyone
    /// (for example CAP_SYS_RESOURCE on hosts that removed it), and asking would fail capset.
    pub fn limited_to(self, available: u64) -> CapSets {
        CapSets {
            bounding: self.bounding & available,
            effective: self.effective & available,
            permitted: self.permitted & available,
            inheritable: self.inheritable & available,
            ambient: self.ambient & available,
        }
    }
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The calling thread's bounding set as a mask.
#[allow(unsafe_code)]
pub fn current_bounding() -> u64 {
    (0..=last_cap()).fold(0, |m, cap| {
        // SAFETY: PR_CAPBSET_READ takes an integer and touches no memory.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        if r == 1 {
            m | (1u64 << cap)
        } else {
            m
        }
    })
}

fn errno(op: &str) -> LibcontainerError {
    LibcontainerError::Sys {
        op: op.into(),
        source: nix::Error::last(),
    }
}

/// Drops every capability outside `bounding` from the bounding set (needs CAP_SETPCAP).
#[allow(unsafe_code)]
pub fn drop_bounding(bounding: u64) -> Result<()> {
    for cap in 0..=last_cap() {
        if bounding & (1u64 << cap) == 0 {
            // SAFETY: PR_CAPBSET_DROP takes an integer and touches no memory.
            let r =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            if r != 0 && nix::Error::last() != nix::Error::EINVAL {
                return Err(errno("drop bounding capability"));
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Sets effective, permitted and inheritable, then raises the ambient capabilities the kernel allows.
#[allow(unsafe_code)]
pub fn apply(sets: &CapSets) -> Result<()> {
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let lo = |m: u64| (m & 0xffff_ffff) as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        CapData {
            effective: lo(sets.effective),
            permitted: lo(sets.permitted),
            inheritable: lo(sets.inheritable),
        },
        CapData {
            effective: hi(sets.effective),
            permitted: hi(sets.permitted),
            inheritable: hi(sets.inheritable),
        },
    ];
    // SAFETY: header and data are valid, correctly laid out v3 structures that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if r != 0 {
        return Err(errno("capset"));
    }
    // The kernel only lets a capability into the ambient set when it is both permitted and
    // inheritable; runc skips the others silently (runc 1.1's own `spec` asks for ambient caps
    // without inheritable ones), and so do we.
    let raisable = sets.ambient & sets.permitted & sets.inheritable;
    for cap in 0..=last_cap() {
        if raisable & (1u64 << cap) != 0 {
            // SAFETY: PR_CAP_AMBIENT_RAISE takes integers and touches no memory.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                )
            };
            if r != 0 {
                return Err(errno("raise ambient capability"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_from_spec() {
        let caps: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"],
            "effective": ["CAP_KILL"],
            "ambient": ["NET_BIND_SERVICE"]
        }))
        .expect("caps");
        let s = CapSets::from_spec(Some(&caps));
        assert_eq!(s.bounding, (1 << 5) | (1 << 21) | (1 << 40));
        assert_eq!(s.effective, 1 << 5);
        assert_eq!(s.permitted, 0);
        assert_eq!(s.ambient, 1 << 10);
        assert_eq!(CapSets::from_spec(None), CapSets::default());
    }

    #[test]
    fn all_is_in_kernel_order() {
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(cap_number(*c) as usize, i);
        }
        assert_eq!(all_names()[21], "CAP_SYS_ADMIN");
    }

    #[test]
    fn unavailable_caps_are_dropped() {
        let s = CapSets {
            bounding: 0b111,
            effective: 0b110,
            ..Default::default()
        };
        let l = s.limited_to(0b011);
        assert_eq!(l.bounding, 0b011);
        assert_eq!(l.effective, 0b010);
    }

    #[test]
    fn unknown_capability_name_is_an_error() {
        let r: std::result::Result<LinuxCapabilities, _> =
            serde_json::from_value(serde_json::json!({"bounding": ["CAP_NOPE"]}));
        assert!(r.is_err());
    }
}
