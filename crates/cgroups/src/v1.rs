//! The cgroup v1 driver: one directory per mounted hierarchy.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::cgfs::{self, read_flat_keyed, read_u64, write};
use crate::convert::{self, nonzero};
use crate::devices::rules_from_oci;
use crate::manager::{CgroupPath, FREEZE_TIMEOUT};
use crate::stats::{parse_v1_blkio, Stats};
use crate::{CgroupError, Hierarchy};

/// The container's directory in one hierarchy.
#[derive(Debug)]
struct Subsystem {
    controllers: Vec<String>,
    mount_point: PathBuf,
    dir: PathBuf,
}

#[derive(Debug)]
pub(crate) struct V1Manager {
    subsystems: Vec<Subsystem>,
}

impl V1Manager {
    pub(crate) fn new(h: &Hierarchy, path: &CgroupPath) -> Result<V1Manager, CgroupError> {
        let subsystems: Vec<Subsystem> = h
            .v1_mounts()
            .iter()
            .map(|m| Subsystem {
                controllers: m.controllers.clone(),
                mount_point: m.mount_point.clone(),
                dir: path.dir_in(&m.mount_point, &m.mount_root, &m.own_cgroup),
            })
            .collect();
        if subsystems.is_empty() {
            return Err(CgroupError::Unsupported(
                "no cgroup v1 hierarchy is mounted".into(),
            ));
        }
        Ok(V1Manager { subsystems })
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.subsystems
            .iter()
            .find(|s| s.controllers.iter().any(|c| c == controller))
            .map(|s| s.dir.as_path())
    }

    /// The directory of a controller that a set resource needs.
    fn need(&self, controller: &str, field: &str) -> Result<&Path, CgroupError> {
        self.dir(controller)
            .ok_or_else(|| missing(controller, field))
    }

    pub(crate) fn has_freezer(&self) -> bool {
        self.dir("freezer").is_some()
    }

