//! Conformance cases run against a fake v1 and a fake v2 cgroupfs tree in a tempdir. The fake
//! plays the kernel's part by pre-creating each cgroup's files (writes never create files).

use std::fs;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use wharf_errdefs::{Classify, ErrorKind};

use super::*;

const V1_CONTROLLERS: [&str; 8] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// Files the kernel would create in a new cgroup, per v1 hierarchy, with default contents.
fn v1_kernel_files(ctrl: &str) -> &'static [(&'static str, &'static str)] {
    match ctrl {
        "cpu" => &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_burst_us", "0"),
            ("cpu.rt_period_us", "1000000"),
            ("cpu.rt_runtime_us", "0"),
            (
                "cpu.stat",
                "nr_periods 7\nnr_throttled 2\nthrottled_time 5000\n",
            ),
        ],
        "cpuacct" => &[
            ("cpuacct.usage", "3000"),
            ("cpuacct.usage_percpu", "1000 2000 \n"),
            ("cpuacct.stat", "user 3\nsystem 1\n"),
        ],
        "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")],
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.soft_limit_in_bytes", "9223372036854771712"),
            ("memory.swappiness", "60"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
            ),
            ("memory.usage_in_bytes", "4096"),
            ("memory.max_usage_in_bytes", "8192"),
            ("memory.failcnt", "1"),
            ("memory.stat", "cache 100\nrss 200\n"),
        ],
        "devices" => &[("devices.allow", ""), ("devices.deny", "")],
        "freezer" => &[("freezer.state", "THAWED")],
        "blkio" => &[
            ("blkio.weight", "500"),
            ("blkio.throttle.read_bps_device", ""),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
            ),
        ],
        "pids" => &[("pids.max", "max"), ("pids.current", "3")],
        _ => &[],
    }
}

const V2_KERNEL_FILES: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpuset cpu io memory pids"),
    ("cgroup.subtree_control", ""),
    ("cgroup.freeze", "0"),
    ("cgroup.events", "populated 1\nfrozen 1\n"),
    ("memory.max", "max"),
    ("memory.swap.max", "max"),
    ("memory.low", "0"),
    ("memory.current", "4096"),
    ("memory.peak", "8192"),
    ("memory.events", "low 0\nhigh 0\nmax 1\noom 1\noom_kill 4\n"),
    ("memory.stat", "anon 200\nfile 100\n"),
    ("cpu.weight", "100"),
    ("cpu.max", "max 100000"),
    ("cpu.stat", "usage_usec 3\nuser_usec 2\nsystem_usec 1\nnr_periods 7\nnr_throttled 2\nthrottled_usec 5\n"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("pids.max", "max"),
    ("pids.current", "3"),
    ("io.weight", "default 100"),
    ("io.max", ""),
    ("io.stat", "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
];

struct Fake {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    h: Hierarchy,
    version: CgroupVersion,
}

impl Fake {
    fn new(version: CgroupVersion) -> Fake {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let h = match version {
            CgroupVersion::V1 => {
                let mounts = V1_CONTROLLERS
                    .iter()
                    .map(|c| {
                        let mp = root.join(c);
                        fs::create_dir(&mp).expect("mkdir");
                        fs::write(mp.join("cgroup.procs"), "1\n").expect("fixture");
                        V1Mount {
                            controllers: vec![c.to_string()],
                            mount_point: mp,
                            mount_root: "/".into(),
                            own_cgroup: "/".into(),
                        }
                    })
                    .collect();
                fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").expect("fixture");
                fs::write(root.join("cpuset/cpuset.mems"), "0\n").expect("fixture");
                Hierarchy::from_mounts(mounts, None)
            }
            CgroupVersion::V2 => {
                for (f, v) in V2_KERNEL_FILES {
                    fs::write(root.join(f), v).expect("fixture");
                }
                let u = UnifiedMount {
                    mount_point: root.clone(),
                    mount_root: "/".into(),
                    own_cgroup: "/".into(),
                };
                Hierarchy::from_mounts(Vec::new(), Some(u))
            }
        };
        Fake {
            _tmp: tmp,
            root,
            h,
            version,
        }
    }

    /// A created manager for absolute path `/wharf/c1`, its cgroup files in place.
    fn manager(&self) -> Manager {
        let m = Manager::with_version(&self.h, self.version, "/wharf/c1", "c1").expect("manager");
        for dir in m.paths() {
            fs::create_dir_all(&dir).expect("mkdir");
            let files = match self.version {
                CgroupVersion::V1 => {
                    let ctrl = dir
                        .strip_prefix(&self.root)
                        .ok()
                        .and_then(|p| p.components().next())
                        .and_then(|c| c.as_os_str().to_str())
                        .expect("controller dir");
                    v1_kernel_files(ctrl)
                }
                CgroupVersion::V2 => V2_KERNEL_FILES,
            };
            // The intermediate `/wharf` cgroup gets its files too.
            for d in [dir.parent().expect("parent"), dir.as_path()] {
                for (f, v) in files.iter().chain(&[("cgroup.procs", "")]) {
                    fs::write(d.join(f), v).expect("fixture");
                }
            }
        }
        m.create().expect("create");
        m
    }

    /// The cgroup file that holds `file` (the v1 hierarchy is picked by the file's prefix).
    fn file(&self, file: &str) -> PathBuf {
        match self.version {
            CgroupVersion::V1 => {
                let ctrl = file.split('.').next().expect("prefix");
                self.root.join(ctrl).join("wharf/c1").join(file)
            }
            CgroupVersion::V2 => self.root.join("wharf/c1").join(file),
        }
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.file(file))
            .expect("read")
            .trim()
            .to_string()
    }
}

