//! `kill`: deliver a signal to init (or, with `all`, to every process of the container).

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Container;
use crate::error::{LibcontainerError, Result};

/// Parses `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || LibcontainerError::InvalidSpec(format!("invalid signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<Signal>().map_err(|_| bad())
}

impl Container {
    /// Sends `sig` to init; with `all`, to every process in the container's pid namespace
    /// (found through /proc, since they all descend from init).
    pub fn kill(&self, sig: Signal, all: bool) -> Result<()> {
        if !self.status().can_kill() {
            return Err(self.refuse("kill"));
        }
        if all {
            for pid in self.processes()? {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        kill(Pid::from_raw(self.pid()), sig).map_err(LibcontainerError::sys(format!("kill {}", self.pid())))
    }

    /// Host pids of init and all its descendants.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let proc = std::path::Path::new(super::PROC);
        let mut parents: Vec<(i32, i32)> = Vec::new();
        let entries = std::fs::read_dir(proc).map_err(LibcontainerError::io("read /proc"))?;
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            if let Some(ppid) = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().nth(1)?.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
        Ok(descendants(self.pid(), &parents))
    }
}

/// `root` and every pid whose parent chain reaches it.
pub fn descendants(root: i32, parents: &[(i32, i32)]) -> Vec<i32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("SIGKILL").expect("sig"), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").expect("sig"), Signal::SIGKILL);
        assert_eq!(parse_signal("term").expect("sig"), Signal::SIGTERM);
        assert_eq!(parse_signal("9").expect("sig"), Signal::SIGKILL);
        assert_eq!(parse_signal("15").expect("sig"), Signal::SIGTERM);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn tree_walk() {
        let t = [(2, 1), (3, 2), (4, 1), (5, 9)];
        let mut d = descendants(1, &t);
        d.sort();
        assert_eq!(d, vec![1, 2, 3, 4]);
    }
}
