//! `stats` (from the container's cgroup) and `top` (host `ps`, filtered to the cgroup's pids).

use serde_json::{json, Value};
use wharf_api_types::container::TopResponse;
use wharf_cgroups::{Hierarchy, Manager, Stats};

use super::{blocking, not_running, spec, ContainerService};
use crate::server::error::ApiError;

/// Host CPU time in nanoseconds from `/proc/stat`'s first line (USER_HZ = 100).
pub fn system_cpu_ns(proc_stat: &str) -> u64 {
    proc_stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                * 10_000_000
        })
        .unwrap_or(0)
}

fn cpu_json(s: &Stats, system: u64) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": s.cpu.total_usage_ns,
            "percpu_usage": s.cpu.percpu_usage_ns,
            "usage_in_kernelmode": s.cpu.system_ns,
            "usage_in_usermode": s.cpu.user_ns,
        },
        "system_cpu_usage": system,
        "online_cpus": s.cpu.online_cpus,
        "throttling_data": {
            "periods": s.cpu.throttling.periods,
            "throttled_periods": s.cpu.throttling.throttled_periods,
            "throttled_time": s.cpu.throttling.throttled_time_ns,
        },
    })
}

fn blkio_json(list: &[wharf_cgroups::BlkioEntry]) -> Value {
    json!(list
        .iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
        .collect::<Vec<_>>())
}

/// Docker's stats JSON from two samples (`pre` may be empty for the first one). An unlimited
/// cgroup reports a huge limit; like dockerd, show the host's memory (`mem_total`) instead.
pub fn stats_json(
    id: &str,
    name: &str,
    now: (&Stats, u64, &str),
    pre: Option<(&Stats, u64, &str)>,
    mem_total: u64,
) -> Value {
    let (s, sys, read) = now;
    let empty = Stats::default();
    let (p, psys, pread) = pre.unwrap_or((&empty, 0, "0001-01-01T00:00:00Z"));
    json!({
        "read": read,
        "preread": pread,
        "id": id,
        "name": name,
        "num_procs": 0,
        "pids_stats": {"current": s.pids.current, "limit": s.pids.limit},
        "blkio_stats": {
            "io_service_bytes_recursive": blkio_json(&s.blkio.io_service_bytes_recursive),
            "io_serviced_recursive": blkio_json(&s.blkio.io_serviced_recursive),
            "io_queue_recursive": null, "io_service_time_recursive": null, "io_wait_time_recursive": null,
            "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
        },
        "storage_stats": {},
        "cpu_stats": cpu_json(s, sys),
        "precpu_stats": cpu_json(p, psys),
        "memory_stats": {
            "usage": s.memory.usage,
            "max_usage": s.memory.max_usage,
            "failcnt": s.memory.failcnt,
            "limit": if mem_total > 0 { s.memory.limit.min(mem_total) } else { s.memory.limit },
            "stats": s.memory.stat,
        },
    })
}

/// The `networks` field of Docker's stats from `/proc/<pid>/net/dev` of the container's
/// namespace: per interface but loopback, `None` when it has none.
pub fn net_dev(text: &str) -> Option<Value> {
    let mut out = serde_json::Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if name == "lo" || f.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Docker's `top` from `ps` output: the header, then the lines whose PID is in `pids`.
pub fn filter_ps(output: &str, pids: &[i32]) -> Result<TopResponse, ApiError> {
    let mut lines = output.lines();
    let header = lines
        .next()
        .ok_or_else(|| ApiError::internal("ps printed nothing"))?;
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::invalid("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) may contain spaces.
        let n = titles.len();
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| s.to_string()).collect();
        row.push(
            fields
                .iter()
                .skip(n - 1)
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        );
        processes.push(row);
    }
    Ok(TopResponse { titles, processes })
}

impl ContainerService {
    fn cgroup(&self, id: &str) -> Result<Manager, ApiError> {
        let c = self.snapshot(id)?;
        let cfg = self.config();
        let h = Hierarchy::probe().map_err(|e| ApiError::from_err(&e))?;
        Manager::new(&h, &spec::cgroups_path(&c, &cfg.cgroup_parent), &c.id)
            .map_err(|e| ApiError::from_err(&e))
    }