fn both() -> [Fake; 2] {
    [Fake::new(CgroupVersion::V1), Fake::new(CgroupVersion::V2)]
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

/// (spec, expected v1 files, expected v2 files)
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

const CASES: &[Case] = &[
    (
        r#"{"memory":{"limit":1073741824,"reservation":536870912,"swap":2147483648}}"#,
        &[
            ("memory.limit_in_bytes", "1073741824"),
            ("memory.memsw.limit_in_bytes", "2147483648"),
            ("memory.soft_limit_in_bytes", "536870912"),
        ],
        &[
            ("memory.max", "1073741824"),
            ("memory.swap.max", "1073741824"),
            ("memory.low", "536870912"),
        ],
    ),
    (
        r#"{"memory":{"limit":-1}}"#,
        &[
            ("memory.limit_in_bytes", "-1"),
            ("memory.memsw.limit_in_bytes", "-1"),
        ],
        &[("memory.max", "max")],
    ),
    (
        r#"{"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0"}}"#,
        &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpu.cfs_period_us", "100000"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
        ],
        &[
            ("cpu.weight", "39"),
            ("cpu.max", "50000 100000"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
        ],
    ),
    (
        r#"{"pids":{"limit":10}}"#,
        &[("pids.max", "10")],
        &[("pids.max", "10")],
    ),
    (
        r#"{"pids":{"limit":-1}}"#,
        &[("pids.max", "max")],
        &[("pids.max", "max")],
    ),
    (
        r#"{"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}"#,
        &[
            ("blkio.weight", "500"),
            ("blkio.throttle.read_bps_device", "8:0 1048576"),
        ],
        &[
            ("io.weight", "default 4950"),
            ("io.max", "8:0 rbps=1048576"),
        ],
    ),
    // Nothing set: nothing written, and no controller is required.
    (
        r#"{"memory":{},"cpu":{},"pids":{"limit":0},"hugepageLimits":[],"devices":[]}"#,
        &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("pids.max", "max"),
            ("cpu.shares", "1024"),
        ],
        &[
            ("memory.max", "max"),
            ("pids.max", "max"),
            ("cpu.weight", "100"),
        ],
    ),
];

#[test]
fn resources_are_written_as_runc_would() {
    for fake in both() {
        for (spec, v1, v2) in CASES {
            let m = fake.manager();
            m.apply_resources(&resources(spec))
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
            let expected = if fake.version == CgroupVersion::V1 {
                v1
            } else {
                v2
            };
            for (file, value) in expected.iter() {
                assert_eq!(fake.read(file), *value, "{:?} {spec} {file}", fake.version);
            }
        }
    }
}

#[test]
fn a_limit_for_a_missing_controller_names_it() {
    for fake in both() {
        let m = fake.manager();
        let err = m
            .apply_resources(&resources(
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1024}]}"#,
            ))
            .expect_err("no hugetlb controller");
        assert!(
            matches!(&err, CgroupError::ControllerMissing { controller, .. } if controller == "hugetlb")
        );
        assert_eq!(err.kind(), ErrorKind::NotImplemented);
    }
}

