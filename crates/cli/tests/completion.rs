//! Completions and the man page come from the CLI definition and need no daemon.

use std::process::Command;

fn wharf(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .expect("run wharf");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

#[test]
fn completions_and_man_page() {
    let (code, bash) = wharf(&["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(bash.contains("_wharf()") && bash.contains("--detach-keys"));
    let (_, zsh) = wharf(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef wharf"));
    let (_, fish) = wharf(&["completion", "fish"]);
    assert!(fish.contains("complete -c wharf"));
    let (_, man) = wharf(&["completion", "man"]);
    assert!(man.contains(".TH wharf 1"));
    assert_eq!(wharf(&["completion", "tcsh"]).0, 1);
}

#[test]
fn version_without_daemon_reports_client_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "-H",
            &format!("unix://{}/none.sock", dir.path().display()),
            "version",
        ])
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .expect("run wharf");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Client:\n Version:"));
    assert!(String::from_utf8_lossy(&o.stderr)
        .starts_with("Cannot connect to the Docker daemon at unix://"));
}
