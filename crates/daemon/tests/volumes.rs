//! End-to-end volumes and mounts: the real docker CLI, `wharf` and docker-py against a real
//! wharfd (named and anonymous volumes, copy-up, binds, tmpfs, --volumes-from, rm -v, prune,
//! the local driver's tmpfs and bind devices, bad input, kill -9 during volume work).

mod common;

use std::path::Path;
use std::process::Output;

use common::Daemon;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Sorted `volume ls -q`.
fn volumes(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn containers(d: &Daemon) -> usize {
    d.ok(&["ps", "-aq"]).lines().count()
}

/// Asserts that `args` fails with a message containing `msg`.
fn fails_with(d: &Daemon, args: &[&str], msg: &str) {
    let o = d.docker(args);
    assert_ne!(code(&o), 0, "docker {args:?} should fail");
    assert!(
        common::stderr(&o).contains(msg),
        "docker {args:?}: {}",
        common::stderr(&o)
    );
}

#[test]
fn named_volumes_binds_tmpfs_and_bad_input() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let host = tempfile::tempdir().expect("host dir");

    // A named volume: Docker's layout, inspect fields, data outliving its containers.
    assert_eq!(
        d.ok(&["volume", "create", "--label", "team=a", "data1"]),
        "data1"
    );
    let mp = d.data_root.join("volumes/data1/_data");
    assert_eq!(
        d.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}} {{.Driver}} {{.Scope}} {{.Labels.team}}",
            "data1"
        ]),
        format!("{} local local a", mp.display())
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "data1:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "hi"
    );
    assert_eq!(
        std::fs::read_to_string(mp.join("f")).expect("on host"),
        "hi\n"
    );

    // In use (even by a stopped container): refused, with or without -f.
    d.ok(&[
        "create",
        "--name",
        "user1",
        "-v",
        "data1:/data",
        "busybox",
        "true",
    ]);
    fails_with(
        &d,
        &["volume", "rm", "data1"],
        "remove data1: volume is in use - [",
    );
    fails_with(&d, &["volume", "rm", "-f", "data1"], "volume is in use");
    let m = d.ok(&["inspect", "-f", "{{json .Mounts}}", "user1"]);
    let m: serde_json::Value = serde_json::from_str(&m).expect("mounts json");
    assert_eq!(m[0]["Type"], "volume");
    assert_eq!(m[0]["Name"], "data1");
    assert_eq!(m[0]["Source"], s(&mp));
    assert_eq!(m[0]["Destination"], "/data");
    assert_eq!(m[0]["Driver"], "local");
    assert_eq!(m[0]["RW"], true);

    // Bad input: Docker's message and nothing changes.
    let (vols, ctrs) = (volumes(&d), containers(&d));
    fails_with(&d, &["volume", "create", "a/b"], "create a/b: \"a/b\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed");
    fails_with(
        &d,
        &["volume", "create", "-d", "nope", "v2"],
        "error looking up volume plugin nope: plugin \"nope\" not found",
    );
    fails_with(
        &d,
        &["volume", "create", "-o", "bogus=1", "v3"],
        "invalid option: \"bogus\"",
    );
    fails_with(
        &d,
        &["run", "-v", "rel/x:/x", "busybox", "true"],
        "includes invalid characters for a local volume name",
    );
    let missing = host.path().join("missing");
    fails_with(
        &d,
        &[
            "run",
            "--mount",
            &format!("type=bind,src={},dst=/x", s(&missing)),
            "busybox",
            "true",
        ],
        &format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            s(&missing)
        ),
    );
    fails_with(
        &d,
        &[
            "run",
            "--mount",
            "type=bind,bogus=1,dst=/x",
            "busybox",
            "true",
        ],
        "unexpected key 'bogus' in 'bogus=1'",
    );
    let o = d.wharf(&[
        "run",
        "--mount",
        "type=bind,bogus=1,dst=/x",
        "busybox",
        "true",
    ]);
    assert!(
        common::stderr(&o).contains("unexpected key 'bogus' in 'bogus=1'"),
        "{}",
        common::stderr(&o)
    );
    fails_with(
        &d,
        &["run", "-v", "data1:/d:rshared", "busybox", "true"],
        "invalid mode: rshared",
    );
    // Through the API: a 404 makes the docker CLI try to pull the image, as with dockerd.
    let (st, body) = d.raw(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Binds":["newvol:/d"],"VolumeDriver":"nope"}}"#,
    );
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));
    let body: serde_json::Value = serde_json::from_slice(&body).expect("error json");
    let body = body["message"].as_str().unwrap_or_default();
    assert!(
        body.contains(
            "create newvol: error looking up volume plugin nope: plugin \"nope\" not found"
        ),
        "{body}"
    );
    assert!(!missing.exists());
    assert_eq!((volumes(&d), containers(&d)), (vols, ctrs));

    // Binds: `:ro` refuses writes; a missing `-v` source is created; --read-only keeps volumes writable.
    std::fs::write(host.path().join("seed"), "seed\n").expect("seed");
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/h:ro", s(host.path())),
        "busybox",
        "sh",
        "-c",
        "cat /h/seed; echo x > /h/new",
    ]);
    assert_ne!(code(&o), 0);
    assert!(
        common::stderr(&o).contains("Read-only file system"),
        "{}",
        common::stderr(&o)
    );
    assert!(!host.path().join("new").exists());
    let made = host.path().join("made/deep");
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", s(&made)),
        "busybox",
        "touch",
        "/m/f",
    ]);
    assert!(made.join("f").exists());
    d.ok(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo ok > /data/ro-test && ! touch /rootfs-file",
    ]);

    // tmpfs size limits hold (--tmpfs and --mount type=tmpfs).
    let fill = "dd if=/dev/zero of=/t/f bs=1k count=2048";
    for args in [
        vec!["--tmpfs", "/t:size=1m"],
        vec!["--mount", "type=tmpfs,dst=/t,tmpfs-size=1048576"],
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter().copied());
        a.extend(["busybox", "sh", "-c", fill]);
        let o = d.docker(&a);
        assert_ne!(code(&o), 0, "{a:?}");
        assert!(
            common::stderr(&o).contains("No space left on device"),
            "{}",
            common::stderr(&o)
        );
    }

    // The local driver: a tmpfs volume and a bind `device`.
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tv",
    ]);
    assert_eq!(
        d.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Options.type}} {{.Options.o}}",
            "tv"
        ]),
        "tmpfs size=1m"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        "busybox",
        "sh",
        "-c",
        &format!("grep ' /t ' /proc/mounts; {fill} || echo full"),
    ]);
    assert!(
        out.starts_with("tmpfs /t tmpfs") && out.ends_with("full"),
        "{out}"
    );
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &format!("device={}", s(host.path())),
        "-o",
        "o=bind",
        "bv",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "bv:/b",
            "busybox",
            "sh",
            "-c",
            "cat /b/seed; echo w > /b/from-volume"
        ]),
        "seed"
    );
    assert!(host.path().join("from-volume").exists());
    d.ok(&["volume", "rm", "bv"]);
    assert!(
        host.path().join("seed").exists(),
        "removing a bind volume keeps the host data"
    );

    // --mount creates a volume with driver options.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=mv,dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m",
        "busybox",
        "grep",
        " /m ",
        "/proc/mounts",
    ]);
    assert!(
        out.starts_with("tmpfs /m tmpfs") && out.contains("size=2048k"),
        "{out}"
    );
    d.ok(&["volume", "rm", "mv"]);

    // system df -v lists volumes with their links.
    let df = d.ok(&["system", "df", "-v"]);
    assert!(df.contains("data1"), "{df}");

    // Filters and events.
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]),
        "data1"
    );
    assert_eq!(
        d.ok(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            "name=tv",
            "--filter",
            "driver=local"
        ]),
        "tv"
    );
    // `--until 0s` is whole seconds: let this one end.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let ev = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    let n = |w: &str| ev.lines().filter(|l| *l == w).count();
    assert_eq!((n("mount data1"), n("unmount data1")), (3, 3), "{ev}");
    for want in ["create data1", "create tv", "mount bv", "destroy bv"] {
        assert!(ev.lines().any(|l| l == want), "{want} missing from\n{ev}");
    }

    // wharf's own volume commands.
    let o = d.wharf(&["volume", "ls"]);
    let ls = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        ls.starts_with("DRIVER") && ls.contains("VOLUME NAME") && ls.contains("local     data1"),
        "{ls}"
    );
    let o = d.wharf(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}}:{{.Label \"team\"}}",
        "--filter",
        "label=team",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "data1:a");
    let o = d.wharf(&["volume", "create", "wv"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "wv");
    let o = d.wharf(&["volume", "rm", "data1"]);
    assert_eq!(code(&o), 1);
    assert!(
        common::stderr(&o).contains("volume is in use"),
        "{}",
        common::stderr(&o)
    );
    let o = d.wharf(&["volume", "inspect", "-f", "{{.Name}}", "wv"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "wv");
    assert_eq!(code(&d.wharf(&["volume", "rm", "wv"])), 0);
    d.ok(&["rm", "user1"]);
    d.ok(&["volume", "rm", "data1"]);
    assert!(!mp.exists());
}

#[test]
fn copy_up_volumes_from_backup_rm_v_and_prune() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let host = tempfile::tempdir().expect("host dir");

    // An image with `VOLUME /data` holding files (owner, mode, symlink).
    d.ok(&["run", "--name", "base", "busybox", "sh", "-c",
        "mkdir /data && echo seed > /data/f && chown 1000:1000 /data/f && chmod 640 /data/f && ln -s f /data/l && chown 1001 /data"]);
    d.ok(&["commit", "--change", "VOLUME /data", "base", "withvol:1"]);
    d.ok(&["rm", "base"]);
    let check = "stat -c '%u %a' /data/f; cat /data/f; readlink /data/l; stat -c %u /data";
    let want = "1000 640\nseed\nf\n1001";
    // Anonymous volume for the image's VOLUME, and a fresh named one: both filled.
    assert_eq!(d.ok(&["run", "--rm", "withvol:1", "sh", "-c", check]), want);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "fresh:/data",
            "withvol:1",
            "sh",
            "-c",
            check
        ]),
        want
    );
    // Never into a volume with data; not with nocopy.
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh:/data",
        "busybox",
        "sh",
        "-c",
        "echo mine > /data/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "fresh:/data",
            "withvol:1",
            "cat",
            "/data/f"
        ]),
        "mine"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "nc:/data:nocopy",
            "withvol:1",
            "ls",
            "-A",
            "/data"
        ]),
        ""
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--mount",
            "src=nc2,dst=/data,volume-nocopy",
            "withvol:1",
            "ls",
            "-A",
            "/data"
        ]),
        ""
    );
    // `run --rm` removed its anonymous volumes, never named ones.
    assert_eq!(volumes(&d), ["fresh", "nc", "nc2"]);

    // --volumes-from shares, `:ro` refuses writes; the backup recipe and restore.
    d.ok(&[
        "run",
        "--name",
        "db",
        "withvol:1",
        "sh",
        "-c",
        "echo row1 > /data/table",
    ]);
    let anon = d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "db"]);
    assert_eq!(anon.len(), 64, "{anon}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "db",
            "busybox",
            "cat",
            "/data/table"
        ]),
        "row1"
    );
    fails_with(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "db:ro",
            "busybox",
            "touch",
            "/data/x",
        ],
        "Read-only file system",
    );
    d.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "db",
        "-v",
        &format!("{}:/backup", s(host.path())),
        "busybox",
        "tar",
        "cf",
        "/backup/b.tar",
        "/data",
    ]);
    assert!(host.path().join("b.tar").exists());
    d.ok(&["volume", "create", "restored"]);
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "restored:/data",
        "-v",
        &format!("{}:/backup", s(host.path())),
        "busybox",
        "sh",
        "-c",
        "cd / && tar xf /backup/b.tar",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "restored:/data",
            "busybox",
            "cat",
            "/data/table",
            "/data/f"
        ]),
        "row1\nseed"
    );

    // rm (no -v) keeps the anonymous volume; prune takes it (anonymous only by default).
    d.ok(&["rm", "db"]);
    assert!(volumes(&d).contains(&anon));
    d.ok(&[
        "create",
        "--name",
        "keep",
        "-v",
        "/k",
        "-v",
        "restored:/r",
        "busybox",
        "true",
    ]);
    let keep_anon = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Destination \"/k\"}}{{.Name}}{{end}}{{end}}",
        "keep",
    ]);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&anon) && !out.contains(&keep_anon), "{out}");
    assert_eq!(
        volumes(&d).len(),
        5,
        "fresh nc nc2 restored + keep's anonymous one"
    );
    // Label filters, then `--all` takes unused named volumes too; used ones stay.
    d.ok(&["volume", "create", "--label", "keep=1", "labelled"]);
    let out = d.ok(&["volume", "prune", "-af", "--filter", "label!=keep"]);
    assert!(
        out.contains("fresh") && !out.contains("labelled") && !out.contains("restored"),
        "{out}"
    );
    assert_eq!(volumes(&d), {
        let mut v = vec![
            "labelled".to_string(),
            "restored".to_string(),
            keep_anon.clone(),
        ];
        v.sort();
        v
    });
    // Before API 1.42, prune took every unused volume, named ones included.
    d.ok(&["volume", "create", "oldapi"]);
    let (st, body) = d.raw("POST", "/v1.41/volumes/prune", b"");
    assert_eq!(st, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        body["VolumesDeleted"],
        serde_json::json!(["labelled", "oldapi"])
    );
    // rm -v removes the container's anonymous volumes only.
    d.ok(&["rm", "-v", "keep"]);
    assert_eq!(volumes(&d), ["restored"]);
}

