//! End-to-end: `docker import <url>` against a local HTTP server, then run the image.

mod common;

use common::Daemon;
use wharf_testutil::http::{HttpServer, Route};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn docker_import_from_url() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    let tar_path = d.dir.path().join("rootfs.tar");
    wharf_testutil::busybox_rootfs_tar(&tar_path).expect("busybox tar");
    let tar = std::fs::read(&tar_path).expect("read tar");
    let server = HttpServer::start(vec![
        ("/rootfs.tar".into(), Route::Body(tar)),
        (
            "/old/rootfs.tar".into(),
            Route::Redirect(301, "/rootfs.tar".into()),
        ),
    ])
    .expect("http server");

    let out = d.ok(&[
        "import",
        "--change",
        "CMD [\"sh\"]",
        &server.url("/rootfs.tar"),
        "url:1",
    ]);
    assert!(out.starts_with("sha256:"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "url:1", "echo", "ok"]), "ok");
    let comment = d.ok(&["history", "--format", "{{.Comment}}", "url:1"]);
    assert_eq!(
        comment,
        format!("Imported from {}", server.url("/rootfs.tar"))
    );

    // A redirect is followed; the message replaces the default comment.
    d.ok(&[
        "import",
        "-m",
        "moved",
        &server.url("/old/rootfs.tar"),
        "url:2",
    ]);
    assert_eq!(
        d.ok(&["history", "--format", "{{.Comment}}", "url:2"]),
        "moved"
    );
    // --platform sets the architecture; an OS other than Linux is refused.
    d.ok(&[
        "import",
        "--platform",
        "linux/arm64",
        &server.url("/rootfs.tar"),
        "url:arm",
    ]);
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            "url:arm"
        ]),
        "linux/arm64"
    );
    let o = d.docker(&[
        "import",
        "--platform",
        "windows/amd64",
        &server.url("/rootfs.tar"),
        "url:win",
    ]);
    assert_ne!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("operating system is not supported"));

    // 404: the CLI fails with an error that names the URL, and no image appears.
    let missing = server.url("/missing.tar");
    let o = d.docker(&["import", &missing, "url:404"]);
    assert_ne!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "failed to GET {missing} with status 404 Not Found"
        )),
        "{err}"
    );
    assert_ne!(code(&d.docker(&["image", "inspect", "url:404"])), 0);
}
