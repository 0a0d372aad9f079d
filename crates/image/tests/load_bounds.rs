//! `docker load` of archives whose JSON members expand far beyond anything real: each is
//! refused at [`MAX_JSON_MEMBER`] before it is read into memory, and leaves nothing behind.

use std::io::{Cursor, Write};

use sha2::{Digest as _, Sha256};
use wharf_errdefs::{Classify, ErrorKind};
use wharf_image::{ImageError, ImageService, MAX_JSON_MEMBER};
use wharf_storage::{Driver, DriverKind};

fn service(dir: &std::path::Path) -> ImageService {
    wharf_testutil::require_root!();
    let driver = Driver::new(DriverKind::Vfs, &dir.join("vfs"), &[]).expect("driver");
    ImageService::open(&dir.join("image"), driver).expect("open")
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).expect("path");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        b.append(&header(path, data.len() as u64), *data)
            .expect("append");
    }
    b.into_inner().expect("tar")
}

/// Loads `archive`; expects a refusal naming `what` and the limit, and an empty store after.
fn assert_refused(archive: Vec<u8>, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path());
    let err: ImageError = svc.load(&mut Cursor::new(archive)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(what) && msg.contains(&format!("{MAX_JSON_MEMBER}-byte limit")),
        "{msg}"
    );
    assert!(svc.list().is_empty());
    let blobs = dir.path().join("image/content/blobs/sha256");
    let left = std::fs::read_dir(&blobs).map_or(0, |d| d.count());
    assert_eq!(left, 0, "blobs left behind");
}

#[test]
fn a_gzip_whose_manifest_expands_to_1_gb_is_refused_unread() {
    // The header claims 1 GiB; only 1 MiB of it follows, gzip makes the whole ~1 KiB. The
    // load must stop at the header: reading on would fail differently (truncated archive).
    let mut raw = header("manifest.json", 1 << 30).as_bytes().to_vec();
    raw.extend(vec![b' '; 1 << 20]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).expect("gzip");
    let archive = gz.finish().expect("gzip");
    assert!(archive.len() < 16 << 10, "{}", archive.len());
    assert_refused(archive, "manifest.json");
    let mut raw = header("index.json", 1 << 30).as_bytes().to_vec();
    raw.extend(vec![b' '; 4096]);
    assert_refused(raw, "index.json");
}

/// An OCI layout whose config (or manifest) is `pad` bytes of whitespace around valid JSON.
fn oci_layout(config_pad: usize, manifest_pad: usize) -> Vec<u8> {
    let padded = |json: serde_json::Value, pad: usize| {
        let mut b = vec![b' '; pad];
        b.extend(json.to_string().into_bytes());
        b
    };
    let config = padded(
        serde_json::json!({"architecture": wharf_image::host_arch(), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}}),
        config_pad,
    );
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": format!("sha256:{}", sha(b)), "size": b.len()});
    let manifest = padded(
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", &config), "layers": []}),
        manifest_pad,
    );
    let index = serde_json::json!({"schemaVersion": 2,
        "manifests": [desc("application/vnd.oci.image.manifest.v1+json", &manifest)]})
    .to_string()
    .into_bytes();
    let (c, m) = (
        format!("blobs/sha256/{}", sha(&config)),
        format!("blobs/sha256/{}", sha(&manifest)),
    );
    tar_of(&[(&c, &config), (&m, &manifest), ("index.json", &index)])
}

#[test]
fn oversized_config_and_manifest_blobs_are_refused() {
    let over = usize::try_from(MAX_JSON_MEMBER).expect("fits") + 1;
    assert_refused(oci_layout(over, 0), "image config");
    assert_refused(oci_layout(0, over), "manifest");
    // Just under the bound still loads.
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path());
    let lines = svc
        .load(&mut Cursor::new(oci_layout(4096, 4096)))
        .expect("a padded but small layout loads");
    assert_eq!(lines.len(), 1, "{lines:?}");
}
