//! Copy-up: a new, empty volume mounted over image content starts with that content (owners,
//! modes, xattrs, symlinks, hard links kept), as dockerd does on first use.

use std::path::Path;

use crate::error::{Result, VolumeError};

/// Copies `src` (the image's directory under the container's rootfs) into the volume at `dst`
/// when `src` is a directory and `dst` is empty (an empty `src` still gives its owner and
/// mode, as dockerd's `copyOwnership`). Returns whether it copied.
pub fn copy_up(src: &Path, dst: &Path) -> Result<bool> {
    let Ok(meta) = std::fs::symlink_metadata(src) else {
        return Ok(false);
    };
    if !meta.is_dir() || !is_empty(dst)? {
        return Ok(false);
    }
    wharf_archive::copy_tree(src, dst)?;
    Ok(true)
}

fn is_empty(dir: &Path) -> Result<bool> {
    let mut it = std::fs::read_dir(dir).map_err(VolumeError::io("reading", dir))?;
    Ok(it.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_into_empty_only_and_keeps_modes_and_links() {
        let t = tempfile::tempdir().expect("tmp");
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).expect("src");
        std::fs::write(src.join("sub/f"), b"hello").expect("f");
        std::fs::set_permissions(src.join("sub/f"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        std::os::unix::fs::symlink("sub/f", src.join("link")).expect("ln");
        std::fs::create_dir(&dst).expect("dst");
        assert!(copy_up(&src, &dst).expect("copy"));
        assert_eq!(std::fs::read(dst.join("sub/f")).expect("read"), b"hello");
        let m = std::fs::metadata(dst.join("sub/f")).expect("meta");
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(
            m.uid(),
            std::fs::metadata(src.join("sub/f")).expect("m").uid()
        );
        assert_eq!(std::fs::metadata(&dst).expect("m").mode() & 0o7777, 0o750);
        assert_eq!(
            std::fs::read_link(dst.join("link")).expect("link"),
            Path::new("sub/f")
        );
        // Never into a volume that holds data; nothing to do for a missing or empty source.
        std::fs::write(src.join("new"), b"n").expect("new");
        assert!(!copy_up(&src, &dst).expect("again"));
        assert!(!dst.join("new").exists());
        assert!(!copy_up(&t.path().join("missing"), &dst).expect("missing"));
        // An empty image directory still gives its mode.
        let (e1, e2) = (t.path().join("e1"), t.path().join("e2"));
        std::fs::create_dir(&e1).expect("e1");
        std::fs::create_dir(&e2).expect("e2");
        assert!(copy_up(&e1, &e2).expect("empty"));
    }
}