/// Directories under `<data-root>/volumes` that are volumes (what `volume ls` must show).
fn on_disk(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.data_root.join("volumes"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn kill_9_during_volume_work_leaves_whole_volumes() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["volume", "create", "precious"]);
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "precious:/p",
        "busybox",
        "sh",
        "-c",
        "echo keep > /p/f",
    ]);
    // In use, so `prune -a` below must leave it alone.
    d.ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "precious:/p",
        "busybox",
        "true",
    ]);
    // Seeded delays, so a failure replays.
    let mut seed: u64 = 0x5eed_0001;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % 250
    };
    let mut progressed = 0;
    for round in 0..6 {
        let name = format!("v{round}");
        let cname = format!("c{round}");
        let mut work = vec![
            d.docker_spawn(&["volume", "create", &name], std::process::Stdio::null()),
            d.docker_spawn(
                &[
                    "create",
                    "--name",
                    &cname,
                    "-v",
                    "/anon",
                    "-v",
                    &format!("n{round}:/n"),
                    "busybox",
                    "true",
                ],
                std::process::Stdio::null(),
            ),
            d.docker_spawn(&["volume", "prune", "-af"], std::process::Stdio::null()),
        ];
        std::thread::sleep(std::time::Duration::from_millis(next()));
        d.crash();
        for w in &mut work {
            let _ = w.wait();
        }
        d.start_again();
        // The list matches the disk, with no half-made leftovers, and the data survived.
        let listed = volumes(&d);
        assert_eq!(listed, on_disk(&d), "round {round}");
        for v in &listed {
            assert!(
                d.data_root.join("volumes").join(v).join("_data").is_dir(),
                "{v}"
            );
        }
        assert!(listed.contains(&"precious".to_string()));
        if listed.len() > 1 || containers(&d) > 1 {
            progressed += 1;
        }
        // Every volume a container references exists.
        for c in d.ok(&["ps", "-aq"]).lines() {
            for n in d
                .ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", c])
                .split_whitespace()
            {
                assert!(
                    listed.contains(&n.to_string()),
                    "round {round}: {n} of {c} missing"
                );
            }
        }
    }
    assert_eq!(
        d.ok(&["run", "--rm", "-v", "precious:/p", "busybox", "cat", "/p/f"]),
        "keep"
    );
    // References come back from the container records: still in use after the restarts.
    let o = d.docker(&["volume", "rm", "precious"]);
    assert!(
        common::stderr(&o).contains("volume is in use"),
        "{}",
        common::stderr(&o)
    );
    // The crashes hit work in flight, not only an idle daemon.
    assert!(progressed > 0, "no volume work ever reached the daemon");
}