#[test]
fn invalid_values_are_refused_before_writing() {
    for fake in both() {
        let m = fake.manager();
        let swap_without_limit = resources(r#"{"memory":{"swap":100}}"#);
        let bad_page = resources(r#"{"hugepageLimits":[{"pageSize":"../../x","limit":1}]}"#);
        let bad_device = resources(r#"{"devices":[{"allow":true,"access":"rwz"}]}"#);
        if fake.version == CgroupVersion::V2 {
            let e = m
                .apply_resources(&swap_without_limit)
                .expect_err("v2 swap needs limit");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
        for r in [bad_page, bad_device] {
            // v1 has no hugetlb here; either way nothing may be written.
            assert!(m.apply_resources(&r).is_err());
        }
        let (swap_file, untouched) = match fake.version {
            CgroupVersion::V1 => ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            CgroupVersion::V2 => ("memory.swap.max", "max"),
        };
        assert_eq!(fake.read(swap_file), untouched);
    }
}

#[test]
fn add_process_joins_every_hierarchy() {
    for fake in both() {
        let m = fake.manager();
        m.add_process(4242).expect("add");
        for dir in m.paths() {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).expect("procs");
            assert_eq!(procs, "4242", "{}", dir.display());
        }
        assert_eq!(m.pids().expect("pids"), [4242]);
        assert!(m.add_process(0).is_err());
    }
}

#[test]
fn freeze_and_thaw_write_the_version_specific_knob() {
    for fake in both() {
        let m = fake.manager();
        m.freeze().expect("freeze");
        assert!(m.is_frozen().expect("state"));
        match fake.version {
            CgroupVersion::V1 => assert_eq!(fake.read("freezer.state"), "FROZEN"),
            CgroupVersion::V2 => assert_eq!(fake.read("cgroup.freeze"), "1"),
        }
        m.thaw().expect("thaw");
        match fake.version {
            CgroupVersion::V1 => {
                assert_eq!(fake.read("freezer.state"), "THAWED");
                assert!(!m.is_frozen().expect("state"));
            }
            CgroupVersion::V2 => assert_eq!(fake.read("cgroup.freeze"), "0"),
        }
    }
}

#[test]
fn stats_read_the_same_numbers_from_either_layout() {
    for fake in both() {
        let s = fake.manager().stats().expect("stats");
        assert_eq!(s.memory.usage, 4096);
        assert_eq!(s.memory.max_usage, 8192);
        assert_eq!(s.memory.failcnt, 1);
        assert_eq!(s.memory.oom_kill, 4);
        assert_eq!(s.memory.stat.len(), 2);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, None);
        assert_eq!(s.cpu.throttling.periods, 7);
        assert_eq!(s.cpu.throttling.throttled_periods, 2);
        assert!(s.cpu.online_cpus > 0);
        assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 4096);
        assert_eq!(s.blkio.io_serviced_recursive[0].op, "Read");
        match fake.version {
            CgroupVersion::V1 => {
                assert_eq!(s.cpu.total_usage_ns, 3000);
                assert_eq!(s.cpu.percpu_usage_ns, [1000, 2000]);
                assert_eq!(s.cpu.throttling.throttled_time_ns, 5000);
                assert!(s.cpu.user_ns > s.cpu.system_ns);
            }
            CgroupVersion::V2 => {
                assert_eq!(s.cpu.total_usage_ns, 3000);
                assert_eq!(s.cpu.user_ns, 2000);
                assert_eq!(s.memory.limit, u64::MAX);
            }
        }
        serde_json::to_value(&s).expect("serializes");
    }
}

#[test]
fn v1_devices_and_cpuset_inheritance() {
    let fake = Fake::new(CgroupVersion::V1);
    let m = fake.manager();
    // create() filled the new cpuset from its parent so tasks can join it.
    assert_eq!(fake.read("cpuset.cpus"), "0-1");
    assert_eq!(
        fs::read_to_string(fake.root.join("cpuset/wharf/cpuset.mems")).expect("read"),
        "0"
    );
    let r = resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}"#,
    );
    m.apply_resources(&r).expect("devices");
    assert_eq!(fake.read("devices.deny"), "a *:* rwm");
    assert_eq!(fake.read("devices.allow"), "c 1:3 rw");
    let unified = resources(r#"{"unified":{"memory.high":"1000"}}"#);
    assert!(matches!(
        m.apply_resources(&unified),
        Err(CgroupError::Unsupported(_))
    ));
}