    /// The OOM kills so far in a running container's memory cgroup.
    pub(super) async fn oom_kills(&self, id: &str) -> Option<u64> {
        let m = self.cgroup(id).ok()?;
        blocking(move || m.stats())
            .await
            .ok()
            .map(|s| s.memory.oom_kill)
    }

    /// One sample: cgroup stats, host CPU time, and the time read.
    pub async fn sample(&self, key: &str) -> Result<(Stats, u64, String), ApiError> {
        let c = self.snapshot(key)?;
        if !c.state.status.is_alive() {
            return Ok((
                Stats::default(),
                0,
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ));
        }
        let m = self.cgroup(&c.id)?;
        let stats = blocking(move || m.stats()).await?;
        let sys = system_cpu_ns(
            &tokio::fs::read_to_string("/proc/stat")
                .await
                .unwrap_or_default(),
        );
        Ok((
            stats,
            sys,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ))
    }

    /// The `networks` stats of a running container with its own interfaces (none in the
    /// host's namespace).
    pub async fn network_stats(&self, key: &str) -> Option<Value> {
        let c = self.snapshot(key).ok()?;
        if !c.state.status.is_alive() || c.host_config.network_mode == "host" || c.state.pid <= 0 {
            return None;
        }
        let text = tokio::fs::read_to_string(format!("/proc/{}/net/dev", c.state.pid))
            .await
            .ok()?;
        net_dev(&text)
    }

    /// `GET /containers/{id}/top`.
    pub async fn top(&self, key: &str, ps_args: &str) -> Result<TopResponse, ApiError> {
        let c = self.snapshot(key)?;
        if !c.state.status.is_alive() {
            return Err(not_running(&c.id));
        }
        let m = self.cgroup(&c.id)?;
        let pids = blocking(move || m.pids()).await?;
        let args: Vec<&str> = if ps_args.is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(ApiError::invalid(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_filtering() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n";
        let t = filter_ps(out, &[42]).expect("top");
        assert_eq!(t.titles.len(), 8);
        assert_eq!(
            t.processes,
            vec![vec![
                "root",
                "42",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
        assert!(filter_ps("USER CMD\n", &[1]).is_err());
    }

    #[test]
    fn network_counters_per_interface() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0       0          0
";
        let v = net_dev(text).expect("eth0");
        assert_eq!(
            v,
            json!({"eth0": {"rx_bytes": 1296, "rx_packets": 16, "rx_errors": 1, "rx_dropped": 2,
                "tx_bytes": 726, "tx_packets": 9, "tx_errors": 3, "tx_dropped": 4}})
        );
        assert_eq!(
            net_dev(&text.lines().take(3).collect::<Vec<_>>().join("\n")),
            None
        );
    }

    #[test]
    fn proc_stat_total() {
        assert_eq!(
            system_cpu_ns("cpu  1 2 3 4\ncpu0 1 1 1 1\n"),
            10 * 10_000_000
        );
        assert_eq!(system_cpu_ns(""), 0);
    }

    #[test]
    fn stats_shape() {
        let s = Stats::default();
        let v = stats_json("id", "/n", (&s, 5, "t"), None, 0);
        for k in [
            "cpu_stats",
            "precpu_stats",
            "memory_stats",
            "pids_stats",
            "blkio_stats",
            "read",
            "preread",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["cpu_stats"]["system_cpu_usage"], 5);
    }

    #[test]
    fn unlimited_memory_shows_the_host_memory() {
        let mut s = Stats::default();
        s.memory.limit = u64::MAX;
        assert_eq!(
            stats_json("id", "/n", (&s, 0, "t"), None, 2048)["memory_stats"]["limit"],
            2048
        );
        s.memory.limit = 1024;
        assert_eq!(
            stats_json("id", "/n", (&s, 0, "t"), None, 2048)["memory_stats"]["limit"],
            1024
        );
    }
}
