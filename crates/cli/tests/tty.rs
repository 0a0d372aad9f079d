//! Interactive sessions through a real pty (tmux): typing, window size and resize, ctrl-p
//! ctrl-q detach with the terminal restored, reattach, and `exec -it`; the same session runs
//! through `wharf` and through the real docker CLI against wharfd.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{unique, Daemon};

/// A private tmux server (own socket name) killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: unique("wharf-tty"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self, target: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", target]).stdout).to_string()
    }

    /// Waits until the pane shows `needle`; fails with the screen after 30 s.
    fn wait_for(&self, target: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen(target);
            if s.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared on {target}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A shell command line running `client` against `d`, then reporting its exit code and whether
/// the terminal is back in canonical mode, then idling so the pane stays readable.
fn wrapped(d: &Daemon, client: &Path, args: &str) -> String {
    format!(
        "env DOCKER_HOST={} DOCKER_CONFIG={} {} {args}; echo \"rc=$?\"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon; sleep 600",
        d.host(),
        d.docker_config.display(),
        client.display()
    )
}

#[test]
fn interactive_run_detach_reattach_and_exec() {
    let d = Daemon::start();
    interactive_session(&d, &d.wharf_path());
}

#[test]
fn interactive_session_through_the_docker_cli() {
    let d = Daemon::start();
    interactive_session(&d, Path::new(common::DOCKER));
}

fn interactive_session(d: &Daemon, client: &Path) {
    let name = unique("tty");
    let t = Tmux::new();
    let run = wrapped(d, client, &format!("run -it --name {name} busybox sh"));
    let started = t.run(&[
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "100",
        "-y",
        "30",
        &run,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );

    t.wait_for("main", "/ #");
    t.keys("main", &["echo typed-$((40+2))", "Enter"]);
    t.wait_for("main", "typed-42");
    t.keys("main", &["stty size", "Enter"]);
    t.wait_for("main", "30 100");
    assert!(t
        .run(&["resize-window", "-t", "main", "-x", "120", "-y", "40"])
        .status
        .success());
    t.keys("main", &["clear; stty size", "Enter"]);
    t.wait_for("main", "40 120");

    // ctrl-p ctrl-q detaches: wharf exits 0 with the terminal restored; the container runs on.
    t.keys("main", &["C-p", "C-q"]);
    t.wait_for("main", "rc=0");
    t.wait_for("main", "\nicanon");
    let running = d.wharf(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(String::from_utf8_lossy(&running.stdout), "true\n");

    // exec -it into the same container.
    let exec = wrapped(d, client, &format!("exec -it {name} sh"));
    assert!(t
        .run(&["new-window", "-t", "main", "-n", "exec", &exec])
        .status
        .success());
    t.wait_for("main:exec", "/ #");
    t.keys("main:exec", &["echo ex-$((1+1)); exit 5", "Enter"]);
    t.wait_for("main:exec", "ex-2");
    t.wait_for("main:exec", "rc=5");

    // Attach to the `run -it` container, detach, reattach, end it: attach returns its exit
    // code. Its stdin must have stayed open through the first detach (a tty's always does).
    let attach = wrapped(d, client, &format!("attach {name}"));
    assert!(t
        .run(&["new-window", "-t", "main", "-n", "att1", &attach])
        .status
        .success());
    // The shell prints nothing on attach; give it a line to answer.
    t.keys("main:att1", &["echo first-$((1+6))", "Enter"]);
    t.wait_for("main:att1", "first-7");
    // Like docker, attach calls a detach an error: "read escape sequence", exit 1.
    t.keys("main:att1", &["C-p", "C-q"]);
    t.wait_for("main:att1", "read escape sequence");
    t.wait_for("main:att1", "rc=1");
    t.wait_for("main:att1", "\nicanon");
    assert!(t
        .run(&["new-window", "-t", "main", "-n", "att2", &attach])
        .status
        .success());
    t.keys("main:att2", &["echo back-$((2+3))", "Enter"]);
    t.wait_for("main:att2", "back-5");
    t.keys("main:att2", &["exit 3", "Enter"]);
    t.wait_for("main:att2", "rc=3");
    t.wait_for("main:att2", "\nicanon");
}

#[test]
fn piped_stdin_reaches_the_container() {
    let d = Daemon::start();
    let mut child = Command::new(d.wharf_path());
    d.env(&mut child);
    let out = child
        .args(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wharf");
    let mut child = out;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"hi\nthere\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait wharf");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nthere\ndone\n");
}

#[test]
fn signals_are_proxied_to_the_container() {
    let d = Daemon::start();
    let mut cmd = Command::new(d.wharf_path());
    d.env(&mut cmd);
    let mut child = cmd
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wharf");
    let pid = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read ready");
    assert_eq!(line, "ready\n");
    assert!(Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read rest");
    assert_eq!(rest, "got-term\n");
    // The wharf process exits with the container's code.
    assert_eq!(child.wait().expect("wait wharf").code(), Some(9));
}
