//! End-to-end: the real docker CLI against a real wharfd, one daemon for many scenarios.

mod common;

use common::{wait_for, Daemon};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn docker_cli_scenarios() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    let v = d.ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v, "1.45");
    assert!(d
        .ok(&["info", "--format", "{{.Driver}} {{.OSType}}"])
        .starts_with("vfs linux"));
    d.import_busybox();
    assert!(d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains("busybox:latest"));

    // run: output, exit codes, env/workdir/user, --rm
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hello"]), "hello");
    assert_eq!(
        code(&d.docker(&["run", "busybox", "sh", "-c", "exit 3"])),
        3
    );
    // 127 needs the runtime to say "executable file not found" (runc does); either way the
    // failed `--rm` container must be gone and the CLI must not hang.
    assert_ne!(
        code(&d.docker(&[
            "run",
            "--rm",
            "--name",
            "nobin",
            "busybox",
            "/no/such/binary"
        ])),
        0
    );
    wait_for("failed --rm container removed", || {
        d.docker(&["inspect", "nobin"]).status.code() == Some(1)
    });
    let out = d.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u)",
    ]);
    assert_eq!(out, "1 /tmp 65534");
    // --init puts our init at pid 1
    let ps = d.ok(&["run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline"]);
    assert!(ps.starts_with("/sbin/docker-init"), "{ps}");
    // security and resources
    assert_ne!(
        code(&d.docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"])),
        0
    );
    assert_ne!(
        code(&d.docker(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "busybox",
            "chown",
            "nobody",
            "/tmp"
        ])),
        0
    );
    let cg_files = match d.ok(&["info", "--format", "{{.CgroupVersion}}"]).as_str() {
        "2" => "/sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max",
        _ => "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes",
    };
    let lim = d.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "10",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        &format!("ulimit -n; cat {cg_files}"),
    ]);
    assert_eq!(
        lim.split_whitespace().collect::<Vec<_>>(),
        ["100", "10", "67108864"]
    );
    // a private cgroup namespace is rooted at the container's own cgroup
    let own = d.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        "private",
        "busybox",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(own.lines().all(|l| l.ends_with(":/")), "{own}");
    // the default network mode: the default bridge (eth0) besides loopback
    let links = d.ok(&["run", "--rm", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(links, "eth0\nlo");
    // stdin through attach
    let o = d.docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], Some(b"piped\n"));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "piped");

    // a long-running container: ps, exec, logs, top, stats, pause, rename, update, diff, commit, export
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    assert_eq!(id.len(), 64);
    assert!(d
        .ok(&["ps", "--format", "{{.Names}}"])
        .lines()
        .any(|l| l == "web"));
    assert_eq!(d.ok(&["exec", "web", "echo", "inside"]), "inside");
    assert_eq!(code(&d.docker(&["exec", "web", "sh", "-c", "exit 5"])), 5);
    wait_for("log line", || d.ok(&["logs", "web"]) == "started");
    assert!(d.ok(&["top", "web"]).contains("sleep 1000"));
    assert!(d
        .ok(&["stats", "--no-stream", "--format", "{{.Name}}", "web"])
        .contains("web"));
    d.ok(&["pause", "web"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "paused"
    );
    d.ok(&["unpause", "web"]);
    d.ok(&["rename", "web", "web2"]);
    d.ok(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "web2",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.Name}} {{.State.Running}}",
            "web2"
        ]),
        "134217728 /web2 true"
    );
    d.ok(&["exec", "web2", "touch", "/newfile"]);
    // Mount points (/etc/hosts, /proc, ...) live in the init layer, so the diff is only ours.
    assert_eq!(d.ok(&["diff", "web2"]), "A /newfile");
    let img = d.ok(&["commit", "web2", "committed:1"]);
    assert!(img.starts_with("sha256:"));
    assert_eq!(
        d.ok(&["run", "--rm", "committed:1", "ls", "/newfile"]),
        "/newfile"
    );
    let tar = d.dir.path().join("export.tar");
    d.ok(&["export", "-o", tar.to_str().expect("utf8"), "web2"]);
    assert!(std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0) > 1_000_000);
    // stop/wait/restart/kill/rm
    d.ok(&["stop", "-t", "1", "web2"]);
    assert_eq!(d.ok(&["wait", "web2"]), "137");
    assert!(d
        .ok(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--filter",
            "name=web2",
            "--format",
            "{{.Names}}"
        ])
        .contains("web2"));
    assert!(d
        .ok(&[
            "ps",
            "-a",
            "--filter",
            "exited=3",
            "--format",
            "{{.Command}}"
        ])
        .contains("exit 3"));
    d.ok(&["restart", "-t", "1", "web2"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web2"]),
        "running"
    );
    d.ok(&["kill", "web2"]);
    d.ok(&["rm", "-f", "web2"]);
    assert_ne!(code(&d.docker(&["inspect", "web2"])), 0);
    // restart policy with retries
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    wait_for("two restarts", || {
        d.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "flaky",
        ]) == "2 exited"
    });

    // logs: --tail, --since, -f; the container waits for /go before its last line
    d.ok(&["run", "-d", "--name", "talker", "busybox", "sh", "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; while [ ! -e /go ]; do sleep 0.1; done; echo late; exec sleep 1000"]);
    wait_for("five lines", || {
        d.ok(&["logs", "talker"]).lines().count() == 5
    });
    assert_eq!(d.ok(&["logs", "--tail", "2", "talker"]), "line4\nline5");
    let mut follow = d.docker_spawn(
        &["logs", "-f", "--tail", "1", "talker"],
        std::process::Stdio::null(),
    );
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        follow.stdout.take().expect("stdout"),
    ));
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("line5"));
    let since = unix_now_nanos();
    d.ok(&["exec", "talker", "touch", "/go"]);
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("late"));
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(d.ok(&["logs", "--since", &since, "talker"]), "late");
    assert_eq!(
        d.ok(&["logs", "--since", "0", "--until", &since, "talker"])
            .lines()
            .count(),
        5
    );
    d.ok(&["rm", "-f", "talker"]);

    // attach without a tty: stdin in, output and the exit code out
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo got-$l; [ \"$l\" = quit ] && exit 4; done",
    ]);
    let o = d.docker_stdin(&["attach", "att"], Some(b"hi\nquit\n"));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got-hi\ngot-quit\n");
    assert_eq!(code(&o), 4);
    d.ok(&["rm", "att"]);

    // images: tag, history, rmi, save/load, events, df
    d.ok(&["tag", "busybox", "bb:2"]);
    assert!(d.ok(&["history", "bb:2"]).contains("Imported"));
    assert!(d.ok(&["rmi", "bb:2"]).contains("Untagged: bb:2"));
    let saved = d.dir.path().join("save.tar");
    d.ok(&["save", "-o", saved.to_str().expect("utf8"), "committed:1"]);
    d.ok(&["rmi", "committed:1"]);
    assert!(d
        .ok(&["load", "-i", saved.to_str().expect("utf8")])
        .contains("Loaded image: committed:1"));
    let ev = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", chrono_now() + 1),
        "--filter",
        "container=flaky",
        "--format",
        "{{.Action}}",
    ]);
    assert!(ev.lines().any(|l| l == "die"), "{ev}");
    assert!(d.ok(&["system", "df"]).contains("Images"));
    d.ok(&["container", "prune", "-f"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

/// Now as docker's `--since` takes it: seconds.nanoseconds since the epoch.
fn unix_now_nanos() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn overlay2_diff_shows_only_the_containers_own_changes() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    // The runtime must not copy up the init layer's mount points (/etc/hosts, ...) it mounts over.
    d.ok(&["run", "-d", "--name", "ov", "busybox", "sleep", "1000"]);
    d.ok(&["exec", "ov", "touch", "/newfile"]);
    assert_eq!(d.ok(&["diff", "ov"]), "A /newfile");
    d.ok(&["rm", "-f", "ov"]);
}
