//! Hijacked connections for attach and exec start: HTTP 101 `Upgrade: tcp` when the client
//! asks for it (the docker CLI does), else a 200 streamed body carrying the output only.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use crate::server::http::{self as h, Resp};
use crate::service::containers::attach::Duplex;

/// Docker's stream content types.
pub fn stream_type(tty: bool, v: wharf_api_types::ApiVersion) -> &'static str {
    if !tty && v.at_least(1, 42) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

fn wants_upgrade(req: &http::request::Parts) -> bool {
    req.headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// Takes over the connection. Returns the response to send now and a future yielding the
/// client stream once the response went out.
pub fn hijack(
    req: &mut http::request::Parts,
    ctype: &'static str,
) -> (
    Resp,
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Box<dyn Duplex>>> + Send>>,
) {
    if wants_upgrade(req) {
        let on = req.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let mut r = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .body(h::empty())
            .unwrap_or_else(|_| Response::new(h::empty()));
        let hs = r.headers_mut();
        hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        hs.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
        hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        let fut = async move {
            match on?.await {
                Ok(up) => Some(Box::new(TokioIo::new(up)) as Box<dyn Duplex>),
                Err(e) => {
                    tracing::debug!("upgrade failed: {e}");
                    None
                }
            }
        };
        return (r, Box::pin(fut));
    }
    // No upgrade: output only, through an in-memory pipe into the body.
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let (tx, body) = h::channel_body(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match theirs.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let r = h::with_type(Response::builder().status(StatusCode::OK), ctype, body);
    (
        r,
        Box::pin(async move { Some(Box::new(ours) as Box<dyn Duplex>) }),
    )
}
