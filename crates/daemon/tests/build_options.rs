//! End-to-end: build options and instruction flags seen in their effect on the built image:
//! RUN resource limits, `--pull`, MAINTAINER, `COPY --link/--parents`, `--no-cache-filter`,
//! bzip2/xz/zstd archives in ADD and as the context itself.

mod common;

use std::process::Command;

use common::build::{build_ok, context, s, text, using_cache};
use common::registry::Registry;
use common::Daemon;

/// Limits given to `docker build` apply to its RUN containers.
#[test]
fn run_steps_get_the_builds_resource_limits() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let v2 = d.ok(&["info", "--format", "{{.CgroupVersion}}"]) == "2";
    let (mem, cpus, shares, quota) = if v2 {
        (
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/cpuset.cpus",
            "/sys/fs/cgroup/cpu.weight",
            "/sys/fs/cgroup/cpu.max",
        )
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
            "/sys/fs/cgroup/cpu/cpu.shares",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        )
    };
    let ctx = context(
        &d,
        "limits",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nRUN (ulimit -n; cat {mem} {cpus} {shares}; cut -d' ' -f1 {quota}; df -k /dev/shm | tail -1 | awk '{{print $2}}') > /limits\nCMD cat /limits\n"
            ),
        )],
    );
    build_ok(
        &d,
        &[
            "-t",
            "limited",
            "--memory",
            "64m",
            "--cpuset-cpus",
            "0",
            "--cpu-shares",
            "512",
            "--shm-size",
            "16m",
            "--ulimit",
            "nofile=100:200",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            s(&ctx),
        ],
    );
    let got = d.ok(&["run", "--rm", "limited"]);
    let got: Vec<&str> = got.split_whitespace().collect();
    // cgroup v2 maps shares 512 to weight 20 (runc's formula).
    let weight = if v2 { "20" } else { "512" };
    assert_eq!(
        got,
        ["100", "67108864", "0", weight, "50000", "16384"],
        "{got:?}"
    );
}

/// `--pull` fetches the FROM image even when a local image has its name.
#[test]
fn pull_fetches_from_images_that_are_local() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let base = format!("{}/t/base:1", reg.host());
    let mk = |name: &str, word: &str| {
        let ctx = context(
            &d,
            name,
            &[(
                "Dockerfile",
                &format!("FROM busybox\nRUN echo {word} > /v\n"),
            )],
        );
        build_ok(&d, &["-q", "-t", &base, s(&ctx)]);
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &base])
    };
    let old = mk("old", "old");
    mk("new", "new");
    d.ok(&["push", &base]);
    d.ok(&["tag", &old, &base]);
    let ctx = context(
        &d,
        "user",
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN cp /v /seen\nCMD cat /seen\n"),
        )],
    );
    build_ok(&d, &["-t", "user", s(&ctx)]);
    assert_eq!(d.ok(&["run", "--rm", "user"]), "old");
    build_ok(&d, &["--pull", "-t", "user", s(&ctx)]);
    assert_eq!(d.ok(&["run", "--rm", "user"]), "new");
    assert_ne!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &base]),
        old,
        "the name points at the pulled image"
    );
}

/// MAINTAINER becomes the image's Author; `COPY --link` copies as COPY does; `--parents`
/// keeps source paths; `--exclude` leaves paths out; `--no-cache-filter` rebuilds only the
/// named stage.
#[test]
fn maintainer_copy_flags_and_no_cache_filter() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let ctx = context(
        &d,
        "flags",
        &[
            (
                "Dockerfile",
                "FROM busybox AS dep\nRUN echo dep > /dep\nFROM busybox\nMAINTAINER Jane Doe <jane@example.com>\nCOPY --link a.txt /linked/\nCOPY --parents src/*/conf.txt /p/\nCOPY --parents ./base/./x/y.txt /q/\nCOPY --from=dep /dep /dep\nCOPY --exclude=*.md --exclude=skip docs/ /docs/\nRUN cat /dep\nCMD cat /linked/a.txt /p/src/one/conf.txt /p/src/two/conf.txt /q/x/y.txt /dep\n",
            ),
            ("a.txt", "a"),
            ("src/one/conf.txt", "one"),
            ("src/two/conf.txt", "two"),
            ("src/two/other.txt", "not copied"),
            ("base/x/y.txt", "y"),
            ("docs/keep.txt", "k"),
            ("docs/readme.md", "m"),
            ("docs/sub/deep.md", "m"),
            ("docs/skip/z.txt", "z"),
        ],
    );
    build_ok(&d, &["-t", "flags", s(&ctx)]);
    assert_eq!(d.ok(&["run", "--rm", "flags"]), "aonetwoydep");
    assert_eq!(
        d.ok(&["run", "--rm", "flags", "ls", "/p/src/two"]),
        "conf.txt"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "flags", "find", "/docs"]),
        "/docs\n/docs/keep.txt\n/docs/sub\n/docs/sub/deep.md",
        "*.md matches at the top only, as in .dockerignore"
    );
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Author}}", "flags"]),
        "Jane Doe <jane@example.com>"
    );
    let plain = |args: &[&str]| {
        let o = d.wharf(&[&["build", "--progress=plain"], args, &[s(&ctx)]].concat());
        assert!(o.status.success(), "{}\n{}", text(&o), d.log());
        text(&o)
    };
    // Everything is cached: dep's RUN and the second stage's 8 steps after FROM.
    assert_eq!(using_cache(&plain(&["-t", "flags"])), 9);
    // dep's RUN runs again; its file is the same, so the COPY --from after it hits.
    let out = plain(&["--no-cache-filter", "dep", "-t", "flags"]);
    assert_eq!(using_cache(&out), 8, "{out}");
    assert!(
        out.contains("Step 2/11 : RUN echo dep > /dep\n ---> Running in"),
        "{out}"
    );
    let o = d.wharf(&["build", "--no-cache-filter", "nope", s(&ctx)]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no-cache-filter stage \"nope\" could not be found"),
        "{}",
        text(&o)
    );
}

