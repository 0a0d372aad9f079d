//! One conformance suite run against every driver, on tempdir homes, as root (overlay mounts).

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use wharf_archive::{Change, ChangeKind};
use wharf_errdefs::{Classify, ErrorKind};
use wharf_storage::{Driver, DriverKind};

/// A driver on a fresh home that unmounts and deletes everything when dropped, even if the test
/// panicked.
struct Home {
    driver: Option<Driver>,
    dir: tempfile::TempDir,
}

impl Home {
    fn new(kind: DriverKind) -> Home {
        wharf_testutil::require_root!();
        let dir = tempfile::Builder::new()
            .prefix(&format!("wharf-storage-{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let driver = Driver::new(kind, &dir.path().join("home"), &[]).unwrap();
        Home {
            driver: Some(driver),
            dir,
        }
    }
    fn d(&self) -> &Driver {
        self.driver.as_ref().unwrap()
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("home")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(d) = self.driver.take() {
            let _ = d.cleanup();
            let _ = d.reconcile(&[]);
        }
    }
}

fn hdr(kind: tar::EntryType, mode: u32, size: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size as u64);
    h.set_mtime(1_600_000_000);
    h
}

/// A layer tar from (name, Some(content)) files, (name/ , None) dirs and ("->target") symlinks.
fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        if name.ends_with('/') {
            b.append_data(&mut hdr(tar::EntryType::Directory, 0o755, 0), name, &[][..])
                .unwrap();
        } else if let Some(target) = data.strip_prefix("->") {
            b.append_link(&mut hdr(tar::EntryType::Symlink, 0o777, 0), name, target)
                .unwrap();
        } else {
            b.append_data(
                &mut hdr(tar::EntryType::Regular, 0o644, data.len()),
                name,
                data.as_bytes(),
            )
            .unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn create(d: &Driver, id: &str, parent: Option<&str>, entries: &[(&str, &str)]) {
    d.create_layer(id, parent, &mut Cursor::new(layer(entries)))
        .unwrap();
}

fn base(d: &Driver) {
    create(
        d,
        "base",
        None,
        &[
            ("etc/", ""),
            ("etc/hosts", "127.0.0.1\n"),
            ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            ("opt/", ""),
            ("opt/a", "a"),
            ("opt/b", "b"),
            ("bin/", ""),
            ("bin/sh", "#!busybox"),
            ("bin/ash", "->sh"),
        ],
    );
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

fn kinds(v: &[Change]) -> Vec<(&str, ChangeKind)> {
    v.iter().map(|c| (c.path.as_str(), c.kind)).collect()
}

fn layers_and_mount(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    assert!(d.exists("base"));
    create(
        d,
        "top",
        Some("base"),
        &[
            ("etc/hosts", "10.0.0.1\n"),
            ("opt/", ""),
            ("opt/.wh..wh..opq", ""),
            ("opt/c", "c"),
            ("bin/.wh.ash", ""),
        ],
    );
    let m = d.mount("top").unwrap();
    assert_eq!(read(&m.join("etc/hosts")), "10.0.0.1\n");
    assert_eq!(read(&m.join("etc/passwd")), "root:x:0:0::/root:/bin/sh\n");
    let opt: Vec<_> = fs::read_dir(m.join("opt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(opt, vec!["c"]);
    assert!(
        fs::symlink_metadata(m.join("bin/ash")).is_err(),
        "whiteout must hide bin/ash"
    );
    assert_eq!(
        fs::read_link(h.d().mount("base").unwrap().join("bin/ash")).unwrap(),
        Path::new("sh")
    );
    d.unmount("base").unwrap();
    d.unmount("top").unwrap();
    d.remove("top").unwrap();
    assert!(!d.exists("top"));
    d.remove("top").unwrap();
}

fn rw_layer_changes_and_diff(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    d.create_rw("ctr", Some("base")).unwrap();
    let m = d.mount("ctr").unwrap();
    fs::write(m.join("etc/hosts"), "changed\n").unwrap();
    fs::remove_file(m.join("opt/a")).unwrap();
    fs::create_dir(m.join("data")).unwrap();
    fs::write(m.join("data/new"), "new").unwrap();
    let changes = d.changes("ctr", Some("base")).unwrap();
    assert_eq!(
        kinds(&changes),
        vec![
            ("/data", ChangeKind::Added),
            ("/data/new", ChangeKind::Added),
            ("/etc", ChangeKind::Modified),
            ("/etc/hosts", ChangeKind::Modified),
            ("/opt", ChangeKind::Modified),
            ("/opt/a", ChangeKind::Deleted),
        ]
    );
    let mut tar1 = Vec::new();
    d.diff("ctr", Some("base"), &mut tar1).unwrap();
    let mut tar2 = Vec::new();
    d.diff("ctr", Some("base"), &mut tar2).unwrap();
    assert_eq!(tar1, tar2, "diff tars must be deterministic");
    let mut names = Vec::new();
    for e in tar::Archive::new(Cursor::new(&tar1)).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(
        names,
        vec![
            "data/",
            "data/new",
            "etc/",
            "etc/hosts",
            "opt/",
            "opt/.wh.a"
        ]
    );
    assert!(d.diff_size("ctr").unwrap() >= 11);

    // The diff applied on the parent reproduces the container's view (commit round trip).
    d.create_layer("committed", Some("base"), &mut Cursor::new(tar1))
        .unwrap();
    let c = d.mount("committed").unwrap();
    assert_eq!(read(&c.join("etc/hosts")), "changed\n");
    assert_eq!(read(&c.join("data/new")), "new");
    assert!(!c.join("opt/a").exists());
    assert_eq!(read(&c.join("opt/b")), "b");
    d.unmount("committed").unwrap();
    d.unmount("ctr").unwrap();
}

fn refcounted_mounts(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    d.create_rw("ctr", Some("base")).unwrap();
    let m1 = d.mount("ctr").unwrap();
    let m2 = d.mount("ctr").unwrap();
    assert_eq!(m1, m2);
    d.unmount("ctr").unwrap();
    assert!(
        m1.join("etc/hosts").exists(),
        "still mounted after one of two unmounts"
    );
    d.unmount("ctr").unwrap();
    if kind == DriverKind::Overlay2 {
        assert!(
            !m1.join("etc/hosts").exists(),
            "overlay unmounted after the last unmount"
        );
    }
    // remove while mounted unmounts first
    d.mount("ctr").unwrap();
    d.remove("ctr").unwrap();
    assert!(!d.exists("ctr"));
}

fn errors_are_classified(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    let dup = d
        .create_layer("base", None, &mut Cursor::new(layer(&[])))
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists, "{dup}");
    let missing = d.create_rw("x", Some("nope")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    for bad in ["../evil", "a/b", ".tmp-x", ""] {
        assert_eq!(
            d.create_rw(bad, None).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
    assert_eq!(d.mount("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!d.exists("../base"));
}

fn hostile_layer_leaves_nothing(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    let mut hb = tar::Header::new_gnu();
    hb.set_entry_type(tar::EntryType::Regular);
    hb.set_size(1);
    hb.set_mode(0o644);
    hb.as_old_mut().name[..9].copy_from_slice(b"../../pwn");
    hb.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(
        &mut hdr(tar::EntryType::Regular, 0o644, 2),
        "ok",
        &b"ok"[..],
    )
    .unwrap();
    b.append(&hb, &b"x"[..]).unwrap();
    let err = d
        .create_layer(
            "evil",
            Some("base"),
            &mut Cursor::new(b.into_inner().unwrap()),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("../../pwn"), "{err}");
    assert!(!d.exists("evil"));
    let leftovers: Vec<_> = walk_names(&h.path())
        .into_iter()
        .filter(|n| n.contains(".tmp-") || n.contains("pwn"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!h.dir.path().join("pwn").exists());
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn reconcile_removes_leftovers_and_unknown(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    d.create_rw("orphan", Some("base")).unwrap();
    let layer_parent = if kind == DriverKind::Vfs {
        h.path().join("dir")
    } else {
        h.path()
    };
    fs::create_dir_all(layer_parent.join(".tmp-half-1-1/diff")).unwrap();
    let removed = d.reconcile(&["base".to_string()]).unwrap();
    assert!(removed.contains(&"orphan".to_string()), "{removed:?}");
    assert!(
        removed.contains(&".tmp-half-1-1".to_string()),
        "{removed:?}"
    );
    assert!(d.exists("base") && !d.exists("orphan"));
    assert!(!layer_parent.join(".tmp-half-1-1").exists());
    assert!(d.reconcile(&["base".to_string()]).unwrap().is_empty());
}

fn deep_chain_mounts(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    let depth = 120;
    let mut parent: Option<String> = None;
    for i in 0..depth {
        let id = format!("{:064x}", i + 1);
        let name = format!("f{i}");
        create(d, &id, parent.as_deref(), &[(name.as_str(), "x")]);
        parent = Some(id);
    }
    let top = parent.unwrap();
    let m = d.mount(&top).unwrap();
    assert_eq!(fs::read_dir(&m).unwrap().count(), depth);
    d.unmount(&top).unwrap();
}

fn preserves_ownership_and_modes(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    let mut b = tar::Builder::new(Vec::new());
    let mut f = hdr(tar::EntryType::Regular, 0o4750, 1);
    f.set_uid(1234);
    f.set_gid(5678);
    b.append_data(&mut f, "usr/bin/suid", &b"s"[..]).unwrap();
    d.create_layer("l1", None, &mut Cursor::new(b.into_inner().unwrap()))
        .unwrap();
    d.create_rw("rw", Some("l1")).unwrap();
    let m = d.mount("rw").unwrap();
    let md = fs::metadata(m.join("usr/bin/suid")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1234, 5678, 0o4750)
    );
    assert_eq!(md.mtime(), 1_600_000_000);
    d.unmount("rw").unwrap();
}

fn busybox_rootfs_runs(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    let tarfile = h.dir.path().join("rootfs.tar");
    wharf_testutil::busybox_rootfs_tar(&tarfile).unwrap();
    let size = d
        .create_layer("bb", None, &mut fs::File::open(&tarfile).unwrap())
        .unwrap();
    assert!(size > 100_000, "busybox binary unpacked: {size}");
    d.create_rw("bbctr", Some("bb")).unwrap();
    let m = d.mount("bbctr").unwrap();
    let out = std::process::Command::new("chroot")
        .arg(&m)
        .args([
            "/bin/sh",
            "-c",
            "echo hi > /tmp/out && cat /etc/passwd | head -1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("root:x:0:0"));
    let changes = d.changes("bbctr", Some("bb")).unwrap();
    assert_eq!(
        kinds(&changes),
        vec![
            ("/tmp", ChangeKind::Modified),
            ("/tmp/out", ChangeKind::Added)
        ]
    );
    d.unmount("bbctr").unwrap();
}

fn deleted_and_recreated_directories(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    d.create_rw("ctr", Some("base")).unwrap();
    let m = d.mount("ctr").unwrap();
    fs::remove_dir_all(m.join("opt")).unwrap();
    fs::remove_dir_all(m.join("etc")).unwrap();
    fs::create_dir(m.join("etc")).unwrap();
    fs::write(m.join("etc/only"), "1").unwrap();
    let changes = d.changes("ctr", None).unwrap();
    let got = kinds(&changes);
    assert!(got.contains(&("/opt", ChangeKind::Deleted)), "{got:?}");
    assert!(got.contains(&("/etc/only", ChangeKind::Added)), "{got:?}");
    assert!(
        got.contains(&("/etc/hosts", ChangeKind::Deleted)),
        "{got:?}"
    );
    assert!(
        got.contains(&("/etc/passwd", ChangeKind::Deleted)),
        "{got:?}"
    );
    let mut diff = Vec::new();
    d.diff("ctr", None, &mut diff).unwrap();
    d.create_layer("committed", Some("base"), &mut Cursor::new(diff))
        .unwrap();
    let c = d.mount("committed").unwrap();
    assert!(!c.join("opt").exists());
    let etc: Vec<_> = fs::read_dir(c.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(etc, vec!["only"]);
    d.unmount("committed").unwrap();
    d.unmount("ctr").unwrap();
}

fn layer_without_parent_diffs_as_all_added(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    create(d, "solo", None, &[("a/", ""), ("a/b", "bb")]);
    assert_eq!(
        kinds(&d.changes("solo", None).unwrap()),
        vec![("/a", ChangeKind::Added), ("/a/b", ChangeKind::Added)]
    );
    assert_eq!(d.diff_size("solo").unwrap(), 2);
    let mut t = Vec::new();
    d.diff("solo", None, &mut t).unwrap();
    let names: Vec<_> = tar::Archive::new(Cursor::new(&t))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec!["a/", "a/b"]);
}

#[test]
fn driver_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Driver>();
}

/// A layer whose extraction is still running (the stand-in for a process killed midway) is never
/// visible as a layer, and a fresh driver's reconcile removes its remains.
fn interrupted_extraction_is_invisible_and_reconciled(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    base(d);
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    let mut hdr = hdr(tar::EntryType::Regular, 0o644, 1 << 20);
    hdr.set_path("big").unwrap();
    hdr.set_cksum();
    std::io::Write::write_all(&mut writer, hdr.as_bytes()).unwrap();
    std::io::Write::write_all(&mut writer, &[7u8; 4096]).unwrap();
    let staging_parent = if kind == DriverKind::Vfs {
        h.path().join("dir")
    } else {
        h.path()
    };
    let staging = || {
        fs::read_dir(&staging_parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".tmp-half"))
            .collect::<Vec<_>>()
    };
    std::thread::scope(|s| {
        let worker = s.spawn(|| d.create_layer("half", None, &mut reader));
        while staging().is_empty() {
            assert!(
                !worker.is_finished(),
                "create_layer ended before its extraction was seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !d.exists("half"),
            "a layer being extracted must not look complete"
        );
        // What the next daemon start does.
        let restarted = Driver::new(kind, &h.path(), &[]).unwrap();
        let removed = restarted.reconcile(&["base".to_string()]).unwrap();
        assert!(
            removed.iter().any(|n| n.starts_with(".tmp-half")),
            "{removed:?}"
        );
        drop(writer);
        assert!(
            worker.join().unwrap().is_err(),
            "a truncated layer must fail"
        );
    });
    assert!(!d.exists("half"));
    assert!(staging().is_empty());
    assert!(d.exists("base"));
}

/// Layers unpacked before their parents exist (overlay2) commit into the same chain as
/// `create_layer` builds; dropping an uncommitted one leaves nothing. vfs declines.
fn layers_unpacked_ahead_of_parents(kind: DriverKind) {
    let h = Home::new(kind);
    let d = h.d();
    let tar = |entries: &[(&str, &str)]| Cursor::new(layer(entries));
    let top = d.unpack_layer(
        "top",
        &mut tar(&[("etc/hosts", "10.0.0.1\n"), ("bin/.wh.ash", "")]),
    );
    let Some(top) = top else {
        assert_eq!(kind, DriverKind::Vfs, "only vfs may decline");
        return;
    };
    let top = top.unwrap();
    assert_eq!(top.id(), "top");
    assert!(!d.exists("top"), "an unpacked layer is not a layer yet");
    let dropped = d
        .unpack_layer("gone", &mut tar(&[("x", "x")]))
        .unwrap()
        .unwrap();
    drop(dropped);
    base(d);
    let base_unpacked = d.unpack_layer("base", &mut tar(&[("y", "y")])).unwrap();
    assert_eq!(
        base_unpacked.err().map(|e| e.kind()),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(d.commit_unpacked(top, Some("base")).unwrap(), 9);
    let m = d.mount("top").unwrap();
    assert_eq!(read(&m.join("etc/hosts")), "10.0.0.1\n");
    assert_eq!(read(&m.join("etc/passwd")), "root:x:0:0::/root:/bin/sh\n");
    assert!(
        fs::symlink_metadata(m.join("bin/ash")).is_err(),
        "whiteout must hide bin/ash"
    );
    d.unmount("top").unwrap();
    // Only committed layers remain: nothing of "gone" is left to reconcile.
    let leftovers = d
        .reconcile(&["base".to_string(), "top".to_string()])
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

macro_rules! suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn layers_and_mount() {
                super::layers_and_mount($kind);
            }
            #[test]
            fn rw_layer_changes_and_diff() {
                super::rw_layer_changes_and_diff($kind);
            }
            #[test]
            fn refcounted_mounts() {
                super::refcounted_mounts($kind);
            }
            #[test]
            fn errors_are_classified() {
                super::errors_are_classified($kind);
            }
            #[test]
            fn hostile_layer_leaves_nothing() {
                super::hostile_layer_leaves_nothing($kind);
            }
            #[test]
            fn reconcile_removes_leftovers_and_unknown() {
                super::reconcile_removes_leftovers_and_unknown($kind);
            }
            #[test]
            fn deep_chain_mounts() {
                super::deep_chain_mounts($kind);
            }
            #[test]
            fn busybox_rootfs_runs() {
                super::busybox_rootfs_runs($kind);
            }
            #[test]
            fn deleted_and_recreated_directories() {
                super::deleted_and_recreated_directories($kind);
            }
            #[test]
            fn layer_without_parent_diffs_as_all_added() {
                super::layer_without_parent_diffs_as_all_added($kind);
            }
            #[test]
            fn interrupted_extraction_is_invisible_and_reconciled() {
                super::interrupted_extraction_is_invisible_and_reconciled($kind);
            }
            #[test]
            fn layers_unpacked_ahead_of_parents() {
                super::layers_unpacked_ahead_of_parents($kind);
            }
            #[test]
            fn preserves_ownership_and_modes() {
                super::preserves_ownership_and_modes($kind);
            }
        }
    };
}

suite!(overlay2, DriverKind::Overlay2);
suite!(vfs, DriverKind::Vfs);