#[test]
fn v2_create_enables_controllers_and_unified_keys() {
    let fake = Fake::new(CgroupVersion::V2);
    let m = fake.manager();
    // Each controller is enabled with its own write; the fake keeps the last one.
    let sub = fs::read_to_string(fake.root.join("cgroup.subtree_control")).expect("read");
    assert_eq!(sub, "+pids");
    m.apply_resources(&resources(r#"{"unified":{"memory.max":"12345"}}"#))
        .expect("unified");
    assert_eq!(fake.read("memory.max"), "12345");
    for bad in [
        r#"{"unified":{"../x.y":"1"}}"#,
        r#"{"unified":{"hugetlb.2MB.max":"1"}}"#,
    ] {
        assert!(m.apply_resources(&resources(bad)).is_err(), "{bad}");
    }
    let v1_only = resources(r#"{"network":{"classID":1}}"#);
    assert!(matches!(
        m.apply_resources(&v1_only),
        Err(CgroupError::ControllerMissing { .. })
    ));
}

#[test]
fn knobs_without_a_v2_equivalent_are_refused_there() {
    let fake = Fake::new(CgroupVersion::V2);
    let m = fake.manager();
    for spec in [
        r#"{"memory":{"swappiness":10}}"#,
        r#"{"memory":{"kernelTCP":1048576}}"#,
        r#"{"memory":{"disableOOMKiller":true}}"#,
        r#"{"cpu":{"realtimeRuntime":1000}}"#,
        r#"{"blockIO":{"leafWeight":100}}"#,
    ] {
        let err = m.apply_resources(&resources(spec)).expect_err(spec);
        assert_eq!(err.kind(), ErrorKind::NotImplemented, "{spec}: {err}");
    }
    // What Docker sends when nothing is set passes.
    let docker = r#"{"memory":{"disableOOMKiller":false},"cpu":{"realtimeRuntime":0,"realtimePeriod":0},"blockIO":{"weight":0}}"#;
    m.apply_resources(&resources(docker))
        .expect("docker defaults");
}

#[test]
fn kernel_memory_is_ignored_with_a_warning_on_both_versions() {
    let spec = resources(r#"{"memory":{"kernel":1048576,"limit":4194304}}"#);
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let fake = Fake::new(version);
        fake.manager()
            .apply_resources(&spec)
            .unwrap_or_else(|e| panic!("{version:?}: {e}"));
    }
    let warnings = crate::ignored_settings(&spec);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("memory.kernel"), "{warnings:?}");
    assert!(crate::ignored_settings(&resources(r#"{"memory":{"kernel":0}}"#)).is_empty());
}

#[test]
fn docker_defaults_need_no_memory_controller() {
    let fake = Fake::new(CgroupVersion::V1);
    let mounts = fake
        .h
        .v1_mounts()
        .iter()
        .filter(|m| m.controllers[0] != "memory");
    let h = Hierarchy::from_mounts(mounts.cloned().collect(), None);
    let m = Manager::new(&h, "/wharf/c1", "c1").expect("manager");
    let docker = r#"{"memory":{"limit":0,"reservation":0,"swap":0,"disableOOMKiller":false}}"#;
    m.apply_resources(&resources(docker))
        .expect("nothing to set");
    let limit = resources(r#"{"memory":{"limit":1024}}"#);
    let err = m.apply_resources(&limit).expect_err("no memory controller");
    assert!(
        matches!(err, CgroupError::ControllerMissing { controller, .. } if controller == "memory")
    );
}

#[test]
fn relative_and_default_paths_nest_under_own_cgroup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mp = tmp.path().join("memory");
    let mount = V1Mount {
        controllers: vec!["memory".into()],
        mount_point: mp.clone(),
        mount_root: "/".into(),
        own_cgroup: "/user/me".into(),
    };
    let h = Hierarchy::from_mounts(vec![mount], None);
    let rel = Manager::new(&h, "wharf/c1", "c1").expect("relative");
    assert_eq!(rel.paths(), [mp.join("user/me/wharf/c1")]);
    let default = Manager::new(&h, "", "c1").expect("default");
    assert_eq!(default.paths(), [mp.join("user/me/c1")]);
    assert!(Manager::with_version(&h, CgroupVersion::V2, "/x", "x").is_err());
    default
        .destroy()
        .expect("destroying a missing cgroup is fine");
    let stats = default.stats().expect_err("no such cgroup");
    assert_eq!(stats.kind(), ErrorKind::NotFound);
    assert_eq!(
        default.pids().expect_err("no such cgroup").kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn features_lists_controllers() {
    let fake = Fake::new(CgroupVersion::V1);
    let f = features(&fake.h);
    assert_eq!(f["version"], "V1");
    assert_eq!(
        f["controllers"].as_array().map(Vec::len),
        Some(V1_CONTROLLERS.len())
    );
}
