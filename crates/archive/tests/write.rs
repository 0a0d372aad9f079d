//! Tar writing (diffs, exports, cp downloads) and tree copies, checked by reading back.

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use wharf_archive::{
    apply_layer, changes_between, copy_tree, tar_path, write_changes, ApplyOptions, Change,
    ChangeKind, TarOptions,
};
use wharf_errdefs::{Classify, ErrorKind};

fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, String)> {
    let mut out = Vec::new();
    for e in tar::Archive::new(Cursor::new(tar)).entries().unwrap() {
        let e = e.unwrap();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        out.push((
            e.path().unwrap().display().to_string(),
            e.header().entry_type(),
            link,
        ));
    }
    out
}

fn names(tar: &[u8]) -> Vec<String> {
    entries(tar).into_iter().map(|e| e.0).collect()
}

/// etc/{hosts, hosts.link (hard link)}, bin/{sh, ash -> sh}, a fifo and a long path.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("etc/hosts"), "h").unwrap();
    fs::hard_link(root.join("etc/hosts"), root.join("etc/hosts.link")).unwrap();
    fs::write(root.join("bin/sh"), "sh").unwrap();
    fs::set_permissions(root.join("bin/sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("sh", root.join("bin/ash")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let long = root.join("d".repeat(120));
    fs::create_dir(&long).unwrap();
    fs::write(long.join("f".repeat(120)), "long").unwrap();
}

#[test]
fn export_is_deterministic_and_round_trips() {
    wharf_testutil::require_root!();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    sample_tree(&src);
    let mut t1 = Vec::new();
    tar_path(&src, "/", &mut t1, &TarOptions::default()).unwrap();
    let mut t2 = Vec::new();
    tar_path(&src, "/", &mut t2, &TarOptions::default()).unwrap();
    assert_eq!(t1, t2);
    let got = entries(&t1);
    assert_eq!(got[0].0, "bin/");
    assert!(got.contains(&("bin/ash".into(), tar::EntryType::Symlink, "sh".into())));
    assert!(got.contains(&(
        "etc/hosts.link".into(),
        tar::EntryType::Link,
        "etc/hosts".into()
    )));
    let mut sorted = names(&t1);
    sorted.sort();
    assert_eq!(sorted, names(&t1), "entries are sorted");

    let dst = d.path().join("dst");
    fs::create_dir(&dst).unwrap();
    apply_layer(&dst, &mut Cursor::new(t1), &ApplyOptions::default()).unwrap();
    assert!(
        changes_between(&dst, &src).unwrap().is_empty(),
        "{:?}",
        changes_between(&dst, &src).unwrap()
    );
    assert_eq!(
        fs::metadata(dst.join("etc/hosts.link")).unwrap().ino(),
        fs::metadata(dst.join("etc/hosts")).unwrap().ino()
    );
    assert_eq!(
        fs::metadata(dst.join("bin/sh")).unwrap().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn cp_download_names_entries_after_the_path_and_resolves_symlinks_inside() {
    wharf_testutil::require_root!();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    sample_tree(&root);
    symlink("/etc", root.join("etclink")).unwrap();
    let mut t = Vec::new();
    tar_path(&root, "/etc", &mut t, &TarOptions::default()).unwrap();
    assert_eq!(names(&t), vec!["etc/", "etc/hosts", "etc/hosts.link"]);

    // A symlink is archived as a link unless asked to follow; following stays in the root.
    let mut t = Vec::new();
    tar_path(&root, "/etclink", &mut t, &TarOptions::default()).unwrap();
    assert_eq!(
        entries(&t),
        vec![("etclink".into(), tar::EntryType::Symlink, "/etc".into())]
    );
    let mut t = Vec::new();
    let opts = TarOptions {
        follow_root_symlink: true,
        rebase: Some(("etc".into(), "etclink".into())),
        ..TarOptions::default()
    };
    tar_path(&root, "/etclink", &mut t, &opts).unwrap();
    assert_eq!(
        names(&t),
        vec!["etclink/", "etclink/hosts", "etclink/hosts.link"]
    );
    let link = entries(&t)
        .into_iter()
        .find(|e| e.1 == tar::EntryType::Link)
        .unwrap();
    assert_eq!(link.2, "etclink/hosts", "hard link targets are renamed too");

    let mut t = Vec::new();
    let opts = TarOptions {
        include: vec!["hosts".into()],
        ..TarOptions::default()
    };
    tar_path(&root, "/etc", &mut t, &opts).unwrap();
    assert_eq!(names(&t), vec!["hosts"]);

    // A multiply-linked file on its own is archived as content, not as a link to itself.
    let mut t = Vec::new();
    tar_path(&root, "/etc/hosts.link", &mut t, &TarOptions::default()).unwrap();
    assert_eq!(
        entries(&t),
        vec![("hosts.link".into(), tar::EntryType::Regular, String::new())]
    );
    // Symlink chains with `..` past the root clamp there instead of escaping.
    symlink("../../../../etc", root.join("bin/up")).unwrap();
    let mut t = Vec::new();
    let opts = TarOptions {
        follow_root_symlink: true,
        ..TarOptions::default()
    };
    tar_path(&root, "/bin/up", &mut t, &opts).unwrap();
    assert_eq!(names(&t), vec!["etc/", "etc/hosts", "etc/hosts.link"]);

    let err = tar_path(&root, "/nope", &mut Vec::new(), &TarOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // `..` in an API path cannot climb out.
    assert_eq!(
        tar_path(&root, "/../../etc", &mut Vec::new(), &TarOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn diff_tar_has_whiteouts_and_is_stable() {
    wharf_testutil::require_root!();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    sample_tree(&root);
    let changes = vec![
        Change {
            path: "/etc/hosts".into(),
            kind: ChangeKind::Modified,
        },
        Change {
            path: "/bin/gone".into(),
            kind: ChangeKind::Deleted,
        },
        Change {
            path: "/etc".into(),
            kind: ChangeKind::Modified,
        },
        Change {
            path: "/bin".into(),
            kind: ChangeKind::Modified,
        },
    ];
    let mut t1 = Vec::new();
    write_changes(&root, &changes, &mut t1).unwrap();
    assert_eq!(
        names(&t1),
        vec!["bin/", "bin/.wh.gone", "etc/", "etc/hosts"]
    );
    let mut rev = changes.clone();
    rev.reverse();
    let mut t2 = Vec::new();
    write_changes(&root, &rev, &mut t2).unwrap();
    assert_eq!(t1, t2, "same changes in another order give the same bytes");
    let missing = vec![Change {
        path: "/nope".into(),
        kind: ChangeKind::Added,
    }];
    assert_eq!(
        write_changes(&root, &missing, &mut Vec::new())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn copy_tree_preserves_everything() {
    wharf_testutil::require_root!();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    sample_tree(&src);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("null").as_path(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    std::os::unix::fs::lchown(src.join("etc/hosts"), Some(42), Some(43)).unwrap();
    rustix::fs::setxattr(
        src.join("etc/hosts").as_path(),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // A sparse file keeps its holes; a link out of the tree is copied, never followed.
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    drop(sparse);
    let outside = d.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    symlink(&outside, src.join("out")).unwrap();
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        src.join("etc").as_path(),
        &old,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let dst = d.path().join("dst");
    fs::create_dir(&dst).unwrap();
    copy_tree(&src, &dst).unwrap();
    assert!(changes_between(&dst, &src).unwrap().is_empty());
    assert_eq!(
        fs::metadata(dst.join("bin/sh")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(fs::metadata(dst.join("etc")).unwrap().mtime(), 1_000_000);
    let md = fs::metadata(dst.join("sparse")).unwrap();
    assert_eq!((md.len(), md.blocks()), (64 << 20, 0));
    assert_eq!(fs::read_link(dst.join("out")).unwrap(), outside);
    assert!(!dst.join("out").symlink_metadata().unwrap().is_dir());
    let md = fs::metadata(dst.join("etc/hosts")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.nlink()), (42, 43, 2));
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(dst.join("etc/hosts").as_path(), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v");
    assert!(fs::symlink_metadata(dst.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::symlink_metadata(dst.join("null")).unwrap().rdev(),
        rustix::fs::makedev(1, 3)
    );
}

#[test]
fn copy_tree_spreads_big_directories_and_keeps_hard_links_across_them() {
    wharf_testutil::require_root!();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    for dir in ["a", "b"] {
        fs::create_dir_all(src.join(dir)).unwrap();
        for i in 0..200 {
            fs::write(src.join(format!("{dir}/{i}")), format!("{dir}{i}")).unwrap();
        }
    }
    // Each file in a/ is also linked from b/: whichever name is copied first, the other links it.
    for i in 0..200 {
        fs::hard_link(src.join(format!("a/{i}")), src.join(format!("b/l{i}"))).unwrap();
    }
    let dst = d.path().join("dst");
    fs::create_dir(&dst).unwrap();
    copy_tree(&src, &dst).unwrap();
    assert!(changes_between(&dst, &src).unwrap().is_empty());
    for i in 0..200 {
        let (a, l) = (dst.join(format!("a/{i}")), dst.join(format!("b/l{i}")));
        assert_eq!(
            fs::metadata(&a).unwrap().ino(),
            fs::metadata(&l).unwrap().ino()
        );
        assert_eq!(fs::read_to_string(&l).unwrap(), format!("a{i}"));
        assert_eq!(
            fs::read_to_string(dst.join(format!("b/{i}"))).unwrap(),
            format!("b{i}")
        );
    }
}

#[test]
fn cp_download_keeps_dot_and_root_prefixes() {
    wharf_testutil::require_root!();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    sample_tree(&root);
    // `docker cp ctr:/etc/.`: the CLI renames entries by their `./` prefix.
    let mut t = Vec::new();
    let opts = TarOptions {
        rebase: Some(("etc".into(), ".".into())),
        ..TarOptions::default()
    };
    tar_path(&root, "/etc", &mut t, &opts).unwrap();
    assert_eq!(names(&t), vec!["./", "./hosts", "./hosts.link"]);
    // `docker cp ctr:/`: entries of the root carry a leading `/`.
    let mut t = Vec::new();
    let opts = TarOptions {
        rebase: Some((String::new(), "/".into())),
        ..TarOptions::default()
    };
    tar_path(&root, "/", &mut t, &opts).unwrap();
    assert!(
        names(&t).iter().all(|n| n.starts_with('/')),
        "{:?}",
        names(&t)
    );
    assert!(names(&t).contains(&"/etc/hosts".to_string()));
}
