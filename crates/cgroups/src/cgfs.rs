//! File access inside a cgroup directory. Every path is built from a hierarchy root that the
//! caller passes in, so tests run against a fake tree in a tempdir.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::CgroupError;

/// Writes `value` to `dir/file` in one write(2), as cgroupfs parses each write separately.
/// Never creates the file: a missing file means the kernel lacks the knob.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| CgroupError::io("open", &path, e))?;
    let n = f
        .write(value.as_bytes())
        .map_err(|e| CgroupError::io("write", &path, e))?;
    if n != value.len() {
        return Err(CgroupError::io(
            "write",
            &path,
            io::Error::from(io::ErrorKind::WriteZero),
        ));
    }
    Ok(())
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|e| CgroupError::io("read", path, e))
}

/// Like [`read`] but a missing file is `None` (the kernel or controller lacks it).
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::io("read", path, e)),
    }
}

pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Parses a single number; `max` (v2's "unlimited") reads as `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a number, got {s:?}"),
    })
}

/// A numeric file, 0 when the file is missing.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&dir.join(file), &s),
        None => Ok(0),
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events); non-numeric lines skipped.
pub(crate) fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(read_opt(dir, file)?
        .map(|s| parse_flat_keyed(&s))
        .unwrap_or_default())
}

pub(crate) fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|e| CgroupError::io("mkdir", dir, e))
}

/// Pids in `dir/cgroup.procs` and in every descendant cgroup.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        let text = match fs::read_to_string(&procs) {
            Ok(t) => t,
            // A child cgroup removed while walking is not an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => return Err(CgroupError::io("read", procs, e)),
        };
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let pid = l.trim().parse().map_err(|_| CgroupError::Parse {
                path: procs.clone(),
                reason: format!("bad pid {l:?}"),
            })?;
            pids.push(pid);
        }
        stack.extend(child_dirs(&d)?);
    }
    Ok(pids)
}

fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CgroupError::io("readdir", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CgroupError::io("readdir", dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Removes a cgroup and its descendants, deepest first. A cgroup whose last task is still
/// exiting reports EBUSY for a moment, so that is retried briefly. Already gone is success.
pub(crate) fn remove_cgroup(dir: &Path) -> Result<(), CgroupError> {
    for child in child_dirs(dir)? {
        remove_cgroup(&child)?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut delay = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(CgroupError::io("rmdir", dir, e)),
        }
    }
}

/// Polls `done` until it returns true or `timeout` passes; returns whether it finished.
pub(crate) fn wait_for(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_micros(500);
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_never_creates_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write(dir.path(), "pids.max", "10").expect_err("missing knob");
        assert!(err.to_string().contains("pids.max"));
        fs::write(dir.path().join("pids.max"), "max\n").expect("fixture");
        write(dir.path(), "pids.max", "10").expect("write");
        assert_eq!(read(dir.path(), "pids.max").expect("read"), "10");
    }

    #[test]
    fn numbers_and_flat_keyed_files() {
        let p = Path::new("/x");
        assert_eq!(parse_u64(p, "42\n").expect("num"), 42);
        assert_eq!(parse_u64(p, "max\n").expect("max"), u64::MAX);
        assert!(parse_u64(p, "-3").is_err());
        let m = parse_flat_keyed("cache 10\nrss 20\nbogus\nname x\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["rss"], 20);
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_u64(dir.path(), "absent").expect("absent"), 0);
    }

    #[test]
    fn procs_are_collected_recursively() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("cgroup.procs"), "1\n2\n").expect("fixture");
        fs::create_dir(dir.path().join("child")).expect("mkdir");
        fs::write(dir.path().join("child/cgroup.procs"), "3\n").expect("fixture");
        let mut pids = procs_recursive(dir.path()).expect("procs");
        pids.sort();
        assert_eq!(pids, [1, 2, 3]);
        fs::write(dir.path().join("cgroup.procs"), "x\n").expect("fixture");
        assert!(procs_recursive(dir.path()).is_err());
    }

    #[test]
    fn removing_a_missing_cgroup_is_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        remove_cgroup(&dir.path().join("gone")).expect("already gone");
        fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        remove_cgroup(&dir.path().join("a")).expect("empty dirs");
        assert!(!dir.path().join("a").exists());
    }
}
