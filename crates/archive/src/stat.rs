//! `docker cp` path stats (`HEAD /containers/{id}/archive`), confined to a root.

use std::path::Path;

use rustix::fs::{FileType, OFlags};

use crate::root::Root;
use crate::walk::{Source, Xattrs};
use crate::ArchiveError;

/// What Docker reports in the `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// Base name of the requested path (`/` for the root).
    pub name: String,
    /// Size in bytes (of the link itself for a symlink).
    pub size: u64,
    /// Raw `st_mode` (type and permission bits); see [`PathStat::go_mode`] for the wire format.
    pub mode: u32,
    /// Modification time, seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// For a symlink, the absolute in-root path it resolves to; empty otherwise.
    pub link_target: String,
}

impl PathStat {
    /// The mode encoded as Go's `os.FileMode`, which is what Docker's JSON carries.
    pub fn go_mode(&self) -> u32 {
        let perm = self.mode & 0o777;
        let mut m = perm;
        let ft = FileType::from_raw_mode(self.mode);
        m |= match ft {
            FileType::Directory => 1 << 31,
            FileType::Symlink => 1 << 27,
            FileType::BlockDevice => 1 << 26,
            FileType::CharacterDevice => (1 << 26) | (1 << 21),
            FileType::Fifo => 1 << 25,
            FileType::Socket => 1 << 24,
            _ => 0,
        };
        if self.mode & 0o4000 != 0 {
            m |= 1 << 23;
        }
        if self.mode & 0o2000 != 0 {
            m |= 1 << 22;
        }
        if self.mode & 0o1000 != 0 {
            m |= 1 << 20;
        }
        m
    }
}

/// Stats `path_in_root` inside `root` without following its final component (symlinks in the
/// parent path resolve inside the root). `NotFound` when absent.
pub fn stat_path(root: &Path, path_in_root: &str) -> Result<PathStat, ArchiveError> {
    let rel = crate::path::clean(Path::new(path_in_root))?;
    let r = Root::open(root)?;
    let fd = r
        .open_in(&rel, OFlags::PATH | OFlags::NOFOLLOW)
        .map_err(|e| {
            // A file used as a directory (`/etc/hosts/x`) does not exist either.
            let missing = e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error());
            if missing {
                ArchiveError::NotFound(path_in_root.to_string())
            } else {
                ArchiveError::io("stat", path_in_root, e)
            }
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ArchiveError::io("stat", path_in_root, e))?;
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        let resolved = Source::open(root, Xattrs::Capability)?.resolve(&rel);
        match resolved {
            Ok(p) => format!("/{}", p.display()),
            // A dangling link still has a stat; Docker reports its raw target then.
            Err(ArchiveError::NotFound(_)) => {
                let t = rustix::fs::readlinkat(&fd, "", Vec::new())
                    .map_err(|e| ArchiveError::io("readlink", path_in_root, e))?;
                t.to_string_lossy().into_owned()
            }
            Err(e) => return Err(e),
        }
    } else {
        String::new()
    };
    Ok(PathStat {
        name: rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_string()),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode,
        mtime: (st.st_mtime, u32::try_from(st.st_mtime_nsec).unwrap_or(0)),
        link_target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes_match_docker() {
        let s = |mode| PathStat {
            name: String::new(),
            size: 0,
            mode,
            mtime: (0, 0),
            link_target: String::new(),
        };
        assert_eq!(s(0o040755).go_mode(), (1 << 31) | 0o755);
        assert_eq!(s(0o100644).go_mode(), 0o644);
        assert_eq!(s(0o104755).go_mode(), (1 << 23) | 0o755);
        assert_eq!(s(0o120777).go_mode(), (1 << 27) | 0o777);
    }

    #[test]
    fn stats_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hosts"), "12345").unwrap();
        std::os::unix::fs::symlink("/etc/hosts", root.join("h")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.join("dangling")).unwrap();
        let st = stat_path(root, "/etc/hosts").unwrap();
        assert_eq!((st.name.as_str(), st.size), ("hosts", 5));
        assert_eq!(stat_path(root, "/h").unwrap().link_target, "/etc/hosts");
        assert_eq!(
            stat_path(root, "/dangling").unwrap().link_target,
            "/etc/shadow"
        );
        assert_eq!(stat_path(root, "/").unwrap().name, "/");
        assert!(matches!(
            stat_path(root, "/nope"),
            Err(ArchiveError::NotFound(_))
        ));
        assert!(matches!(
            stat_path(root, "/h/x"),
            Err(ArchiveError::NotFound(_))
        ));
    }
}
