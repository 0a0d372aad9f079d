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
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

impl Container {
    /// Sends `sig` to init; with `all`, to every process in the container's cgroup.
    pub fn kill(&self, sig: Signal, all: bool) -> Result<()> {
        if !self.status().can_kill() {
            return Err(self.refuse("kill"));
        }
        if all {
            if let Some(cg) = self.cgroup()? {
                return Ok(cg.kill_all(sig as i32)?);
            }
        }
        kill(Pid::from_raw(self.pid()), sig)
            .map_err(LibcontainerError::sys(format!("kill {}", self.pid())))
    }

    /// Host pids of every process in the container's cgroup.
    pub fn processes(&self) -> Result<Vec<i32>> {
        match self.cgroup()? {
            Some(cg) => Ok(cg.pids()?),
            None => Ok(vec![self.pid()]),
        }
    }
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
}
