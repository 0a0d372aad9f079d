//! Resource limits from `process.rlimits`.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{LibcontainerError, Result};

/// The kernel's resource number for a spec rlimit type.
pub fn resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Rejects a limit whose soft value exceeds its hard value before anything forks.
pub fn check(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        if l.soft() > l.hard() {
            return Err(LibcontainerError::InvalidSpec(format!(
                "rlimit {}: soft {} exceeds hard {}",
                l.typ(),
                l.soft(),
                l.hard()
            )));
        }
    }
    Ok(())
}

/// Sets each limit. Raising a hard limit needs CAP_SYS_RESOURCE; when the host withholds it the
/// error names the limit and the ceiling so the caller knows exactly what to change.
#[allow(unsafe_code)]
pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let res = resource(l.typ());
        let new = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: `new` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(res, &new) } == 0 {
            continue;
        }
        let err = nix::Error::last();
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `cur` is a valid out-parameter.
        unsafe { libc::getrlimit(res, &mut cur) };
        let why = if err == nix::Error::EPERM && l.hard() > cur.rlim_max {
            format!(
                "hard limit {} is above the current hard limit {} and raising it needs CAP_SYS_RESOURCE",
                l.hard(),
                cur.rlim_max
            )
        } else {
            err.to_string()
        };
        return Err(LibcontainerError::NotSupported(format!(
            "cannot set rlimit {}: {why}",
            l.typ()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        assert_eq!(resource(PosixRlimitType::RlimitNofile), libc::RLIMIT_NOFILE);
        assert_eq!(resource(PosixRlimitType::RlimitNproc), libc::RLIMIT_NPROC);
        assert_eq!(resource(PosixRlimitType::RlimitRttime), libc::RLIMIT_RTTIME);
    }

    #[test]
    fn soft_above_hard_rejected() {
        let l: PosixRlimit =
            serde_json::from_value(serde_json::json!({"type":"RLIMIT_NOFILE","soft":10,"hard":5}))
                .expect("rl");
        assert!(check(&[l]).is_err());
        let ok: PosixRlimit =
            serde_json::from_value(serde_json::json!({"type":"RLIMIT_CORE","soft":0,"hard":5}))
                .expect("rl");
        assert!(check(&[ok]).is_ok());
    }
}
