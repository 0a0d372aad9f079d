//! The cgroup v2 driver: one directory in the unified hierarchy.

mod bpf;
mod devfilter;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::cgfs::{self, read_flat_keyed, read_u64};
use crate::convert::{self, nonzero};
use crate::devices::rules_from_oci;
use crate::manager::{CgroupPath, FREEZE_TIMEOUT};
use crate::stats::{parse_v2_io_stat, Stats};
use crate::{CgroupError, Hierarchy};

#[derive(Debug)]
pub(crate) struct V2Manager {
    /// The unified hierarchy's mount point: controllers are enabled from here down.
    root: PathBuf,
    dir: PathBuf,
}

impl V2Manager {
    pub(crate) fn new(h: &Hierarchy, path: &CgroupPath) -> Result<V2Manager, CgroupError> {
        let u = h
            .unified()
            .ok_or_else(|| CgroupError::Unsupported("no cgroup v2 hierarchy is mounted".into()))?;
        Ok(V2Manager {
            root: u.mount_point.clone(),
            dir: path.dir_in(&u.mount_point, &u.mount_root, &u.own_cgroup),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// mkdir -p, enabling in each ancestor's `cgroup.subtree_control` every controller it has,
    /// so the new cgroup gets all the host offers. A controller the kernel refuses to enable
    /// (e.g. because of tasks in an inner node) is left out; setting a limit for it later fails
    /// with [`CgroupError::ControllerMissing`].
    pub(crate) fn create(&self) -> Result<(), CgroupError> {
        let rel = self
            .dir
            .strip_prefix(&self.root)
            .map_err(|_| CgroupError::InvalidPath {
                path: self.dir.display().to_string(),
                reason: format!("not below the cgroup2 mount {}", self.root.display()),
            })?;
        let mut cur = self.root.clone();
        for comp in rel.components() {
            let available = cgfs::read_opt(&cur, "cgroup.controllers")?.unwrap_or_default();
            for c in available.split_whitespace() {
                // Best effort by design, see above.
                let _ = cgfs::write(&cur, "cgroup.subtree_control", &format!("+{c}"));
            }
            cur.push(comp);
            cgfs::mkdir_all(&cur)?;
        }
        Ok(())
    }

    pub(crate) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        cgfs::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    /// Writes `file` after checking that its controller is enabled for this cgroup.
    fn set(&self, file: &str, value: &str, field: &str) -> Result<(), CgroupError> {
        let controller = file.split('.').next().unwrap_or(file);
        if controller != "cgroup" {
            let enabled = cgfs::read_opt(&self.dir, "cgroup.controllers")?.unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == controller) {
                return Err(CgroupError::ControllerMissing {
                    controller: controller.into(),
                    field: field.into(),
                });
            }
        }
        cgfs::write(&self.dir, file, value)
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
                self.set("pids.max", &convert::limit_str(p.limit()), "pids.limit")?;
            }
        }
        if let Some(b) = r.block_io() {
            self.apply_io(b)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let size = convert::hugepage_size(h.page_size())?;
            self.set(
                &format!("hugetlb.{size}.max"),
                &convert::limit_str(h.limit()),
                "hugepageLimits",
            )?;
        }
        if let Some(rules) = r.devices() {
            let rules = rules_from_oci(rules)?;
            if !rules.is_empty() {
                let prog = devfilter::compile(&rules);
                bpf::attach_device_filter(&self.dir, &prog)?;
            }
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(CgroupError::ControllerMissing {
                    controller: "net_cls/net_prio (cgroup v1 only)".into(),
                    field: "network".into(),
                });
            }
        }
        for (dev, limits) in r.rdma().iter().flatten() {
            if let Some(line) = convert::rdma_line(dev, limits)? {
                self.set("rdma.max", &line, "rdma")?;
            }
        }
        for (key, value) in r.unified().iter().flatten() {
            if key.contains('/') || key.starts_with('.') || !key.contains('.') {
                return Err(CgroupError::InvalidResource {
                    field: "unified",
                    reason: format!("{key:?} is not a cgroup file name"),
                });
            }
            self.set(key, value, "unified")?;
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let unsupported =
            |what: &str| CgroupError::Unsupported(format!("{what} has no cgroup v2 equivalent"));
        // memory.kernel is ignored (see `ignored_settings`), as runc does.
        if m.kernel_tcp().is_some_and(|k| k != 0) {
            return Err(unsupported("memory.kernelTCP"));
        }
        if m.swappiness().is_some() {
            return Err(unsupported("memory.swappiness"));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported("memory.disableOOMKiller"));
        }
        convert::check_before_update(m, || read_u64(&self.dir, "memory.current"))?;
        let swap = convert::v2_swap_max(m)?;
        // Swap is written first so lowering both never leaves swap above a stale memory.max.
        if let Some(s) = swap {
            self.set("memory.swap.max", &s, "memory.swap")?;
        }
        if let Some(l) = nonzero(m.limit()) {
            self.set("memory.max", &convert::limit_str(l), "memory.limit")?;
        }
        if let Some(r) = nonzero(m.reservation()) {
            self.set("memory.low", &convert::limit_str(r), "memory.reservation")?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<(), CgroupError> {
        if c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
        {
            return Err(CgroupError::Unsupported(
                "realtime CPU scheduling (cpu.realtimePeriod/Runtime) has no cgroup v2 equivalent"
                    .into(),
            ));
        }
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            self.set(
                "cpu.weight",
                &convert::cpu_shares_to_weight(s).to_string(),
                "cpu.shares",
            )?;
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            let mut v = quota
                .filter(|q| *q > 0)
                .map_or_else(|| "max".to_string(), |q| q.to_string());
            if let Some(p) = period {
                v.push_str(&format!(" {p}"));
            }
            self.set("cpu.max", &v, "cpu.quota")?;
        }
        if let Some(b) = c.burst() {
            self.set("cpu.max.burst", &b.to_string(), "cpu.burst")?;
        }
        if let Some(i) = c.idle() {
            self.set("cpu.idle", &i.to_string(), "cpu.idle")?;
        }
        for (value, file, field) in [
            (c.cpus(), "cpuset.cpus", "cpu.cpus"),
            (c.mems(), "cpuset.mems", "cpu.mems"),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                self.set(file, v, field)?;
            }
        }
        Ok(())
    }

    fn apply_io(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        if b.leaf_weight().is_some_and(|w| w != 0) {
            return Err(CgroupError::Unsupported(
                "blockIO.leafWeight has no cgroup v2 equivalent".into(),
            ));
        }
        // BFQ takes blkio's [10, 1000] scale directly; io.weight needs conversion.
        let bfq = cgfs::exists(&self.dir, "io.bfq.weight");
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            if bfq {
                self.set("io.bfq.weight", &w.to_string(), "blockIO.weight")?;
            } else {
                let v = convert::blkio_weight_to_io_weight(w).to_string();
                self.set("io.weight", &format!("default {v}"), "blockIO.weight")?;
            }
        }
        for d in b.weight_device().iter().flatten() {
            let Some(w) = d.weight() else { continue };
            let dev = format!("{}:{}", d.major(), d.minor());
            if bfq {
                self.set(
                    "io.bfq.weight",
                    &format!("{dev} {w}"),
                    "blockIO.weightDevice",
                )?;
            } else {
                let v = convert::blkio_weight_to_io_weight(w);
                self.set("io.weight", &format!("{dev} {v}"), "blockIO.weightDevice")?;
            }
        }
        for (devs, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for d in devs.iter().flatten() {
                let v = format!("{}:{} {key}={}", d.major(), d.minor(), d.rate());
                self.set("io.max", &v, "blockIO.throttle")?;
            }
        }
        Ok(())
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        if !cgfs::exists(&self.dir, "cgroup.freeze") && self.dir.is_dir() {
            return Err(CgroupError::Unsupported(
                "the cgroup v2 freezer needs Linux 5.2 or later".into(),
            ));
        }
        cgfs::write(&self.dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        if !frozen {
            return Ok(());
        }
        if cgfs::wait_for(FREEZE_TIMEOUT, || self.is_frozen())? {
            return Ok(());
        }
        cgfs::write(&self.dir, "cgroup.freeze", "0")?;
        Err(CgroupError::FreezeTimeout(self.dir.clone()))
    }

    /// The kernel's view (`frozen` in cgroup.events), not merely the request in cgroup.freeze.
    pub(crate) fn is_frozen(&self) -> Result<bool, CgroupError> {
        let events = read_flat_keyed(&self.dir, "cgroup.events")?;
        Ok(events.get("frozen") == Some(&1))
    }

    /// SIGKILLs everything through `cgroup.kill` (Linux 5.14+); false when the kernel lacks it.
    pub(crate) fn kill_via_cgroup_kill(&self) -> Result<bool, CgroupError> {
        if !cgfs::exists(&self.dir, "cgroup.kill") {
            return Ok(false);
        }
        cgfs::write(&self.dir, "cgroup.kill", "1")?;
        Ok(true)
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        let mut st = Stats::default();
        let d = &self.dir;
        // cpu.stat's usage lines exist even without the cpu controller.
        let cpu = read_flat_keyed(d, "cpu.stat")?;
        let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
        st.cpu.total_usage_ns = us("usage_usec");
        st.cpu.user_ns = us("user_usec");
        st.cpu.system_ns = us("system_usec");
        st.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
        st.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
        st.cpu.throttling.throttled_time_ns = us("throttled_usec");

        st.memory.usage = read_u64(d, "memory.current")?;
        st.memory.max_usage = read_u64(d, "memory.peak")?;
        st.memory.limit = read_u64(d, "memory.max")?;
        let events = read_flat_keyed(d, "memory.events")?;
        st.memory.failcnt = events.get("max").copied().unwrap_or(0);
        st.memory.oom_kill = events.get("oom_kill").copied().unwrap_or(0);
        st.memory.stat = read_flat_keyed(d, "memory.stat")?;

        st.pids.current = read_u64(d, "pids.current")?;
        if let Some(max) = cgfs::read_opt(d, "pids.max")? {
            let max = cgfs::parse_u64(&d.join("pids.max"), &max)?;
            st.pids.limit = (max != u64::MAX).then_some(max);
        }
        if let Some(io) = cgfs::read_opt(d, "io.stat")? {
            st.blkio = parse_v2_io_stat(&io);
        }
        Ok(st)
    }
}
