//! End-to-end layer application, including hostile archives built in memory.

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use wharf_archive::{apply_layer, extract_confined, ApplyOptions, ArchiveError, WhiteoutFormat};
use wharf_errdefs::{Classify, ErrorKind};

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    fn dir(mut self, name: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }
    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.0.append_data(&mut h, name, data).unwrap();
        self
    }
    fn file_owned(mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.0.append_data(&mut h, name, data).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0);
        self.0.append_link(&mut h, name, target).unwrap();
        self
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }
    /// An entry whose name the builder would refuse (e.g. containing `..`), written raw.
    fn raw(mut self, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) -> Self {
        let mut h = Self::header(kind, 0o644, data.len() as u64);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn device(mut self, name: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }
    /// A GNU sparse file of `apparent` bytes holding 512 bytes of `A` at its start and of `Z`
    /// at its end; everything between is a hole, so the archive stays a few KiB.
    fn sparse(mut self, name: &str, apparent: u64) -> Self {
        let mut h = Self::header(tar::EntryType::GNUSparse, 0o644, 1024);
        h.set_path(name).unwrap();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(apparent);
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(512);
        gnu.sparse[1].set_offset(apparent - 512);
        gnu.sparse[1].set_length(512);
        h.set_cksum();
        let data: Vec<u8> = [[b'A'; 512], [b'Z'; 512]].concat();
        self.0.append(&h, &data[..]).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A root to extract into plus a sibling directory that must stay untouched.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"host data").unwrap();
        Sandbox {
            _dir: dir,
            root,
            outside,
        }
    }
    fn apply(&self, tar: Vec<u8>, opts: &ApplyOptions) -> Result<u64, ArchiveError> {
        apply_layer(&self.root, &mut Cursor::new(tar), opts)
    }
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("secret")],
            "something was written outside the root"
        );
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"host data");
        let parent: Vec<_> = fs::read_dir(self.root.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            parent.len(),
            2,
            "unexpected entries next to the root: {parent:?}"
        );
    }
}

fn xattr(path: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).unwrap();
    buf.truncate(n);
    buf
}

fn assert_hostile(err: ArchiveError, needle: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.to_string().contains(needle),
        "error {err:?} should name {needle:?}"
    );
}

#[test]
fn applies_files_links_modes_owners_and_times() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let tar = Tar::new()
        .dir("etc/")
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .file_owned("bin/su", b"#!", 0o4755, 1000, 1000)
        .symlink("etc/abs", "/etc/hosts")
        .hardlink("etc/hosts2", "etc/hosts")
        .raw(tar::EntryType::Fifo, "run/fifo", "", b"")
        .bytes();
    let written = sb.apply(tar, &ApplyOptions::default()).unwrap();
    assert_eq!(written, 22);
    let r = &sb.root;
    assert_eq!(
        fs::read(r.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    let su = fs::metadata(r.join("bin/su")).unwrap();
    assert_eq!((su.uid(), su.gid()), (1000, 1000));
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o4755,
        "setuid must survive the chown"
    );
    assert_eq!(
        fs::read_link(r.join("etc/abs")).unwrap(),
        Path::new("/etc/hosts")
    );
    assert_eq!(
        fs::metadata(r.join("etc/hosts2")).unwrap().ino(),
        fs::metadata(r.join("etc/hosts")).unwrap().ino()
    );
    assert!(fs::symlink_metadata(r.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::metadata(r.join("etc")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set after its children"
    );
    assert_eq!(
        fs::metadata(r.join("bin")).unwrap().permissions().mode() & 0o777,
        0o755
    );
    sb.assert_outside_untouched();
}

#[test]
fn applies_pax_xattrs_and_compressed_layers() {
    wharf_testutil::require_root!();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.wharf", &b"yes"[..])])
        .unwrap();
    let mut h = Tar::header(tar::EntryType::Regular, 0o644, 2);
    b.append_data(&mut h, "x", &b"hi"[..]).unwrap();
    let plain = b.into_inner().unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &plain).unwrap();
        e.finish().unwrap()
    };
    let zs = zstd::encode_all(&plain[..], 3).unwrap();
    for input in [plain.clone(), gz, zs] {
        let sb = Sandbox::new();
        sb.apply(input, &ApplyOptions::default()).unwrap();
        assert_eq!(fs::read(sb.root.join("x")).unwrap(), b"hi");
        assert_eq!(xattr(&sb.root.join("x"), "user.wharf"), b"yes");
    }
}