    /// Where membership is read: any hierarchy holds every task, freezer is the usual choice.
    pub(crate) fn procs_dir(&self) -> &Path {
        // `new` refuses an empty hierarchy list, so index 0 exists.
        self.dir("freezer").unwrap_or(&self.subsystems[0].dir)
    }

    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.subsystems.iter().map(|s| s.dir.clone()).collect()
    }

    pub(crate) fn create(&self) -> Result<(), CgroupError> {
        for s in &self.subsystems {
            if s.controllers.iter().any(|c| c == "cpuset") {
                create_cpuset(&s.mount_point, &s.dir)?;
            } else {
                cgfs::mkdir_all(&s.dir)?;
            }
        }
        Ok(())
    }

    pub(crate) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for s in &self.subsystems {
            write(&s.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub(crate) fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            if p.limit() != 0 {
                let dir = self.need("pids", "pids.limit")?;
                write(dir, "pids.max", &convert::limit_str(p.limit()))?;
            }
        }
        if let Some(b) = r.block_io() {
            self.apply_blkio(b)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let dir = self.need("hugetlb", "hugepageLimits")?;
            let size = convert::hugepage_size(h.page_size())?;
            write(
                dir,
                &format!("hugetlb.{size}.limit_in_bytes"),
                &h.limit().to_string(),
            )?;
        }
        if let Some(rules) = r.devices() {
            let rules = rules_from_oci(rules)?;
            if !rules.is_empty() {
                let dir = self.need("devices", "devices")?;
                for rule in rules {
                    let file = if rule.allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    write(dir, file, &rule.v1_line())?;
                }
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                write(
                    self.need("net_cls", "network.classID")?,
                    "net_cls.classid",
                    &id.to_string(),
                )?;
            }
            for p in n.priorities().iter().flatten() {
                let dir = self.need("net_prio", "network.priorities")?;
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        for (dev, limits) in r.rdma().iter().flatten() {
            if let Some(line) = convert::rdma_line(dev, limits)? {
                write(self.need("rdma", "rdma")?, "rdma.max", &line)?;
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::Unsupported(
                "linux.resources.unified needs cgroup v2; this cgroup is on v1".into(),
            ));
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let limit = nonzero(m.limit());
        let swap = nonzero(m.swap());
        // Docker always sends disableOOMKiller=false; that alone must not need the controller.
        let any = limit.is_some()
            || swap.is_some()
            || nonzero(m.reservation()).is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        let dir = match self.dir("memory") {
            Some(dir) => dir,
            None if !any => return Ok(()),
            None => return Err(missing("memory", "memory")),
        };
        // memory.kernel is ignored (see `ignored_settings`): the kernel deprecated kmem limits.
        convert::check_before_update(m, || read_u64(dir, "memory.usage_in_bytes"))?;
        let has_memsw = cgfs::exists(dir, "memory.memsw.limit_in_bytes");
        // Lifting the memory limit lifts swap too unless the spec says otherwise (runc).
        let swap = match (limit, swap) {
            (Some(-1), None) if has_memsw => Some(-1),
            _ => swap,
        };
        if swap.is_some() && !has_memsw {
            return Err(CgroupError::ControllerMissing {
                controller: "memory.memsw (swap accounting)".into(),
                field: "memory.swap".into(),
            });
        }
        match (limit, swap) {
            (Some(limit), Some(swap)) => {
                // The kernel keeps memsw >= limit at every step, so order the writes.
                let current = read_u64(dir, "memory.limit_in_bytes")?;
                let swap_first = swap < 0 || u64::try_from(swap).is_ok_and(|s| current < s);
                let writes = [
                    ("memory.memsw.limit_in_bytes", swap),
                    ("memory.limit_in_bytes", limit),
                ];
                let order = if swap_first { [0, 1] } else { [1, 0] };
                for i in order {
                    write(dir, writes[i].0, &writes[i].1.to_string())?;
                }
            }
            (Some(limit), None) => write(dir, "memory.limit_in_bytes", &limit.to_string())?,
            (None, Some(swap)) => write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?,
            (None, None) => {}
        }
        if let Some(r) = nonzero(m.reservation()) {
            write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
        if let Some(k) = m.kernel_tcp() {
            write(dir, "memory.kmem.tcp.limit_in_bytes", &k.to_string())?;
        }
        if let Some(s) = m.swappiness() {
            write(
                dir,
                "memory.swappiness",
                &convert::swappiness(s)?.to_string(),
            )?;
        }
        if let Some(d) = m.disable_oom_killer() {
            write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<(), CgroupError> {
        let cpu_set = c.shares().is_some_and(|s| s != 0)
            || c.quota().is_some_and(|q| q != 0)
            || c.period().is_some_and(|p| p != 0)
            || c.burst().is_some()
            || c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
            || c.idle().is_some();
        if cpu_set {
            let dir = self.need("cpu", "cpu")?;
            if let Some(s) = c.shares().filter(|s| *s != 0) {
                write(dir, "cpu.shares", &s.to_string())?;
            }
            let quota = c.quota().filter(|q| *q != 0);
            if let Some(p) = c.period().filter(|p| *p != 0) {
                // A shorter period can be invalid under the old quota: set quota first then.
                if let Err(e) = write(dir, "cpu.cfs_period_us", &p.to_string()) {
                    let Some(q) = quota else { return Err(e) };
                    write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                    write(dir, "cpu.cfs_period_us", &p.to_string())?;
                }
            }
            if let Some(q) = quota {
                write(dir, "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(b) = c.burst() {
                write(dir, "cpu.cfs_burst_us", &b.to_string())?;
            }
            if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
                write(dir, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
                write(dir, "cpu.rt_runtime_us", &r.to_string())?;
            }
            if let Some(i) = c.idle() {
                write(dir, "cpu.idle", &i.to_string())?;
            }
        }
        for (value, file, field) in [
            (c.cpus(), "cpuset.cpus", "cpu.cpus"),
            (c.mems(), "cpuset.mems", "cpu.mems"),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                write(self.need("cpuset", field)?, file, v)?;
            }
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        let any = b.weight().is_some_and(|w| w != 0)
            || b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
            || throttles
                .iter()
                .any(|(d, _)| d.as_ref().is_some_and(|d| !d.is_empty()));
        if !any {
            return Ok(());
        }
        let dir = self.need("blkio", "blockIO")?;
        // Kernels without CFQ only have BFQ's knobs.
        let prefix = if cgfs::exists(dir, "blkio.weight") {
            "blkio."
        } else {
            "blkio.bfq."
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(dir, &format!("{prefix}weight"), &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(dir, "blkio.leaf_weight", &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            let dev = format!("{}:{}", d.major(), d.minor());
            if let Some(w) = d.weight() {
                write(
                    dir,
                    &format!("{prefix}weight_device"),
                    &format!("{dev} {w}"),
                )?;
            }
            if let Some(w) = d.leaf_weight() {
                write(dir, "blkio.leaf_weight_device", &format!("{dev} {w}"))?;
            }
        }
        for (devs, file) in throttles {
            for d in devs.iter().flatten() {
                write(
                    dir,
                    file,
                    &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
        Ok(())
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let dir = self.need("freezer", if frozen { "freeze" } else { "thaw" })?;
        if !frozen {
            return write(dir, "freezer.state", "THAWED");
        }
        // Tasks forked mid-freeze can leave the cgroup FREEZING; writing again retries them.
        let done = cgfs::wait_for(FREEZE_TIMEOUT, || {
            write(dir, "freezer.state", "FROZEN")?;
            Ok(cgfs::read(dir, "freezer.state")?.trim() == "FROZEN")
        })?;
        if done {
            return Ok(());
        }
        write(dir, "freezer.state", "THAWED")?;
        Err(CgroupError::FreezeTimeout(dir.to_path_buf()))
    }

    pub(crate) fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.dir("freezer") {
            Some(dir) => Ok(cgfs::read(dir, "freezer.state")?.trim() == "FROZEN"),
            None => Ok(false),
        }
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        let mut st = Stats::default();
        if let Some(dir) = self.dir("cpuacct") {
            st.cpu.total_usage_ns = read_u64(dir, "cpuacct.usage")?;
            if let Some(s) = cgfs::read_opt(dir, "cpuacct.usage_percpu")? {
                let path = dir.join("cpuacct.usage_percpu");
                st.cpu.percpu_usage_ns = s
                    .split_whitespace()
                    .map(|v| cgfs::parse_u64(&path, v))
                    .collect::<Result<_, _>>()?;
            }
            // cpuacct.stat counts USER_HZ ticks.
            let ticks = read_flat_keyed(dir, "cpuacct.stat")?;
            let ns_per_tick = 1_000_000_000 / clock_ticks();
            st.cpu.user_ns = ticks
                .get("user")
                .copied()
                .unwrap_or(0)
                .saturating_mul(ns_per_tick);
            st.cpu.system_ns = ticks
                .get("system")
                .copied()
                .unwrap_or(0)
                .saturating_mul(ns_per_tick);
        }
        if let Some(dir) = self.dir("cpu") {
            let s = read_flat_keyed(dir, "cpu.stat")?;
            st.cpu.throttling.periods = s.get("nr_periods").copied().unwrap_or(0);
            st.cpu.throttling.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
            st.cpu.throttling.throttled_time_ns = s.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(dir) = self.dir("memory") {
            st.memory.usage = read_u64(dir, "memory.usage_in_bytes")?;
            st.memory.max_usage = read_u64(dir, "memory.max_usage_in_bytes")?;
            st.memory.limit = read_u64(dir, "memory.limit_in_bytes")?;
            st.memory.failcnt = read_u64(dir, "memory.failcnt")?;
            st.memory.oom_kill = read_flat_keyed(dir, "memory.oom_control")?
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
            st.memory.stat = read_flat_keyed(dir, "memory.stat")?;
        }
        if let Some(dir) = self.dir("pids") {
            st.pids.current = read_u64(dir, "pids.current")?;
            let max = read_u64(dir, "pids.max")?;
            st.pids.limit = (max != u64::MAX && max != 0).then_some(max);
        }
        if let Some(dir) = self.dir("blkio") {
            // CFQ's files when the kernel has them, else the throttle layer's (always counted).
            for (kind, into) in [
                (
                    "io_service_bytes_recursive",
                    &mut st.blkio.io_service_bytes_recursive,
                ),
                ("io_serviced_recursive", &mut st.blkio.io_serviced_recursive),
            ] {
                let cfq = cgfs::read_opt(dir, &format!("blkio.{kind}"))?;
                let text = match cfq.filter(|t| !parse_v1_blkio(t).is_empty()) {
                    Some(t) => Some(t),
                    None => cgfs::read_opt(dir, &format!("blkio.throttle.{kind}"))?,
                };
                *into = text.map(|t| parse_v1_blkio(&t)).unwrap_or_default();
            }
        }
        Ok(st)
    }
}

fn missing(controller: &str, field: &str) -> CgroupError {
    CgroupError::ControllerMissing {
        controller: controller.into(),
        field: field.into(),
    }
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// mkdir -p in the cpuset hierarchy. A new cpuset starts with empty cpus/mems, which makes
/// joining it fail, so each new level inherits its parent's values (as runc does).
fn create_cpuset(mount_point: &Path, dir: &Path) -> Result<(), CgroupError> {
    let rel = dir
        .strip_prefix(mount_point)
        .map_err(|_| CgroupError::InvalidPath {
            path: dir.display().to_string(),
            reason: format!("not below the cpuset mount {}", mount_point.display()),
        })?;
    let mut parent = mount_point.to_path_buf();
    for comp in rel.components() {
        let cur = parent.join(comp);
        cgfs::mkdir_all(&cur)?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if cgfs::read(&cur, file)?.trim().is_empty() {
                let v = cgfs::read(&parent, file)?;
                write(&cur, file, v.trim())?;
            }
        }
        parent = cur;
    }
    Ok(())
}
