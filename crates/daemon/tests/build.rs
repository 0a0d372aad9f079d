//! End-to-end: `DOCKER_BUILDKIT=0 docker build` (the classic builder's API) against a real
//! wharfd: real-world Dockerfiles whose images then run, `docker history`, the cache rules,
//! Docker's errors for bad Dockerfiles, and a daemon killed mid-build.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::build::{build, build_ok, context, s, text, using_cache};
use common::{Daemon, DOCKER};

fn no_containers_left(d: &Daemon) {
    assert_eq!(
        d.ok(&["ps", "-a", "-q"]),
        "",
        "build containers left behind"
    );
}

#[test]
fn classic_cli_builds_real_world_dockerfiles() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();

    // Multi-stage with ARG before FROM, build args, COPY --from/--chown, USER/WORKDIR/ENV
    // interplay, HEALTHCHECK, SHELL, EXPOSE, LABEL, CMD; an unused stage that would fail.
    let ctx = context(
        &d,
        "app",
        &[
            (
                "Dockerfile",
                r#"ARG BASE=busybox
FROM ${BASE} AS builder
ARG GREETING=hello
RUN mkdir /out && echo "$GREETING from builder" > /out/msg
FROM busybox AS broken
RUN exit 1
FROM $BASE
LABEL org.example.name="demo app" version=1
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY --from=builder /out/msg ./msg
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group
COPY --chown=app:app src/ ./src/
USER app
ENV GREETING_FILE=$APP_HOME/msg
SHELL ["/bin/sh", "-ec"]
RUN test "$(id -u)" = 1000 && test -w src/data.txt && touch src/built
EXPOSE 8080 53/udp
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD test -f "$GREETING_FILE"
CMD cat "$GREETING_FILE" src/data.txt && pwd && id -un
"#,
            ),
            ("src/data.txt", "data line\n"),
        ],
    );
    let out = build_ok(
        &d,
        &[
            "-t",
            "demo:1",
            "-t",
            "demo:latest",
            "--build-arg",
            "GREETING=hi",
            s(&ctx),
        ],
    );
    assert!(out.contains("Step 1/"), "{out}");
    assert!(
        !out.contains("RUN exit 1"),
        "unneeded stage was built: {out}"
    );
    assert!(out.contains("Successfully tagged demo:1"), "{out}");
    let run = d.ok(&["run", "--rm", "demo:1"]);
    assert_eq!(run, "hi from builder\ndata line\n/srv/app\napp");
    let inspect = d.ok(&[
        "inspect",
        "-f",
        "{{.Config.User}}|{{.Config.WorkingDir}}|{{index .Config.Labels \"org.example.name\"}}|{{json .Config.ExposedPorts}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Shell}}",
        "demo:latest",
    ]);
    assert_eq!(
        inspect,
        r#"app|/srv/app|demo app|{"53/udp":{},"8080/tcp":{}}|["CMD-SHELL","test -f \"$GREETING_FILE\""]|["/bin/sh","-ec"]"#
    );
    // One history row per instruction of the final stage, newest first, as Docker words them.
    let rows = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "demo:1",
    ]);
    let want = [
        "/bin/sh -ec #(nop)  CMD [\"/bin/sh\" \"-ec\" \"cat",
        "/bin/sh -ec #(nop)  HEALTHCHECK &{[\"CMD-SHELL\"",
        "/bin/sh -ec #(nop)  EXPOSE 8080 53/udp",
        "/bin/sh -ec test \"$(id -u)\" = 1000",
        "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]",
        "/bin/sh -c #(nop)  ENV GREETING_FILE=/srv/app/msg",
        "/bin/sh -c #(nop)  USER app",
        "/bin/sh -c #(nop) COPY dir:",
        "/bin/sh -c echo 'app:x:1000",
        "/bin/sh -c #(nop) COPY file:",
        "/bin/sh -c #(nop) WORKDIR /srv/app",
        "/bin/sh -c #(nop)  ENV APP_HOME=/srv/app",
        "/bin/sh -c #(nop)  LABEL org.example.name=demo app version=1",
    ];
    let got: Vec<&str> = rows.lines().collect();
    for (i, w) in want.iter().enumerate() {
        assert!(
            got.get(i).is_some_and(|r| r.starts_with(w)),
            "row {i}: want {w:?} in\n{rows}"
        );
    }
    assert!(
        got.get(want.len()).is_none_or(|r| !r.contains("#(nop)")),
        "{rows}"
    );
    no_containers_left(&d);

    // .dockerignore with `!` exceptions (the CLI filters the context), ADD of a local tar,
    // and heredocs.
    let ctx = context(
        &d,
        "ignore",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\nADD layer.tar /unpacked/\nRUN <<EOF\nls /ctx | sort > /listing\nEOF\nCMD cat /listing /unpacked/inside.txt\n"),
            (".dockerignore", "*.log\nsecret/\n!keep.log\n"),
            ("a.log", "x"),
            ("keep.log", "x"),
            ("secret/key", "x"),
            ("app.txt", "x"),
        ],
    );
    let mut tb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(7);
    h.set_mode(0o644);
    h.set_cksum();
    tb.append_data(&mut h, "inside.txt", &b"inside\n"[..])
        .expect("tar");
    fs::write(ctx.join("layer.tar"), tb.into_inner().expect("tar")).expect("write tar");
    build_ok(&d, &["-t", "ignore", s(&ctx)]);
    let listing = d.ok(&["run", "--rm", "ignore"]);
    assert_eq!(listing, "Dockerfile\napp.txt\nkeep.log\nlayer.tar\ninside");

    // ONBUILD triggers run in the child build; -f from outside the context and from stdin;
    // -q and --iidfile.
    let ctx = context(
        &d,
        "onbuild",
        &[
            ("Dockerfile", "FROM busybox\nONBUILD COPY trigger.txt /trigger.txt\nONBUILD RUN echo ran >> /trigger.txt\n"),
            ("trigger.txt", "copied\n"),
        ],
    );
    build_ok(&d, &["-t", "onbase", s(&ctx)]);
    let outside = d.dir.path().join("Dockerfile.child");
    fs::write(&outside, "FROM onbase\nCMD [\"cat\", \"/trigger.txt\"]\n").expect("write");
    let iid = d.dir.path().join("iid");
    let o = build(
        &d,
        &[
            "-q",
            "--iidfile",
            s(&iid),
            "-t",
            "onchild",
            "-f",
            s(&outside),
            s(&ctx),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let id = fs::read_to_string(&iid).expect("iidfile");
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id.trim());
    assert_eq!(d.ok(&["run", "--rm", "onchild"]), "copied\nran");
    let o = build(
        &d,
        &["-t", "stdin", "-f", "-", s(&ctx)],
        Some(b"FROM busybox\nRUN echo from-stdin > /f\nCMD cat /f\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.ok(&["run", "--rm", "stdin"]), "from-stdin");
    // FROM scratch: COPY makes the only layer and the only history rows.
    let o = build(
        &d,
        &["-t", "scratchy", "-f", "-", s(&ctx)],
        Some(b"FROM scratch\nCOPY trigger.txt /t\nCMD [\"/t\"]\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let rows = d.ok(&["history", "-q", "scratchy"]);
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{len .RootFS.Layers}}", "scratchy"]),
        "1"
    );
    no_containers_left(&d);
}

#[test]
fn cache_is_reused_only_when_inputs_match() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let ctx = context(
        &d,
        "cache",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG V=1\nRUN echo first\nCOPY a.txt /a.txt\nRUN echo after-copy\nRUN echo v=$V\nCMD cat /a.txt\n",
            ),
            ("a.txt", "one\n"),
        ],
    );
    let first = build_ok(&d, &["-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&first), 0, "{first}");
    let id = d.ok(&["images", "-q", "--no-trunc", "c"]);
    // No change: every step after FROM is cached and the image is the same.
    let again = build_ok(&d, &["-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&again), 6, "{again}");
    assert_eq!(d.ok(&["images", "-q", "--no-trunc", "c"]), id);
    // Touching a file's mtime keeps the cache.
    let f = fs::File::options()
        .write(true)
        .open(ctx.join("a.txt"))
        .expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(12345))
        .expect("touch");
    let touched = build_ok(&d, &["-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&touched), 6, "{touched}");
    // One byte changed: ARG and the first RUN stay cached, everything from the COPY on reruns.
    fs::write(ctx.join("a.txt"), "One\n").expect("write");
    let changed = build_ok(&d, &["-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&changed), 2, "{changed}");
    assert_eq!(d.ok(&["run", "--rm", "c"]), "One");
    // A build arg busts only the steps that use it (RUN after the ARG sees it in `|1 V=…`).
    let arg = build_ok(&d, &["-t", "c", "--build-arg", "V=2", s(&ctx)]);
    assert!(arg.contains("v=2"), "{arg}");
    assert_eq!(using_cache(&arg), 1, "{arg}");
    // --no-cache uses none; the cache survives a daemon restart.
    let none = build_ok(&d, &["--no-cache", "-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&none), 0, "{none}");
    d.restart();
    let after = build_ok(&d, &["-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&after), 6, "{after}");
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Build Cache ") && l != "Build Cache 0"),
        "{df}"
    );
    d.ok(&["builder", "prune", "-f"]);
    let pruned = build_ok(&d, &["-t", "c", s(&ctx)]);
    assert_eq!(using_cache(&pruned), 0, "{pruned}");
}

#[test]
fn bad_dockerfiles_fail_with_dockers_message() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nFOO bar\n",
            "dockerfile parse error on line 2: unknown instruction: FOO",
        ),
        (
            "FROM busybox\nRUN <<EOF\necho never closed\n",
            "dockerfile parse error on line 2: unterminated heredoc",
        ),
        (
            "FROM busybox\nCOPY missing.txt /x\n",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist",
        ),
        (
            "FROM nosuchimage:1\nRUN true\n",
            // FROM pulls through the registry client; the harness blocks Docker Hub.
            "registry docker.io is blocked by the daemon's block-registries setting",
        ),
        (
            "FROM busybox\nRUN echo ok\nRUN exit 3\n",
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
        ),
    ];
    for (i, (df, want)) in cases.iter().enumerate() {
        let ctx = context(&d, &format!("bad{i}"), &[("Dockerfile", df)]);
        let o = build(&d, &["--force-rm", s(&ctx)], None);
        assert!(!o.status.success(), "{df:?} built");
        let t = text(&o);
        assert!(t.contains(want), "{df:?}: want {want:?} in:\n{t}");
        no_containers_left(&d);
    }
    // Without --force-rm the failed step's container stays, as with dockerd.
    let ctx = context(&d, "keep", &[("Dockerfile", "FROM busybox\nRUN exit 4\n")]);
    let o = build(&d, &[s(&ctx)], None);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(d.ok(&["ps", "-a", "-q"]).lines().count(), 1);
}

#[test]
fn kill_during_build_leaves_nothing_behind() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let ctx = context(
        &d,
        "slow",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo cached-step\nRUN sleep 60\n",
        )],
    );
    let warm = context(
        &d,
        "warm",
        &[("Dockerfile", "FROM busybox\nRUN echo cached-step\n")],
    );
    build_ok(&d, &[s(&warm)]);
    let mut child = Command::new(DOCKER)
        .args(["build", s(&ctx)])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn build");
    common::wait_for("the RUN sleep container", || {
        d.ok(&["ps", "-q"]).lines().count() == 1
    });
    d.crash();
    let _ = child.kill();
    let _ = child.wait();
    d.start_again();
    no_containers_left(&d);
    let fixed = context(
        &d,
        "fixed",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo cached-step\nRUN echo done\n",
        )],
    );
    let out = build_ok(&d, &["-t", "after", s(&fixed)]);
    assert_eq!(using_cache(&out), 1, "{out}");
    assert!(out.contains("done"), "{out}");
    no_containers_left(&d);
}

/// `wharf build` from a local directory: ignored files are not sent, heredocs work, the
/// compact and plain progress views, `-q`, and Docker's exit code for a failing RUN.
#[test]
fn wharf_build_sends_a_filtered_directory() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let wharf = PathBuf::from(env!("CARGO_BIN_EXE_wharfd")).with_file_name("wharf");
    let run = |args: &[&str]| {
        Command::new("timeout")
            .args(["-s", "KILL", "120"])
            .arg(&wharf)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .output()
            .expect("run wharf")
    };
    let ctx = context(
        &d,
        "wharfctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nCOPY <<EOF /etc/motd\nwelcome \"$NAME\"\nEOF\nARG NAME=x\nRUN <<EOF\nset -e\necho \"heredoc ran\" > /ran\nEOF\nCMD ls -a /ctx && cat /etc/motd /ran\n",
            ),
            (".dockerignore", "big/\n*.secret\n!ok.secret\n"),
            ("big/blob", "should not be sent"),
            ("a.secret", "no"),
            ("ok.secret", "yes"),
            ("app.txt", "x"),
        ],
    );
    let o = run(&["build", "--progress=plain", "-t", "wb", s(&ctx)]);
    assert!(o.status.success(), "{}\n{}", text(&o), d.log());
    let plain = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        plain.contains("Step 1/6 : FROM busybox") && plain.contains(" ---> "),
        "{plain}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "wb"]),
        ".\n..\n.dockerignore\nDockerfile\napp.txt\nok.secret\nwelcome \"\"\nheredoc ran"
    );
    // Compact view (forced with --progress=tty): one line per step, CACHED marks.
    let o = run(&["build", "--progress=tty", "-t", "wb", s(&ctx)]);
    assert!(o.status.success(), "{}", text(&o));
    let compact = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        compact.contains("[2/6] COPY . /ctx/\n      CACHED"),
        "{compact}"
    );
    assert!(!compact.contains(" ---> "), "{compact}");
    let o = run(&["build", "-q", s(&ctx)]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{}", text(&o));
    // RUN --mount=type=cache: the directory outlives the step and the build, and stays out
    // of the image, mount point included (BuildKit removes mount stubs too).
    let cm = context(
        &d,
        "cachemount",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/cache echo x >> /cache/n && wc -l < /cache/n > /count\nCMD cat /count && test ! -e /cache\n",
        )],
    );
    for n in ["1", "2"] {
        let o = run(&["build", "--no-cache", "-t", "cm", s(&cm)]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(d.ok(&["run", "--rm", "cm"]), n);
    }
    let bad = context(
        &d,
        "wharfbad",
        &[("Dockerfile", "FROM busybox\nRUN exit 7\n")],
    );
    let o = run(&["build", "--force-rm", s(&bad)]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("The command '/bin/sh -c exit 7' returned a non-zero code: 7"));
    no_containers_left(&d);
}

/// docker-py's `images.build` and low-level `build` (tests/clients/dockerpy_build.py).
#[test]
fn docker_py_builds() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let ctx = d.dir.path().join("pyctx");
    d.docker_py(
        "dockerpy_build.py",
        &[],
        &[("CTX", ctx.as_os_str())],
        "docker-py build: ok",
    );
}