#[test]
fn overlay_whiteouts_become_devices_and_opaque_xattrs() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let tar = Tar::new()
        .dir("d/")
        .file("d/.wh..wh..opq", b"")
        .file(".wh.gone", b"")
        .bytes();
    let opts = ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay,
        ..ApplyOptions::default()
    };
    sb.apply(tar, &opts).unwrap();
    let wh = fs::symlink_metadata(sb.root.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!sb.root.join("d/.wh..wh..opq").exists());
    assert_eq!(xattr(&sb.root.join("d"), "trusted.overlay.opaque"), b"y");
}

#[test]
fn remove_whiteouts_delete_and_opaque_clears_lower_entries() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    fs::create_dir_all(sb.root.join("d/sub")).unwrap();
    fs::write(sb.root.join("d/old"), b"").unwrap();
    fs::write(sb.root.join("gone"), b"").unwrap();
    let tar = Tar::new()
        .dir("d/")
        .file("d/new", b"n")
        .file("d/.wh..wh..opq", b"")
        .file(".wh.gone", b"")
        .bytes();
    sb.apply(tar, &ApplyOptions::default()).unwrap();
    assert!(!sb.root.join("gone").exists());
    let names: Vec<_> = fs::read_dir(sb.root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("new")]);
}

#[test]
fn later_entries_replace_earlier_ones_without_following_symlinks() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let secret = sb.outside.join("secret");
    let tar = Tar::new()
        .symlink("f", secret.to_str().unwrap())
        .file("f", b"mine")
        .bytes();
    sb.apply(tar, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(sb.root.join("f")).unwrap(), b"mine");
    sb.assert_outside_untouched();
}

#[test]
fn hostile_dotdot_name_is_refused() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let tar = Tar::new()
        .raw(tar::EntryType::Regular, "../outside/pwned", "", b"x")
        .bytes();
    let err = sb.apply(tar, &ApplyOptions::default()).unwrap_err();
    assert_hostile(err, "../outside/pwned");
    sb.assert_outside_untouched();
}

#[test]
fn hostile_absolute_symlink_is_resolved_inside_the_root() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().unwrap().to_string();
    let tar = Tar::new()
        .symlink("evil", &outside)
        .file("evil/pwned", b"x")
        .bytes();
    // The link resolves to root/<outside path>, which does not exist, and creating the parent
    // directory over the dangling link is refused.
    let err = sb.apply(tar, &ApplyOptions::default()).unwrap_err();
    assert_hostile(err, "evil");
    // Once the target exists inside the root, writes through the link land there.
    let inside = sb.root.join(outside.trim_start_matches('/'));
    fs::create_dir_all(&inside).unwrap();
    let tar = Tar::new().file("evil/pwned", b"x").bytes();
    sb.apply(tar, &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(inside.join("pwned")).unwrap(), b"x");
    sb.assert_outside_untouched();
}

#[test]
fn hostile_relative_symlink_chain_stays_inside() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let tar = Tar::new()
        .symlink("a", "b")
        .symlink("b", "../../../../../..")
        .dir("outside/")
        .file("a/outside/pwned", b"x")
        .bytes();
    sb.apply(tar, &ApplyOptions::default()).unwrap();
    assert_eq!(
        fs::read(sb.root.join("outside/pwned")).unwrap(),
        b"x",
        "`..` clamps at the root"
    );
    sb.assert_outside_untouched();
}

