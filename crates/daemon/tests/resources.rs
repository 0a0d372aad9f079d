//! End-to-end: docker's Linux resource flags, sent by the real docker CLI, reach the container's
//! cgroup (v1 paths, as mounted inside the container), and bad ones fail with Docker's errors.

mod common;

use common::Daemon;

/// A block device of this host as ("MAJ:MIN", "/dev/NAME"), found through /sys/dev/block;
/// real disks (with a `device` link) first, since loop devices may have no queue.
fn block_device() -> Option<(String, String)> {
    let mut entries: Vec<_> = std::fs::read_dir("/sys/dev/block")
        .ok()?
        .flatten()
        .collect();
    entries.sort_by_key(|e| (!e.path().join("device").exists(), e.file_name()));
    entries.into_iter().find_map(|e| {
        let uevent = std::fs::read_to_string(e.path().join("uevent")).ok()?;
        let dev = format!(
            "/dev/{}",
            uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?
        );
        std::path::Path::new(&dev)
            .exists()
            .then(|| (e.file_name().to_string_lossy().into_owned(), dev))
    })
}

#[test]
fn resource_flags_reach_the_cgroup() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let (numbers, dev) = block_device().expect("a block device under /sys/dev/block");

    let out = d.ok(&[
        "run", "--rm",
        "--device-read-bps", &format!("{dev}:1mb"),
        "--device-write-iops", &format!("{dev}:100"),
        "--device-cgroup-rule", "c 42:7 rw",
        "--device-cgroup-rule", "b 7:* r",
        "--memory-swappiness", "10",
        "--use-api-socket",
        "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device \
         /sys/fs/cgroup/memory/memory.swappiness; grep -e '^c 42:7 ' -e '^b 7:\\* ' /sys/fs/cgroup/devices/devices.list; \
         test -S /var/run/docker.sock && echo socket",
    ]);
    let mut lines: Vec<&str> = out.lines().collect();
    if lines.len() >= 5 {
        lines[3..5].sort_unstable(); // devices.list has its own order
    }
    let (read_bps, write_iops) = (format!("{numbers} 1048576"), format!("{numbers} 100"));
    assert_eq!(
        lines,
        [
            read_bps.as_str(),
            &write_iops,
            "10",
            "b 7:* r",
            "c 42:7 rw",
            "socket"
        ],
        "{out}"
    );

    // --label-file: KEY=VAL lines, comments and bare keys skipped, -l after the file.
    let labels = d.dir.path().join("labels");
    std::fs::write(&labels, "a=1\n# note\nbare\nb=two words\n").expect("label file");
    let id = d.ok(&[
        "create",
        "--label-file",
        &labels.display().to_string(),
        "-l",
        "c=3",
        "busybox",
        "true",
    ]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{json .Config.Labels}}", &id]),
        r#"{"a":"1","b":"two words","c":"3"}"#
    );
    // dockerd stores the CLI's default swappiness (-1) as null.
    assert_eq!(
        d.ok(&[
            "inspect",
            "--format",
            "{{json .HostConfig.MemorySwappiness}}",
            &id
        ]),
        "null"
    );
    d.ok(&["rm", &id]);

    // The daemon resolves device paths with stat(2), as dockerd does (the CLI turns any
    // "no such file or directory" into 127).
    let o = d.docker(&[
        "run",
        "--rm",
        "--device-read-bps",
        "/dev/wharf-no-such-disk:1mb",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        common::stderr(&o).contains("stat /dev/wharf-no-such-disk: no such file or directory"),
        "{}",
        common::stderr(&o)
    );

    // No GPU driver exists: dockerd's refusal.
    let o = d.docker(&["run", "--rm", "--gpus", "all", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        common::stderr(&o)
            .contains(r#"could not select device driver "" with capabilities: [[gpu]]"#),
        "{}",
        common::stderr(&o)
    );

    // The docker CLI validates rules itself; the API must refuse bad ones too (400).
    let body = br#"{"Image":"busybox","HostConfig":{"DeviceCgroupRules":["c 1:3 rwx"]}}"#;
    let (status, resp) = d.raw("POST", "/v1.45/containers/create", body);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&resp));
    assert!(
        String::from_utf8_lossy(&resp).contains("invalid device cgroup rule format: 'c 1:3 rwx'")
    );

    // Windows-only settings through the API: a warning (CpuPercent) or dockerd's error (IOMaximum*).
    let (status, resp) = d.raw(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"CpuPercent":50,"CpuCount":2}}"#,
    );
    let created: serde_json::Value = serde_json::from_slice(&resp).expect("create response");
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["Warnings"],
        serde_json::json!(["linux does not support CPU percent. Percent discarded."])
    );
    d.ok(&["rm", created["Id"].as_str().unwrap_or_default()]);
    let (status, resp) = d.raw(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"IOMaximumIOps":5}}"#,
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&resp));

    // Real-time runtime needs an rt budget in the parent cgroup; without one the kernel
    // refuses the write and the run fails, as with runc under dockerd.
    let o = d.docker(&[
        "run",
        "--rm",
        "--cpu-rt-runtime",
        "1000",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.rt_runtime_us",
    ]);
    if o.status.success() {
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1000");
    } else {
        assert_eq!(o.status.code(), Some(125), "{}", common::stderr(&o));
        assert!(
            common::stderr(&o).contains("rt_runtime"),
            "{}",
            common::stderr(&o)
        );
    }
}
