//! The same scenarios through `wharf` and the real docker CLI against one wharfd: stdout (times
//! normalised) and exit codes must match.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{normalise, unique, Daemon};

/// Runs `args` through both CLIs and asserts equal exit codes and normalised stdout.
fn same(d: &Daemon, args: &[&str]) -> String {
    eprintln!("comparing {args:?}");
    let w = d.wharf(args);
    let k = d.docker(args);
    let (ws, ks) = (
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&k.stdout),
    );
    assert_eq!(
        w.status.code(),
        k.status.code(),
        "exit codes differ for {args:?}\nwharf stderr: {}\ndocker stderr: {}",
        String::from_utf8_lossy(&w.stderr),
        String::from_utf8_lossy(&k.stderr)
    );
    assert_eq!(
        normalise(&ws),
        normalise(&ks),
        "stdout differs for {args:?}"
    );
    ws.to_string()
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = d.wharf(args);
    assert!(
        o.status.success(),
        "wharf {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn cli_output_matches_docker() {
    let d = Daemon::start();
    let exit0 = unique("exit0");
    let exit3 = unique("exit3");
    let running = unique("run");
    let created = unique("created");
    ok(&d, &["run", "--name", &exit0, "busybox", "echo", "hello"]);
    let o = d.wharf(&[
        "run",
        "--name",
        &exit3,
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    ok(
        &d,
        &[
            "run", "-d", "--name", &running, "-e", "FOO=bar", "busybox", "sleep", "300",
        ],
    );
    ok(
        &d,
        &[
            "create", "--name", &created, "-l", "app=web", "busybox", "true",
        ],
    );

    // ps in its common forms.
    let listing = same(&d, &["ps"]);
    assert!(
        listing.starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{listing}"
    );
    assert!(listing.contains(&running));
    let all = same(&d, &["ps", "-a"]);
    assert_eq!(all.lines().count(), 5, "{all}");
    same(&d, &["ps", "-q"]);
    same(&d, &["ps", "-aq"]);
    same(&d, &["ps", "-a", "--no-trunc"]);
    same(&d, &["ps", "-a", "--format", "table"]);
    same(
        &d,
        &[
            "ps",
            "-a",
            "--format",
            "table {{.Names}}\\t{{.Status}}\\t{{.Command}}",
        ],
    );
    same(&d, &["ps", "-a", "--format", "json"]);
    same(
        &d,
        &[
            "ps",
            "-a",
            "--format",
            "{{.ID}} {{.Names}} {{.Label \"app\"}} {{.State}}",
        ],
    );
    same(&d, &["ps", "-a", "--format", "{{json .}}"]);
    let exited = same(
        &d,
        &[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}}",
        ],
    );
    assert_eq!(exited.lines().count(), 2, "{exited}");
    same(&d, &["ps", "-a", "--filter", &format!("name={running}")]);
    same(&d, &["ps", "-a", "--filter", "label=app=web", "-q"]);
    same(&d, &["ps", "-n", "2"]);
    same(&d, &["ps", "-l", "--format", "{{.Names}}"]);

    // images
    same(&d, &["images"]);
    same(&d, &["images", "-q"]);
    same(&d, &["images", "--format", "json"]);
    same(
        &d,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"],
    );

    // inspect
    same(&d, &["inspect", &running]);
    same(
        &d,
        &[
            "inspect",
            "--format",
            "{{.State.Running}} {{.Name}} {{json .Config.Cmd}}",
            &running,
            &exit3,
        ],
    );
    same(
        &d,
        &[
            "inspect",
            "-f",
            "{{range .Config.Env}}{{.}},{{end}}",
            &running,
        ],
    );
    same(
        &d,
        &[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{if .State.Running}}up{{else}}down{{end}}",
            &exit3,
        ],
    );
    same(
        &d,
        &["container", "inspect", "-f", "{{.Config.Image}}", &exit0],
    );
    same(
        &d,
        &[
            "image",
            "inspect",
            "-f",
            "{{.Os}} {{.Architecture}}",
            "busybox",
        ],
    );

    // logs and exec
    let logs = same(&d, &["logs", &exit3]);
    assert_eq!(logs, "out\n");
    same(&d, &["logs", "--tail", "1", &exit0]);
    let ex = same(&d, &["exec", &running, "sh", "-c", "echo in $FOO; exit 4"]);
    assert_eq!(ex, "in bar\n");
    same(&d, &["exec", &running, "nope-not-here"]);

    // run exit codes: own code, 125 daemon refusal, 127 missing command.
    same(&d, &["run", "--rm", "busybox", "sh", "-c", "exit 7"]);
    // Without --rm: wharfd does not auto-remove a container whose start failed, so docker's
    // `run --rm` would wait for a removal that never comes.
    same(&d, &["run", "busybox", "nope-not-here"]);
    same(&d, &["run", "--rm", "no-such-image-here:v1", "true"]);
    same(&d, &["run", "--rm", "--name", &exit0, "busybox", "true"]);

    // errors for unknown containers
    for verb in [
        &["stop"][..],
        &["rm"],
        &["kill"],
        &["logs"],
        &["inspect"],
        &["container", "inspect"],
        &["start"],
        &["restart"],
        &["pause"],
        &["wait"],
        &["port"],
    ] {
        let mut args = verb.to_vec();
        args.push("no-such-container-x");
        same(&d, &args);
    }
    let w = d.wharf(&["stop", "no-such-container-x"]);
    assert_eq!(
        String::from_utf8_lossy(&w.stderr),
        "Error response from daemon: No such container: no-such-container-x\n"
    );
    let w = d.wharf(&["inspect", "no-such-container-x"]);
    assert_eq!(
        String::from_utf8_lossy(&w.stderr),
        "Error: No such object: no-such-container-x\n"
    );

    // bad templates and bad flags: same exit codes (stderr wording checked where docker's is fixed)
    same(&d, &["ps", "--format", "{{.Foo}}"]);
    same(&d, &["ps", "--format", "{{.Foo"]);
    same(&d, &["inspect", "-f", "{{.Foo", &running]);
    same(&d, &["ps", "--bogus"]);
    same(&d, &["rm"]);
    let w = d.wharf(&["ps", "--format", "{{.Foo}}"]);
    assert_eq!(
        String::from_utf8_lossy(&w.stderr),
        "failed to execute template: template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type *formatter.ContainerContext\n"
    );

    // lifecycle verbs print what docker prints
    same(&d, &["stop", "-t", "1", &running]);
    same(&d, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    // Removal can only happen once per container: each CLI removes its own.
    let other = unique("created");
    ok(&d, &["create", "--name", &other, "busybox", "true"]);
    assert_eq!(ok(&d, &["rm", &created]), format!("{created}\n"));
    let k = d.docker(&["rm", &other]);
    assert_eq!(String::from_utf8_lossy(&k.stdout), format!("{other}\n"));
    same(&d, &["ps", "-a", "--filter", "label=app=web", "-q"]);
}

