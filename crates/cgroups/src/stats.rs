//! Resource usage numbers shaped like Docker's `/containers/{id}/stats`.

use std::collections::BTreeMap;

use serde::Serialize;

/// A snapshot of a cgroup's usage. Fields a host cannot report stay zero/empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// CPU time.
    pub cpu: CpuStats,
    /// Memory use.
    pub memory: MemoryStats,
    /// Task counts.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
}

/// CPU usage in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// Total CPU time consumed.
    pub total_usage_ns: u64,
    /// Per-CPU time (v1 only; v2 does not report it).
    pub percpu_usage_ns: Vec<u64>,
    /// Time in user mode.
    pub user_ns: u64,
    /// Time in kernel mode.
    pub system_ns: u64,
    /// Online CPUs on the host.
    pub online_cpus: u32,
    /// CFS bandwidth throttling.
    pub throttling: ThrottlingStats,
}

/// CFS quota enforcement counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThrottlingStats {
    /// Enforcement periods that elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total time throttled, in nanoseconds.
    pub throttled_time_ns: u64,
}

/// Memory usage in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Current usage.
    pub usage: u64,
    /// Peak usage (v1 max_usage_in_bytes, v2 memory.peak when the kernel has it).
    pub max_usage: u64,
    /// The limit; `u64::MAX` (v2 "max") or the v1 page-rounded huge value when unlimited.
    pub limit: u64,
    /// Times the limit was hit (v1 failcnt, v2 memory.events `max`).
    pub failcnt: u64,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kill: u64,
    /// The raw memory.stat counters.
    pub stat: BTreeMap<String, u64>,
}

/// Task counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    /// Tasks now in the cgroup.
    pub current: u64,
    /// The limit, `None` when unlimited.
    pub limit: Option<u64>,
}

/// Block I/O totals per device and operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    /// Bytes transferred.
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations performed.
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// One device/operation counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// Operation, as Docker names it (`Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`).
    pub op: String,
    /// The counter.
    pub value: u64,
}

fn parse_dev(dev: &str) -> Option<(u64, u64)> {
    let (maj, min) = dev.split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Parses v1 `blkio.*_recursive` files: `8:0 Read 4096` lines plus a `Total N` summary line.
pub(crate) fn parse_v1_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (major, minor) = parse_dev(f.next()?)?;
            let op = f.next()?.to_string();
            let value = f.next()?.parse().ok()?;
            Some(BlkioEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// Parses v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...`) into (bytes, ios) entries.
pub(crate) fn parse_v2_io_stat(text: &str) -> BlkioStats {
    let mut out = BlkioStats::default();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(parse_dev) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut out.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                "dios" => (&mut out.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_blkio_skips_total_line() {
        let e = parse_v1_blkio("8:0 Read 4096\n8:0 Write 512\n8:16 Total 0\nTotal 4608\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 512
            }
        );
    }

    #[test]
    fn v2_io_stat_splits_bytes_and_ios() {
        let s = parse_v2_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(s.io_service_bytes_recursive.len(), 3);
        assert_eq!(s.io_service_bytes_recursive[1].value, 20);
        assert_eq!(s.io_serviced_recursive[0].op, "Read");
        assert_eq!(s.io_serviced_recursive[0].value, 1);
    }
}