/// ADD extracts local tars compressed with gzip, bzip2, xz or zstd; a context may itself be
/// sent compressed with any of them.
#[test]
fn compressed_archives_in_add_and_as_context() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let ctx = context(
        &d,
        "arch",
        &[
            (
                "Dockerfile",
                "FROM busybox\nADD t.tar.gz /gz/\nADD t.tar.bz2 /bz/\nADD t.tar.xz /xz/\nADD t.tar.zst /zst/\nCMD cat /gz/f /bz/f /xz/f /zst/f\n",
            ),
            ("payload/f", "x"),
        ],
    );
    for (name, flag) in [
        ("t.tar.gz", "-z"),
        ("t.tar.bz2", "-j"),
        ("t.tar.xz", "-J"),
        ("t.tar.zst", "--zstd"),
    ] {
        let st = Command::new("tar")
            .args([flag, "-cf", name, "-C", "payload", "f"])
            .current_dir(&ctx)
            .status()
            .expect("tar");
        assert!(st.success(), "tar {flag}");
    }
    std::fs::remove_dir_all(ctx.join("payload")).expect("rm payload");
    build_ok(&d, &["-t", "arch", s(&ctx)]);
    assert_eq!(d.ok(&["run", "--rm", "arch"]), "xxxx");

    let df = context(
        &d,
        "ctxonly",
        &[
            ("Dockerfile", "FROM busybox\nCOPY m /m\nCMD cat /m\n"),
            ("m", "m"),
        ],
    );
    for (flag, word) in [("-j", "bzip2"), ("-J", "xz"), ("--zstd", "zstd")] {
        std::fs::write(df.join("m"), word).expect("write m");
        let out = Command::new("tar")
            .args([flag, "-cf", "-", "Dockerfile", "m"])
            .current_dir(&df)
            .output()
            .expect("tar");
        assert!(out.status.success());
        let (st, body) = d.raw_with(
            "POST",
            &format!("/v1.45/build?t=ctx-{word}"),
            &[("Content-Type", "application/x-tar")],
            &out.stdout,
        );
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 200, "{body}");
        assert!(!body.contains("errorDetail"), "{body}");
        assert_eq!(d.ok(&["run", "--rm", &format!("ctx-{word}")]), word);
    }
}