/// Flag names listed by `--help` (long forms and their short letters).
fn flag_names(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        for word in t.split([' ', ',']) {
            let w = word.split('=').next().unwrap_or_default();
            let w = w.split('[').next().unwrap_or_default();
            // A wrapped "(default -1)" is no flag: short flags are letters.
            let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
            if (w.starts_with("--") && w.len() > 2) || short {
                out.insert(w.to_string());
            } else if !w.is_empty() && !w.starts_with('-') {
                break;
            }
        }
    }
    out.remove("--help");
    out.remove("-h");
    out
}

fn commands(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_cmds = false;
    for line in help.lines() {
        if line.ends_with("Commands:") {
            in_cmds = true;
            continue;
        }
        if line.trim().is_empty() || !line.starts_with("  ") {
            in_cmds = line.ends_with("Commands:");
            continue;
        }
        if in_cmds {
            if let Some(w) = line.split_whitespace().next() {
                out.insert(w.trim_end_matches('*').to_string());
            }
        }
    }
    out
}

#[test]
fn help_listings_match_docker() {
    let d = Daemon::start();
    let ours = commands(&String::from_utf8_lossy(&d.wharf(&["--help"]).stdout));
    let theirs = commands(&String::from_utf8_lossy(&d.docker(&["--help"]).stdout));
    let extra: Vec<_> = ours
        .difference(&theirs)
        .filter(|c| *c != "completion" && *c != "help")
        .collect();
    assert!(extra.is_empty(), "commands docker does not have: {extra:?}");
    for needed in [
        "run",
        "exec",
        "ps",
        "images",
        "container",
        "image",
        "system",
        "logs",
        "inspect",
    ] {
        assert!(ours.contains(needed), "missing {needed}: {ours:?}");
    }
    // Commands whose flags must be exactly docker's.
    let exact: &[&[&str]] = &[
        &["ps"],
        &["images"],
        &["logs"],
        &["exec"],
        &["inspect"],
        &["rm"],
        &["stop"],
        &["kill"],
        &["start"],
        &["restart"],
        &["wait"],
        &["rename"],
        &["port"],
        &["pause"],
        &["tag"],
        &["rmi"],
        &["history"],
        &["save"],
        &["load"],
        &["events"],
        &["attach"],
        &["top"],
        &["diff"],
        &["export"],
        &["commit"],
        &["container", "ls"],
        &["container", "prune"],
        &["image", "ls"],
        &["image", "prune"],
        &["system", "prune"],
        &["info"],
        &["run"],
        &["create"],
        &["update"],
        &["container", "run"],
        &["container", "create"],
    ];
    for cmd in exact {
        let mut args = cmd.to_vec();
        args.push("--help");
        let ours = flag_names(&String::from_utf8_lossy(&d.wharf(&args).stdout));
        let theirs = flag_names(&String::from_utf8_lossy(&d.docker(&args).stdout));
        assert_eq!(ours, theirs, "flags of {cmd:?} differ");
    }
}

