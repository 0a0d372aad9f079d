//! The init layer: mount points the runtime binds over (`/etc/hosts`, `/proc`, ...) created
//! once under each container's read-write layer, so `docker diff` and `commit` never see them.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path};

enum Kind {
    Dir,
    File,
    Symlink(&'static str),
}

/// Docker's list (daemon/initlayer): what must exist before the runtime mounts over it.
const ENTRIES: &[(&str, Kind)] = &[
    ("dev/pts", Kind::Dir),
    ("dev/shm", Kind::Dir),
    ("proc", Kind::Dir),
    ("sys", Kind::Dir),
    (".dockerenv", Kind::File),
    ("etc/resolv.conf", Kind::File),
    ("etc/hosts", Kind::File),
    ("etc/hostname", Kind::File),
    ("dev/console", Kind::File),
    ("etc/mtab", Kind::Symlink("/proc/mounts")),
];

/// Creates each missing entry under `root` (the init layer's merged view). Entries that
/// exist, or whose path crosses a symlink of the image, are left alone: following an image's
/// symlink from the host side could write outside the root.
pub(crate) fn populate(root: &Path) -> io::Result<()> {
    for (rel, kind) in ENTRIES {
        let path = root.join(rel);
        if fs::symlink_metadata(&path).is_ok() || crosses_symlink(root, Path::new(rel)) {
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
        }
        match kind {
            Kind::Dir => fs::DirBuilder::new().mode(0o755).create(&path)?,
            Kind::File => drop(fs::OpenOptions::new().write(true).create_new(true).mode(0o755).open(&path)?),
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &path)?,
        }
    }
    Ok(())
}

/// Whether an existing ancestor of `rel` under `root` is a symlink.
fn crosses_symlink(root: &Path, rel: &Path) -> bool {
    let mut cur = root.to_path_buf();
    let mut parts = rel.components().filter(|c| matches!(c, Component::Normal(_))).peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return false;
        }
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_missing_entries_and_keeps_existing_ones() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir(t.path().join("etc")).expect("etc");
        fs::write(t.path().join("etc/hosts"), "image's hosts").expect("hosts");
        populate(t.path()).expect("populate");
        assert_eq!(fs::read_to_string(t.path().join("etc/hosts")).expect("read"), "image's hosts");
        assert!(t.path().join("etc/hostname").is_file());
        assert!(t.path().join("dev/pts").is_dir());
        assert!(t.path().join(".dockerenv").is_file());
        assert_eq!(fs::read_link(t.path().join("etc/mtab")).expect("mtab"), Path::new("/proc/mounts"));
        // A second run finds everything in place.
        populate(t.path()).expect("populate again");
    }

    #[test]
    fn never_follows_an_image_symlink_out_of_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        std::os::unix::fs::symlink(outside.path(), t.path().join("etc")).expect("symlink");
        populate(t.path()).expect("populate");
        assert_eq!(fs::read_dir(outside.path()).expect("read").count(), 0);
    }
}
