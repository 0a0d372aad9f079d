//! Value checks shared by both drivers and runc's v1 -> v2 conversions.

use oci_spec::runtime::{LinuxMemory, LinuxRdma, LinuxResources};

use crate::CgroupError;

/// Settings both drivers accept and ignore, one warning each: kernel memory limits are
/// deprecated by the kernel (v1 since 5.4, none in v2) and runc ignores them with a warning.
pub fn ignored_settings(r: &LinuxResources) -> Vec<String> {
    let kernel = r.memory().as_ref().and_then(|m| m.kernel());
    kernel
        .filter(|k| *k != 0)
        .map(|k| format!("memory.kernel ({k}) is deprecated by the kernel and ignored"))
        .into_iter()
        .collect()
}

/// runc treats 0 as "not set" for memory and pids values; OCI has no other way to say so in
/// an update.
pub(crate) fn nonzero(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

pub(crate) fn swappiness(v: u64) -> Result<u64, CgroupError> {
    if v > 100 {
        return Err(CgroupError::InvalidResource {
            field: "memory.swappiness",
            reason: format!("{v} is outside 0..=100"),
        });
    }
    Ok(v)
}

/// A hugepage size as it appears in file names (`2MB`, `1GB`); refuses anything that could
/// escape the cgroup directory.
pub(crate) fn hugepage_size(s: &str) -> Result<&str, CgroupError> {
    let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(CgroupError::InvalidResource {
            field: "hugepageLimits.pageSize",
            reason: format!("{s:?} is not a page size like 2MB"),
        });
    }
    Ok(s)
}

/// v2 wants "max" where v1 takes -1.
pub(crate) fn limit_str(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// runc's cpu.shares [2, 262144] -> cpu.weight [1, 10000] mapping; 0 means unset.
pub(crate) fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// runc's blkio.weight [10, 1000] -> io.weight [1, 10000] mapping; 0 means unset.
pub(crate) fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// OCI swap is memory+swap; v2's memory.swap.max is swap alone. Returns the value to write.
pub(crate) fn v2_swap_max(m: &LinuxMemory) -> Result<Option<String>, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidResource {
        field: "memory.swap",
        reason: reason.to_string(),
    };
    let Some(swap) = nonzero(m.swap()) else {
        return Ok(None);
    };
    if swap < 0 {
        return Ok(Some("max".into()));
    }
    match nonzero(m.limit()) {
        None => Err(invalid("a swap limit needs a memory limit")),
        Some(limit) if limit < 0 => Err(invalid("a swap limit needs a memory limit, not -1")),
        Some(limit) if swap < limit => {
            Err(invalid("memory+swap must not be below the memory limit"))
        }
        Some(limit) => Ok(Some((swap - limit).to_string())),
    }
}

/// Refuses a new memory limit below current usage when the spec asks for that check.
pub(crate) fn check_before_update(
    m: &LinuxMemory,
    usage: impl FnOnce() -> Result<u64, CgroupError>,
) -> Result<(), CgroupError> {
    let (Some(true), Some(limit)) = (m.check_before_update(), nonzero(m.limit())) else {
        return Ok(());
    };
    let usage = usage()?;
    if limit > 0 && (limit as u64) < usage {
        return Err(CgroupError::InvalidResource {
            field: "memory.limit",
            reason: format!("{limit} is below current usage {usage}"),
        });
    }
    Ok(())
}

/// One `rdma.max` line, `None` when the entry sets nothing.
pub(crate) fn rdma_line(device: &str, r: &LinuxRdma) -> Result<Option<String>, CgroupError> {
    if device.is_empty() || device.chars().any(|c| c.is_whitespace()) {
        return Err(CgroupError::InvalidResource {
            field: "rdma",
            reason: format!("bad device name {device:?}"),
        });
    }
    let mut line = device.to_string();
    if let Some(h) = r.hca_handles() {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = r.hca_objects() {
        line.push_str(&format!(" hca_object={o}"));
    }
    Ok((line.len() > device.len()).then_some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn runc_conversions() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn v2_swap_is_swap_minus_memory() {
        let f = |j| v2_swap_max(&mem(j));
        assert_eq!(
            f(r#"{"limit":100,"swap":300}"#).expect("ok"),
            Some("200".into())
        );
        assert_eq!(
            f(r#"{"limit":100,"swap":-1}"#).expect("ok"),
            Some("max".into())
        );
        assert_eq!(f(r#"{"limit":100}"#).expect("ok"), None);
        assert!(f(r#"{"swap":300}"#).is_err());
        assert!(f(r#"{"limit":300,"swap":100}"#).is_err());
    }

    #[test]
    fn validations() {
        assert!(swappiness(101).is_err());
        assert!(hugepage_size("../x").is_err());
        assert_eq!(hugepage_size("2MB").expect("ok"), "2MB");
        assert_eq!(limit_str(-1), "max");
        let m = mem(r#"{"limit":100,"checkBeforeUpdate":true}"#);
        assert!(check_before_update(&m, || Ok(200)).is_err());
        assert!(check_before_update(&m, || Ok(50)).is_ok());
        let r: LinuxRdma = serde_json::from_str(r#"{"hcaHandles":2}"#).expect("json");
        assert_eq!(
            rdma_line("mlx4_0", &r).expect("ok"),
            Some("mlx4_0 hca_handle=2".into())
        );
        assert!(rdma_line("a b", &r).is_err());
    }
}
