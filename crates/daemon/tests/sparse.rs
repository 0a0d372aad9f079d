//! A few KiB of tar holding a GNU sparse file of 100 GB apparent size: `docker import` and
//! `docker cp` refuse it at the archive's file-size bound instead of writing zeros until the
//! disk is full, and a smaller sparse file arrives sparse.

mod common;

use std::path::Path;
use std::process::Command;

use common::Daemon;

/// `tar --sparse` of a file of `size` apparent bytes (all hole but a marker at the start).
fn sparse_tar(dir: &Path, name: &str, size: &str) -> std::path::PathBuf {
    let src = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join(name), b"head").expect("write");
    let st = Command::new("truncate")
        .args(["-s", size])
        .arg(src.join(name))
        .status()
        .expect("truncate");
    assert!(st.success());
    let out = dir.join(format!("{name}.tar"));
    let st = Command::new("tar")
        .args(["--sparse", "--format=gnu", "-cf"])
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg(name)
        .status()
        .expect("tar");
    assert!(st.success());
    let len = std::fs::metadata(&out).expect("tar").len();
    assert!(len < 64 << 10, "the archive is small: {len}");
    out
}

fn disk_kib(p: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-sk"])
        .arg(p)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn sparse_bombs_are_refused_and_sparse_files_stay_sparse() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let work = tempfile::tempdir().expect("tempdir");
    let bomb = sparse_tar(work.path(), "bomb", "100G");
    let before = disk_kib(&d.data_root);

    let bomb_s = bomb.display().to_string();
    let import = d.docker(&["import", &bomb_s, "bomb:1"]);
    assert!(!import.status.success(), "a 100 GB file was imported");
    let err = String::from_utf8_lossy(&import.stderr).to_string();
    assert!(err.contains("limit"), "{err}");

    d.ok(&[
        "create",
        "--name",
        "c1",
        "busybox",
        "stat",
        "-c",
        "%s",
        "/tmp/holey",
    ]);
    // `docker cp - CTR:DIR` reads a tar from stdin.
    let cp = d.docker_stdin(
        &["cp", "-", "c1:/tmp"],
        Some(&std::fs::read(&bomb).expect("read")),
    );
    assert!(!cp.status.success(), "a 100 GB file was copied in");
    let err = String::from_utf8_lossy(&cp.stderr).to_string();
    assert!(err.contains("limit"), "{err}");
    let grew = disk_kib(&d.data_root).saturating_sub(before);
    assert!(grew < 64 << 10, "the data root grew by {grew} KiB");

    // Below the bound: copied in sparse, full length, little disk.
    let fine = sparse_tar(work.path(), "holey", "512M");
    let o = d.docker_stdin(
        &["cp", "-", "c1:/tmp"],
        Some(&std::fs::read(&fine).expect("read")),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let grew = disk_kib(&d.data_root).saturating_sub(before);
    assert!(grew < 64 << 10, "a sparse 512M file took {grew} KiB");
    assert_eq!(d.ok(&["start", "-a", "c1"]), (512u64 << 20).to_string());
}