#[test]
fn hostile_hardlink_escapes_are_refused() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let tar = Tar::new()
        .raw(tar::EntryType::Link, "hl", "../outside/secret", b"")
        .bytes();
    assert_hostile(
        sb.apply(tar, &ApplyOptions::default()).unwrap_err(),
        "../outside/secret",
    );

    let outside = sb.outside.to_str().unwrap().to_string();
    let tar = Tar::new()
        .symlink("sym", &outside)
        .hardlink("hl2", "sym/secret")
        .bytes();
    assert_hostile(
        sb.apply(tar, &ApplyOptions::default()).unwrap_err(),
        "sym/secret",
    );
    assert!(!sb.root.join("hl2").exists());
    assert_eq!(
        fs::metadata(sb.outside.join("secret")).unwrap().nlink(),
        1,
        "host file gained a link"
    );
    sb.assert_outside_untouched();
}

#[test]
fn devices_need_permission() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let tar = Tar::new().device("dev/null").bytes();
    let err = sb.apply(tar.clone(), &ApplyOptions::default()).unwrap_err();
    assert_hostile(err, "dev/null");
    assert!(
        !sb.root.join("dev").exists(),
        "nothing is created for a refused device"
    );
    sb.apply(
        tar,
        &ApplyOptions {
            allow_devices: true,
            ..ApplyOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        fs::symlink_metadata(sb.root.join("dev/null"))
            .unwrap()
            .rdev(),
        rustix::fs::makedev(1, 3)
    );
}

#[test]
fn tar_bomb_and_absurd_sizes_are_refused() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let mut t = Tar::new();
    for i in 0..50 {
        t = t.file(&format!("f{i}"), b"");
    }
    let opts = ApplyOptions {
        max_entries: 10,
        ..ApplyOptions::default()
    };
    let err = sb.apply(t.bytes(), &opts).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooManyEntries { limit: 10 }),
        "{err}"
    );
    assert_eq!(fs::read_dir(&sb.root).unwrap().count(), 10);

    // A header claiming 2 TiB with no data behind it.
    let mut h = Tar::header(tar::EntryType::Regular, 0o644, 0);
    h.set_path("huge").unwrap();
    h.set_size(2 << 40);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&[0u8; 1024]);
    assert_hostile(sb.apply(raw, &ApplyOptions::default()).unwrap_err(), "huge");
    assert!(!sb.root.join("huge").exists());
}

#[test]
fn extract_confined_resolves_destination_inside_root() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().unwrap().to_string();
    std::os::unix::fs::symlink(&outside, sb.root.join("dest")).unwrap();
    let tar = Tar::new().file("copied", b"c").bytes();
    let err = extract_confined(
        &sb.root,
        "/dest",
        &mut Cursor::new(tar.clone()),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    fs::create_dir_all(sb.root.join(outside.trim_start_matches('/'))).unwrap();
    extract_confined(
        &sb.root,
        "/dest",
        &mut Cursor::new(tar),
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(
        fs::read(sb.root.join(outside.trim_start_matches('/')).join("copied")).unwrap(),
        b"c"
    );
    sb.assert_outside_untouched();
}

#[test]
fn extract_confined_keeps_whiteout_names_and_refuses_type_changes() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    fs::create_dir(sb.root.join("d")).unwrap();
    fs::write(sb.root.join("keep"), b"k").unwrap();
    let tar = Tar::new().file(".wh.keep", b"").bytes();
    extract_confined(
        &sb.root,
        "/",
        &mut Cursor::new(tar),
        &ApplyOptions::default(),
    )
    .unwrap();
    assert!(sb.root.join("keep").exists() && sb.root.join(".wh.keep").exists());
    let tar = Tar::new().file("d", b"not a dir").bytes();
    let err = extract_confined(
        &sb.root,
        "/",
        &mut Cursor::new(tar),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert_hostile(err, "d");
    assert!(sb.root.join("d").is_dir());
}

#[test]
fn file_capabilities_survive_ownership_changes() {
    wharf_testutil::require_root!();
    // VFS_CAP_REVISION_2 with the effective bit, permitting CAP_NET_RAW (13).
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])
        .unwrap();
    let mut h = Tar::header(tar::EntryType::Regular, 0o755, 1);
    h.set_uid(1000);
    b.append_data(&mut h, "ping", &b"p"[..]).unwrap();
    let sb = Sandbox::new();
    sb.apply(b.into_inner().unwrap(), &ApplyOptions::default())
        .unwrap();
    assert_eq!(fs::metadata(sb.root.join("ping")).unwrap().uid(), 1000);
    assert_eq!(xattr(&sb.root.join("ping"), "security.capability"), cap);

    let mut out = Vec::new();
    wharf_archive::tar_path(
        &sb.root,
        "/ping",
        &mut out,
        &wharf_archive::TarOptions::default(),
    )
    .unwrap();
    let mut ar = tar::Archive::new(Cursor::new(out));
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    let exts: Vec<_> = e
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|x| x.unwrap().key().unwrap().to_string())
        .collect();
    assert_eq!(exts, vec!["SCHILY.xattr.security.capability"]);
}

