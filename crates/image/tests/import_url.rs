//! `ImageService::import_url` against a local HTTP server: plain and gzip bodies, a redirect,
//! and a 404 that leaves the store untouched (root: layer files keep their owners).

use std::io::Write;

use wharf_errdefs::{Classify, ErrorKind};
use wharf_image::{ImageError, ImageService};
use wharf_storage::{Driver, DriverKind};
use wharf_testutil::http::{HttpServer, Route};

struct Fixture {
    svc: ImageService,
    server: HttpServer,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.svc.driver().cleanup();
    }
}

fn fixture() -> Fixture {
    wharf_testutil::require_root!();
    let dir = tempfile::Builder::new()
        .prefix("wharf-import-url-")
        .tempdir()
        .unwrap();
    let tar_path = dir.path().join("rootfs.tar");
    wharf_testutil::busybox_rootfs_tar(&tar_path).unwrap();
    let tar = std::fs::read(&tar_path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let server = HttpServer::start(vec![
        ("/rootfs.tar".into(), Route::Body(tar)),
        ("/rootfs.tar.gz".into(), Route::Body(gz.finish().unwrap())),
        (
            "/latest".into(),
            Route::Redirect(302, "/rootfs.tar.gz".into()),
        ),
    ])
    .unwrap();
    let driver = Driver::new(DriverKind::Vfs, &dir.path().join("vfs"), &[]).unwrap();
    let svc = ImageService::open(&dir.path().join("image"), driver).unwrap();
    Fixture {
        svc,
        server,
        _dir: dir,
    }
}

#[test]
fn imports_plain_and_gzip_through_a_redirect() {
    let f = fixture();
    let url = f.server.url("/rootfs.tar");
    let plain = f
        .svc
        .import_url(&url, Some("url:1"), &["CMD [\"sh\"]".into()], None, None)
        .unwrap();
    assert_eq!(plain.repo_tags, vec!["url:1".to_string()]);
    assert_eq!(plain.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
    let hist = f.svc.history("url:1").unwrap();
    assert_eq!(hist[0].comment, format!("Imported from {url}"));

    let gz = f
        .svc
        .import_url(
            &f.server.url("/latest"),
            Some("url:gz"),
            &[],
            Some("msg"),
            Some("linux/arm64"),
        )
        .unwrap();
    // Same uncompressed tar, so the same layer.
    assert_eq!(gz.root_fs.layers, plain.root_fs.layers);
    assert_eq!(f.svc.history("url:gz").unwrap()[0].comment, "msg");
    assert_eq!(
        (gz.os.as_str(), gz.architecture.as_str()),
        ("linux", "arm64")
    );
}

#[test]
fn not_found_names_the_url_and_stores_nothing() {
    let f = fixture();
    let url = f.server.url("/nope.tar");
    let e = f
        .svc
        .import_url(&url, Some("url:404"), &[], None, None)
        .unwrap_err();
    assert!(matches!(e, ImageError::Fetch(_)), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(f.svc.list().is_empty());
}

#[test]
fn bad_input_fails_before_fetching() {
    let f = fixture();
    let e = f
        .svc
        .import_url("ftp://127.0.0.1/x.tar", None, &[], None, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = f
        .svc
        .import_url(&f.server.url("/nope"), None, &[], None, Some("windows"))
        .unwrap_err();
    assert_eq!(e.to_string(), "operating system is not supported");
    let e = f
        .svc
        .import_url(&f.server.url("/nope"), Some("Bad:Tag"), &[], None, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}