/// docker's help as wharf prints it: our name for docker's (its docs links stay docker's).
fn as_wharf(help: &str) -> String {
    help.replace("docs.docker.com", "\0")
        .replace("docker", "wharf")
        .replace('\0', "docs.docker.com")
}

/// Flag rows of a help text keyed by long flag, each with its wrapped description joined up.
/// A row starts at "  -x, --" or "      --"; continuation lines are indented further.
fn option_rows(help: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut in_options = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            in_options = line.ends_with("Options:");
            rows.extend(current.take());
            continue;
        }
        if !in_options {
            continue;
        }
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if t.starts_with('-') && (indent == 2 || indent == 6) {
            rows.extend(current.take());
            let long = t
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap_or_default()
                .to_string();
            current = Some((long, t.split_whitespace().collect::<Vec<_>>().join(" ")));
        } else if let Some((_, row)) = current.as_mut() {
            row.push(' ');
            row.push_str(&t.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    rows.extend(current);
    rows
}

/// Lines listing subcommands ("  ls          List containers").
fn command_rows(help: &str) -> BTreeSet<String> {
    let mut rows = BTreeSet::new();
    let mut in_cmds = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            in_cmds = line.ends_with("Commands:");
        } else if in_cmds {
            rows.insert(line.to_string());
        }
    }
    rows
}

#[test]
fn option_rows_join_wrapped_descriptions() {
    let help = "Usage:  x\n\nOptions:\n  -a, --all    Show all\n               of them\n      --swap bytes   Swap:\n                     -1 for all\n\nCommands:\n  ls   List\n";
    let rows = option_rows(help);
    assert_eq!(rows["--all"], "-a, --all Show all of them");
    assert_eq!(rows["--swap"], "--swap bytes Swap: -1 for all");
    assert_eq!(rows.len(), 2);
    assert_eq!(command_rows(help).len(), 1);
}