/// `RUN --mount` of type bind (context or another stage, read-only or writable with the
/// writes thrown away), tmpfs, secret (file or variable) and cache seeded `from=` a stage:
/// each seen inside the step, none left in the image.
#[test]
fn run_mounts_bind_tmpfs_and_secret() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let secret = "s3cr3t-value-7f3a";
    let ctx = context(
        &d,
        "mounts",
        &[
            (
                "Dockerfile",
                "FROM busybox AS tools\nRUN echo tool > /tool\nFROM busybox\nRUN --mount=type=bind,source=data,target=/data cat /data/in > /from-ctx && (touch /data/x 2>/dev/null && echo rw || echo ro) > /bind-mode\nRUN --mount=type=bind,from=tools,source=/tool,target=/t cp /t /from-stage\nRUN --mount=type=tmpfs,target=/scratch,size=1m echo tmp > /scratch/f && df -k /scratch | tail -1 | awk '{print $2}' > /tmpfs-size\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-len && stat -c %a /run/secrets/tok > /secret-mode\nCMD cat /from-ctx /bind-mode /from-stage /tmpfs-size /secret-len /secret-mode; ls -A /scratch /run/secrets/tok 2>/dev/null | wc -w; cat /run/secrets/tok 2>/dev/null | wc -c\n",
            ),
            ("data/in", "ctx-data\n"),
            ("tok.txt", secret),
        ],
    );
    let tok = ctx.join("tok.txt");
    let secret_arg = format!("id=tok,src={}", s(&tok));
    let o = d.wharf(&[
        "build",
        "--progress=plain",
        "--secret",
        &secret_arg,
        "-t",
        "mounts",
        s(&ctx),
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), d.log());
    let got = d.ok(&["run", "--rm", "mounts"]);
    let got: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(
        got,
        ["ctx-data", "ro", "tool", "1024", "17", "400", "0", "0"],
        "{got:?}"
    );
    // The secret's bytes are in no layer.
    let saved = d.dir.path().join("mounts.tar");
    d.ok(&["save", "-o", s(&saved), "mounts"]);
    let bytes = std::fs::read(&saved).expect("read save");
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "secret leaked into the image"
    );
    // A changed bind source busts the step that mounts it.
    std::fs::write(ctx.join("data/in"), "ctx-data2\n").expect("write");
    let o = d.wharf(&[
        "build",
        "--progress=plain",
        "--secret",
        &secret_arg,
        "-t",
        "mounts",
        s(&ctx),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Step 4/8 : RUN --mount=type=bind,source=data,target=/data cat /data/in > /from-ctx && (touch /data/x 2>/dev/null && echo rw || echo ro) > /bind-mode\n ---> Running in"),
        "{}",
        text(&o)
    );
    assert_eq!(
        d.ok(&["run", "--rm", "mounts", "cat", "/from-ctx"]),
        "ctx-data2"
    );

    // A required secret that was not given, and a bind source through a link that points
    // out of the context, fail.
    for (df, want) in [
        (
            "FROM busybox\nRUN --mount=type=secret,id=nope,required true\n",
            "secret nope: not found",
        ),
        (
            "FROM busybox\nRUN --mount=type=bind,source=escape/passwd,target=/x true\n",
            "\"/escape/passwd\" not found",
        ),
    ] {
        let bad = context(&d, "bad-mount", &[("Dockerfile", df)]);
        // A link out of the context resolves inside it, as if the context were `/`.
        let _ = std::os::unix::fs::symlink("/etc", bad.join("escape"));
        let o = d.wharf(&["build", s(&bad)]);
        assert!(!o.status.success(), "{df}");
        assert!(text(&o).contains(want), "{df}: {}", text(&o));
    }
    let rw = context(
        &d,
        "rwbind",
        &[
            (
                "Dockerfile",
                "FROM busybox AS st\nRUN echo st > /s && ln -s /s /abs-link\nFROM busybox\nRUN --mount=from=st,source=/abs-link,target=/l cat /l > /via-link\nRUN --mount=type=bind,source=data,target=/data,rw echo w > /data/in && cat /data/in > /rw-saw\nRUN --mount=type=bind,source=data,target=/data cat /data/in > /after\nRUN --mount=type=bind,from=st,target=/st,rw echo x > /st/s && cat /st/s > /st-saw\nRUN --mount=from=st,target=/st cat /st/s > /st-after\nRUN --mount=type=secret,id=tok,env=TOK test ! -e /run/secrets/tok && printf %s \"$TOK\" | wc -c > /env-len\nRUN --mount=type=cache,id=seeded,target=/c,from=st,source=/ cat /c/s > /cache-seed\nCMD cat /rw-saw /after /st-saw /st-after /env-len /cache-seed /via-link\n",
            ),
            ("data/in", "orig\n"),
        ],
    );
    let o = d.wharf(&["build", "--secret", &secret_arg, "-t", "rwbind", s(&rw)]);
    assert!(o.status.success(), "{}\n{}", text(&o), d.log());
    assert_eq!(
        d.ok(&["run", "--rm", "rwbind"]),
        "w\norig\nx\nst\n17\nst\nst"
    );
    // A secret given as a variable is in neither the config nor the history.
    let meta = d.ok(&["history", "--no-trunc", "rwbind"]) + &d.ok(&["image", "inspect", "rwbind"]);
    assert!(!meta.contains(secret), "{meta}");
    assert_eq!(d.ok(&["ps", "-aq"]), "", "no build containers left");
}

/// `--cache-from` an image pulled from a registry: with an empty build cache, every step
/// whose instruction chain matches the image's history is taken from it, nothing runs, and
/// the result is the pulled image; a changed file busts the steps from its COPY on.
#[test]
fn cache_from_reuses_a_pulled_images_steps() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let img = format!("{}/cache/app:1", reg.host());
    let ctx = context(
        &d,
        "cachefrom",
        &[
            (
                "Dockerfile",
                "FROM busybox\nENV A=1\nCOPY f /f\nRUN echo built > /r && cat /f >> /r\nCMD cat /r\n",
            ),
            ("f", "content"),
        ],
    );
    build_ok(&d, &["-t", &img, s(&ctx)]);
    d.ok(&["push", &img]);
    d.ok(&["rmi", &img]);
    d.ok(&["builder", "prune", "-f"]);
    d.ok(&["pull", &img]);
    let pulled = d.ok(&["image", "inspect", "--format", "{{.Id}}", &img]);

    let out = build_ok(&d, &["--cache-from", &img, "-t", "again", s(&ctx)]);
    assert_eq!(using_cache(&out), 4, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", "again"]),
        pulled
    );
    assert_eq!(d.ok(&["run", "--rm", "again"]), "built\ncontent");

    std::fs::write(ctx.join("f"), "changed").expect("write");
    let out = build_ok(&d, &["--cache-from", &img, "-t", "changed", s(&ctx)]);
    assert_eq!(using_cache(&out), 1, "only ENV: {out}");
    assert_eq!(d.ok(&["run", "--rm", "changed"]), "built\nchanged");
}