#[test]
fn extract_confined_can_replace_types_and_force_ownership() {
    wharf_testutil::require_root!();
    let sb = Sandbox::new();
    fs::create_dir(sb.root.join("d")).unwrap();
    let tar = Tar::new().file("d", b"now a file").bytes();
    let opts = ApplyOptions {
        allow_type_changes: true,
        chown: Some((1234, 5678)),
        ..ApplyOptions::default()
    };
    extract_confined(&sb.root, "/", &mut Cursor::new(tar), &opts).unwrap();
    let m = fs::symlink_metadata(sb.root.join("d")).unwrap();
    assert!(m.is_file());
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    sb.assert_outside_untouched();
}

#[test]
fn sparse_files_are_written_with_holes() {
    let sb = Sandbox::new();
    let apparent: u64 = 64 << 20;
    let tar = Tar::new().sparse("holey", apparent).bytes();
    assert!(tar.len() < 16 << 10, "the archive is small: {}", tar.len());
    sb.apply(tar, &ApplyOptions::default()).unwrap();
    let path = sb.root.join("holey");
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), apparent);
    // Disk written: the two data blocks (one fs block each), not the apparent size.
    let on_disk = meta.blocks() * 512;
    assert!(
        on_disk <= 64 << 10,
        "{on_disk} bytes allocated for a sparse file"
    );
    let data = fs::read(&path).unwrap();
    assert!(data[..512].iter().all(|b| *b == b'A'));
    assert!(data[data.len() - 512..].iter().all(|b| *b == b'Z'));
    assert!(data[512..data.len() - 512] == vec![0u8; data.len() - 1024][..]);
    sb.assert_outside_untouched();
}

#[test]
fn huge_apparent_sizes_are_refused_at_a_configurable_bound() {
    let sb = Sandbox::new();
    // 100 GB of holes in a few KiB of tar: above the default bound, refused before writing.
    let tar = Tar::new().sparse("bomb", 100_000_000_000).bytes();
    let err = sb.apply(tar, &ApplyOptions::default()).unwrap_err();
    assert_hostile(err, "bomb");
    assert!(!sb.root.join("bomb").exists());
    let small = ApplyOptions {
        max_file_size: 1 << 20,
        ..ApplyOptions::default()
    };
    let tar = Tar::new().sparse("big", 4 << 20).bytes();
    let err = sb.apply(tar, &small).unwrap_err();
    assert_hostile(err, "limit");
    let tar = Tar::new().sparse("fits", 1 << 20).bytes();
    sb.apply(tar, &small).unwrap();
    assert_eq!(fs::metadata(sb.root.join("fits")).unwrap().len(), 1 << 20);
}
