//! `wharf_fetch::get` against a local server: bodies, redirects, HTTP errors, dead hosts.

use std::io::Read;

use wharf_errdefs::{Classify, ErrorKind};
use wharf_fetch::{get, FetchError};
use wharf_testutil::http::{HttpServer, Route};

fn server() -> HttpServer {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    HttpServer::start(vec![
        ("/data".into(), Route::Body(body)),
        ("/moved".into(), Route::Redirect(302, "/data".into())),
        (
            "/relative/hop".into(),
            Route::Redirect(301, "../moved".into()),
        ),
        ("/loop".into(), Route::Redirect(307, "/loop".into())),
    ])
    .expect("start server")
}

fn read_all(url: &str) -> Vec<u8> {
    let mut d = get(url).expect("get");
    let mut out = Vec::new();
    d.read_to_end(&mut out).expect("read body");
    out
}

#[test]
fn streams_the_body() {
    let s = server();
    let mut d = get(&s.url("/data")).expect("get");
    assert_eq!(d.content_length(), Some(300_000));
    let mut out = Vec::new();
    d.read_to_end(&mut out).expect("read");
    assert_eq!(out.len(), 300_000);
    assert!(out.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn follows_redirects() {
    let s = server();
    assert_eq!(read_all(&s.url("/moved")).len(), 300_000);
    let d = get(&s.url("/relative/hop")).expect("two hops");
    assert_eq!(d.url(), s.url("/data"));
}

#[test]
fn host_names_resolve_through_etc_hosts() {
    let s = server();
    let url = format!("http://localhost:{}/data", s.addr().port());
    assert_eq!(read_all(&url).len(), 300_000);
}

#[test]
fn redirect_loops_stop() {
    let s = server();
    let e = get(&s.url("/loop")).err().expect("loop must fail");
    assert!(matches!(e, FetchError::TooManyRedirects { .. }), "{e}");
    assert!(e.to_string().contains("/loop"), "{e}");
}

#[test]
fn not_found_names_the_url() {
    let s = server();
    let url = s.url("/missing.tar");
    let e = get(&url).err().expect("404 must fail");
    assert_eq!(
        e.to_string(),
        format!("failed to GET {url} with status 404 Not Found: 404 page not found")
    );
    assert_eq!(e.kind(), ErrorKind::Internal);
}

#[test]
fn unreachable_host_names_the_url() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/rootfs.tar");
    let e = get(&url).err().expect("connect must fail");
    assert!(matches!(e, FetchError::Request { .. }), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
}
