//! The init layer: mount points the runtime binds over (`/etc/hosts`, `/proc`, ...) created
//! once under each container's read-write layer, so `docker diff` and `commit` never see them.
//!
//! Docker fills it through a mount of the new layer. Its entries are all new, so they are written
//! straight into the layer's upper directory instead, with the image's view read from the layer
//! directories: an overlay mount and unmount (the unmount waits out an RCU grace period) cost
//! more than the whole fill.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wharf_storage::{RwView, ViewKind};

use crate::error::ImageError;

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

/// Creates each entry missing from the view. Entries that exist, or whose path crosses a
/// symlink of the image, are left alone: following an image's symlink from the host side could
/// write outside the root.
pub(crate) fn populate(view: &RwView) -> Result<(), ImageError> {
    let io_err = |rel: &str| ImageError::io(format!("create the init layer's {rel}"));
    for (rel, kind) in ENTRIES {
        if view.lstat(Path::new(rel))?.is_some() || !make_parents(view, Path::new(rel))? {
            continue;
        }
        let path = view.upper().join(rel);
        match kind {
            Kind::Dir => fs::DirBuilder::new().mode(0o755).create(&path),
            Kind::File => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&path)
                .map(drop),
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &path),
        }
        .map_err(io_err(rel))?;
    }
    Ok(())
}

/// Creates `rel`'s parents in the upper directory, those the image has with its mode and owner
/// (what an overlay copy-up keeps). False when one of them is a symlink in the view.
fn make_parents(view: &RwView, rel: &Path) -> Result<bool, ImageError> {
    let mut prefix = PathBuf::new();
    for comp in rel.parent().into_iter().flat_map(Path::components) {
        prefix.push(comp);
        let upper = view.upper().join(&prefix);
        let io_err = ImageError::io(format!("create the init layer's {}", prefix.display()));
        let seen = view.lstat(&prefix)?;
        match seen {
            Some(e) if e.kind == ViewKind::Symlink => return Ok(false),
            // Created here earlier, or shadowed by a non-directory the fill below reports.
            _ if fs::symlink_metadata(&upper).is_ok() => {}
            Some(e) if e.kind == ViewKind::Dir => (|| {
                fs::DirBuilder::new().mode(0o755).create(&upper)?;
                std::os::unix::fs::lchown(&upper, Some(e.uid), Some(e.gid))?;
                fs::set_permissions(&upper, fs::Permissions::from_mode(e.mode))
            })()
            .map_err(io_err)?,
            Some(_) => return Err(io_err(io::Error::from(io::ErrorKind::NotADirectory))),
            None => fs::DirBuilder::new()
                .mode(0o755)
                .create(&upper)
                .map_err(io_err)?,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn creates_missing_entries_and_keeps_existing_ones() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir(t.path().join("etc")).expect("etc");
        fs::write(t.path().join("etc/hosts"), "image's hosts").expect("hosts");
        let view = RwView::new(t.path().to_path_buf(), Vec::new());
        populate(&view).expect("populate");
        assert_eq!(
            fs::read_to_string(t.path().join("etc/hosts")).expect("read"),
            "image's hosts"
        );
        assert!(t.path().join("etc/hostname").is_file());
        assert!(t.path().join("dev/pts").is_dir());
        assert!(t.path().join(".dockerenv").is_file());
        assert_eq!(
            fs::read_link(t.path().join("etc/mtab")).expect("mtab"),
            Path::new("/proc/mounts")
        );
        // A second run finds everything in place.
        populate(&view).expect("populate again");
    }

    #[test]
    fn never_follows_an_image_symlink_out_of_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        std::os::unix::fs::symlink(outside.path(), t.path().join("etc")).expect("symlink");
        populate(&RwView::new(t.path().to_path_buf(), Vec::new())).expect("populate");
        assert_eq!(fs::read_dir(outside.path()).expect("read").count(), 0);
    }

    #[test]
    fn writes_only_the_upper_dir_keeping_the_image_directories_attributes() {
        let t = tempfile::tempdir().expect("tempdir");
        let (upper, top, base) = (
            t.path().join("upper"),
            t.path().join("top"),
            t.path().join("base"),
        );
        for d in [&upper, &top, &base.join("etc"), &base.join("dev")] {
            fs::create_dir_all(d).expect("mkdir");
        }
        fs::write(base.join("etc/hosts"), "").expect("hosts");
        fs::write(base.join("etc/hostname"), "").expect("hostname");
        // The top layer changes etc's mode and owner (its attributes are the view's), deletes
        // etc/hostname (an overlay whiteout) and makes dev a symlink.
        fs::create_dir(top.join("etc")).expect("mkdir");
        fs::set_permissions(top.join("etc"), fs::Permissions::from_mode(0o2750)).expect("chmod");
        std::os::unix::fs::lchown(top.join("etc"), Some(7), Some(8)).expect("chown");
        let mknod = std::process::Command::new("mknod")
            .arg(top.join("etc/hostname"))
            .args(["c", "0", "0"])
            .status();
        assert!(mknod.expect("mknod").success(), "whiteout");
        std::os::unix::fs::symlink("/elsewhere", top.join("dev")).expect("symlink");
        populate(&RwView::new(upper.clone(), vec![top.clone(), base.clone()])).expect("populate");

        let etc = fs::metadata(upper.join("etc")).expect("etc copied up");
        assert_eq!((etc.mode() & 0o7777, etc.uid(), etc.gid()), (0o2750, 7, 8));
        assert!(
            upper.join("etc/hostname").is_file(),
            "whited-out entry recreated"
        );
        assert!(!upper.join("etc/hosts").exists(), "the image's own is kept");
        assert!(
            !upper.join("dev").exists(),
            "nothing under the image's symlink"
        );
        assert!(upper.join("proc").is_dir() && upper.join(".dockerenv").is_file());
        assert_eq!(
            fs::read_dir(base.join("etc")).expect("base").count(),
            2,
            "lower layers untouched"
        );
    }
}
