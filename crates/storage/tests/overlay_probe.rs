//! overlay2 refuses, with a clear error, a home where overlay cannot hold an upper dir.

use std::fs;

use rustix::mount::{MountFlags, UnmountFlags};
use wharf_errdefs::{Classify, ErrorKind};
use wharf_storage::{Driver, DriverKind};

/// An overlay mounted for the test, detached on drop even if the test fails.
struct OverlayMount(std::path::PathBuf);

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, UnmountFlags::DETACH);
    }
}

#[test]
fn home_on_overlayfs_is_refused_and_vfs_still_works() {
    wharf_testutil::require_root!();
    let dir = tempfile::Builder::new()
        .prefix(&format!("wharf-overlay-probe-{}-", std::process::id()))
        .tempdir()
        .unwrap();
    let p = dir.path();
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(p.join(d)).unwrap();
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        p.join("lower").display(),
        p.join("upper").display(),
        p.join("work").display()
    );
    let data = std::ffi::CString::new(data).unwrap();
    rustix::mount::mount(
        "overlay",
        p.join("merged"),
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .unwrap();
    let _guard = OverlayMount(p.join("merged"));

    let err = Driver::new(DriverKind::Overlay2, &p.join("merged/home"), &[])
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("overlayfs"), "{err}");

    let vfs = Driver::new(DriverKind::Vfs, &p.join("merged/vfs"), &[]).unwrap();
    assert_eq!(
        vfs.status()[0],
        ("Backing Filesystem".to_string(), "overlayfs".to_string())
    );
}