#[test]
fn docker_py_volumes() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let host = tempfile::tempdir().expect("host dir");
    d.docker_py(
        "dockerpy_volumes.py",
        &[s(host.path())],
        &[],
        "docker-py volumes: ok",
    );
}

#[test]
fn cp_reaches_volumes_and_tmpfs_mounts() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let host = tempfile::tempdir().expect("host dir");
    let f = host.path().join("in.txt");
    std::fs::write(&f, "into\n").expect("write");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cpc",
        "-v",
        "cpv:/vol",
        "--tmpfs",
        "/t",
        "--mount",
        "type=tmpfs,dst=/m",
        "busybox",
        "sleep",
        "300",
    ]);
    for dest in ["/vol/x", "/t/x", "/m/x"] {
        d.ok(&["cp", s(&f), &format!("cpc:{dest}")]);
        assert_eq!(d.ok(&["exec", "cpc", "cat", dest]), "into", "{dest}");
    }
    assert_eq!(
        std::fs::read_to_string(d.data_root.join("volumes/cpv/_data/x")).expect("in the volume"),
        "into\n"
    );
    d.ok(&["exec", "cpc", "sh", "-c", "echo out > /t/o"]);
    let o = d.docker(&["cp", "cpc:/t/o", s(host.path())]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(
        std::fs::read_to_string(host.path().join("o")).expect("copied out"),
        "out\n"
    );
    // A stopped container's volume is still reachable.
    d.ok(&[
        "create", "--name", "cps", "-v", "cpv:/vol", "busybox", "true",
    ]);
    let o = d.docker(&["cp", "cps:/vol/x", &format!("{}/back", s(host.path()))]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(
        std::fs::read_to_string(host.path().join("back")).expect("back"),
        "into\n"
    );
}
