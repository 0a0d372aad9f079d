//! docker-compose 1.29 (Debian's, docker-py inside) against a test daemon: a project is a
//! directory with one `docker-compose.yml` and a fixed project name.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::Daemon;

/// Where Debian installs docker-compose 1.29.
pub const COMPOSE: &str = "/usr/bin/docker-compose";

/// One compose project of one daemon.
pub struct Project<'a> {
    d: &'a Daemon,
    dir: PathBuf,
    /// The project name (`-p`), the prefix of its networks, volumes and containers.
    pub name: String,
}

impl<'a> Project<'a> {
    /// Writes `yaml` as the project's compose file.
    pub fn new(d: &'a Daemon, name: &str, yaml: &str) -> Project<'a> {
        let dir = d.dir.path().join(format!("compose-{name}"));
        std::fs::create_dir_all(&dir).expect("project dir");
        std::fs::write(dir.join("docker-compose.yml"), yaml).expect("compose file");
        Project {
            d,
            dir,
            name: name.to_string(),
        }
    }

    /// Runs `docker-compose <args>` (killed after 120 s at the latest).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-s", "KILL", "120", COMPOSE])
            .args(["--ansi", "never", "-p", &self.name])
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", format!("unix://{}", self.d.sock.display()))
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("docker-compose (hack/deps.sh installs it)")
    }

    /// Runs `docker-compose <args>` and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker-compose {args:?} failed ({}):\n{}\n{}\n--- daemon log ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.d.log()
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "-t", "1"]);
    }
}
