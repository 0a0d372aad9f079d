//! What the runtime reads about processes from /proc.

use std::path::Path;

/// Start time (clock ticks since boot) and state letter from a `/proc/<pid>/stat` line.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 overall is the 20th after the state (field 3).
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Start time and state of `pid` under the proc mount `proc`, if it exists.
pub fn stat(proc: &Path, pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&s)
}

/// Whether `pid` still is the process that started at `start_time` and has not exited.
pub fn alive(proc: &Path, pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(stat(proc, pid), Some((st, t)) if t == start_time && st != 'Z' && st != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_odd_names() {
        let line = "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 0 0";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn self_is_alive() {
        let pid = std::process::id() as i32;
        let (st, start) = stat(Path::new("/proc"), pid).expect("own stat");
        assert_ne!(st, 'Z');
        assert!(alive(Path::new("/proc"), pid, start));
        assert!(!alive(Path::new("/proc"), pid, start + 1));
    }
}