#[test]
fn help_text_matches_docker() {
    let d = Daemon::start();
    let help = |cli: &dyn Fn(&[&str]) -> std::process::Output, cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = cli(&args);
        assert!(o.status.success(), "{args:?} --help failed");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let wharf = |args: &[&str]| d.wharf(args);
    let docker = |args: &[&str]| d.docker(args);
    // Commands where we have every flag docker shows against our API version: the whole text.
    let exact: &[&[&str]] = &[
        &["run"],
        &["create"],
        &["ps"],
        &["images"],
        &["exec"],
        &["logs"],
        &["rm"],
        &["stop"],
        &["restart"],
        &["kill"],
        &["start"],
        &["inspect"],
        &["cp"],
        &["top"],
        &["update"],
        &["stats"],
        &["history"],
        &["commit"],
        &["import"],
        &["events"],
        &["info"],
        &["version"],
        &["wait"],
        &["port"],
        &["tag"],
        &["rmi"],
        &["save"],
        &["load"],
        &["attach"],
        &["container"],
        &["container", "ls"],
        &["container", "run"],
        &["container", "cp"],
        &["container", "prune"],
        &["image", "ls"],
        &["image", "rm"],
        &["image", "prune"],
        &["system"],
        &["system", "df"],
        &["system", "prune"],
    ];
    for cmd in exact {
        let (ours, theirs) = (help(&wharf, cmd), help(&docker, cmd));
        assert_eq!(ours, as_wharf(&theirs), "help of {cmd:?} differs");
    }
    // Commands missing a docker flag or subcommand: the same usage line, and the same row for
    // every flag and subcommand we have.
    let partial: &[&[&str]] = &[
        &["pull"],
        &["image", "pull"],
        &["image", "inspect"],
        &["container", "inspect"],
        &["image"],
    ];
    for cmd in partial {
        let (ours, theirs) = (help(&wharf, cmd), as_wharf(&help(&docker, cmd)));
        assert_eq!(
            ours.lines().next(),
            theirs.lines().next(),
            "usage of {cmd:?}"
        );
        let docker_rows = option_rows(&theirs);
        for (flag, row) in option_rows(&ours) {
            if let Some(theirs) = docker_rows.get(&flag) {
                assert_eq!(&row, theirs, "{flag} of {cmd:?}");
            }
        }
        let missing: Vec<_> = command_rows(&ours)
            .difference(&command_rows(&theirs))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "{cmd:?} lists {missing:?}");
    }
    // The root: docker's layout and usage, our commands listed as docker lists them.
    let (ours, theirs) = (help(&wharf, &[]), as_wharf(&help(&docker, &[])));
    assert_eq!(ours.lines().next(), theirs.lines().next());
    for section in [
        "Common Commands:",
        "Management Commands:",
        "Commands:",
        "Global Options:",
    ] {
        assert!(
            ours.contains(&format!("\n\n{section}\n")),
            "{section} missing:\n{ours}"
        );
    }
    let extra: Vec<_> = command_rows(&ours)
        .difference(&command_rows(&theirs))
        .filter(|r| !r.trim_start().starts_with("completion "))
        .cloned()
        .collect();
    assert!(extra.is_empty(), "root lists {extra:?}");
    // `-h`, `help <cmd>` and a bare management command print the same help.
    assert_eq!(
        String::from_utf8_lossy(&d.wharf(&["ps", "-h"]).stdout),
        help(&wharf, &["ps"])
    );
    let via_help = d.wharf(&["help", "container", "ls"]);
    assert_eq!(
        String::from_utf8_lossy(&via_help.stdout),
        help(&wharf, &["container", "ls"])
    );
    let bare = d.wharf(&["image"]);
    assert_eq!(bare.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&bare.stdout),
        help(&wharf, &["image"])
    );
    assert_eq!(
        String::from_utf8_lossy(&d.wharf(&[]).stdout),
        help(&wharf, &[])
    );
    for topic in [&["no-such-topic"][..], &["container", "no-such-topic"]] {
        let mut args = vec!["help"];
        args.extend_from_slice(topic);
        let (w, k) = (d.wharf(&args), d.docker(&args));
        assert_eq!(w.status.code(), k.status.code(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&w.stderr),
            String::from_utf8_lossy(&k.stderr),
            "{args:?}"
        );
    }
}

#[test]
fn normalise_hides_times_only() {
    assert_eq!(normalise("Up 5 seconds   x"), "Up T x");
    assert_eq!(
        normalise("Exited (0) Less than a second ago"),
        "Exited (0) T ago"
    );
    assert_eq!(
        normalise("About a minute ago 12 minutes ago"),
        "T ago T ago"
    );
    assert_eq!(normalise("abc123 5 apples"), "abc123 5 apples");
}

#[test]
fn api_socket_forwards_the_socket_and_credentials_like_docker() {
    let d = Daemon::start();
    let socket_only = "test -S /var/run/docker.sock && echo socket; echo ${DOCKER_CONFIG:-unset}";
    let out = same(
        &d,
        &[
            "run",
            "--rm",
            "--use-api-socket",
            "busybox",
            "sh",
            "-c",
            socket_only,
        ],
    );
    assert_eq!(out, "socket\nunset\n");

    // With stored credentials both CLIs copy a config.json in after create (PUT archive).
    std::fs::write(
        d.docker_config.join("config.json"),
        r#"{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}"#,
    )
    .expect("config.json");
    let script = "echo $DOCKER_CONFIG; stat -c %a $DOCKER_CONFIG/config.json; cat $DOCKER_CONFIG/config.json";
    let args = [
        "run",
        "--rm",
        "--use-api-socket",
        "busybox",
        "sh",
        "-c",
        script,
    ];
    let (w, k) = (d.wharf(&args), d.docker(&args));
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        w.status.code(),
        k.status.code(),
        "wharf: {}\ndocker: {}",
        String::from_utf8_lossy(&w.stderr),
        String::from_utf8_lossy(&k.stderr)
    );
    if k.status.success() {
        // Same lines up to the JSON, whose whitespace differs between the CLIs.
        let split = |s: &str| {
            let (head, json) = s.split_at(s.find('{').unwrap_or(s.len()));
            let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
            (head.to_string(), v)
        };
        assert_eq!(split(&text(&w)), split(&text(&k)));
        assert!(
            text(&w).starts_with("/run/secrets/docker\n600\n"),
            "{}",
            text(&w)
        );
    }
}
