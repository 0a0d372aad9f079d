//! Request/response plumbing shared by all routers: bodies, query strings, JSON.

use std::collections::HashMap;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::{status_for, ApiError};

/// Every response body: whole or streamed.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// A response.
pub type Resp = Response<Body>;
/// What handlers return.
pub type ApiResult = Result<Resp, ApiError>;

/// Largest JSON request body accepted; real ones are a few KiB.
pub const MAX_JSON_BODY: usize = 4 << 20;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, v: &T) -> ApiResult {
    let body =
        serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("encoding response: {e}")))?;
    Ok(with_type(
        Response::builder().status(status),
        "application/json",
        full(body),
    ))
}

/// 200 with JSON.
pub fn ok_json<T: Serialize>(v: &T) -> ApiResult {
    json(StatusCode::OK, v)
}

/// An empty response with `status` (204, 304, ...).
pub fn no_content(status: StatusCode) -> ApiResult {
    Ok(Response::builder()
        .status(status)
        .body(empty())
        .unwrap_or_else(|_| Response::new(empty())))
}

/// A plain-text response.
pub fn text(status: StatusCode, s: impl Into<Bytes>) -> Resp {
    with_type(
        Response::builder().status(status),
        "text/plain; charset=utf-8",
        full(s.into()),
    )
}

/// Sets the content type and body.
pub fn with_type(b: http::response::Builder, ctype: &'static str, body: Body) -> Resp {
    let mut r = b.body(body).unwrap_or_else(|_| Response::new(empty()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Docker's error response.
pub fn error_response(e: &ApiError) -> Resp {
    let body = serde_json::to_vec(&wharf_api_types::ErrorResponse {
        message: e.message.clone(),
    })
    .unwrap_or_default();
    with_type(
        Response::builder().status(status_for(e.kind)),
        "application/json",
        full(body),
    )
}

/// A streamed body fed through the returned sender; dropping the sender ends the body.
pub fn channel_body(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(capacity);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            wharf_errdefs::ErrorKind::TooLarge,
            format!("request body too large (limit {limit} bytes)"),
        )),
        Err(e) => Err(ApiError::invalid(format!("reading request body: {e}"))),
    }
}

/// Parses a JSON body; an empty body is `T::default()` when `allow_empty`.
pub fn parse_json<T: DeserializeOwned + Default>(
    b: &[u8],
    allow_empty: bool,
) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return if allow_empty {
            Ok(T::default())
        } else {
            Err(ApiError::invalid("request body is empty; expected JSON"))
        };
    }
    let invalid = |e: serde_json::Error| ApiError::invalid(format!("invalid JSON: {e}"));
    let mut v: serde_json::Value = serde_json::from_slice(b).map_err(invalid)?;
    drop_nulls(&mut v);
    serde_json::from_value(v).map_err(invalid)
}

/// Maps whose keys count even with a null value (Go's decoder keeps the key with a zero value):
/// a network to join, a port to publish, a port or volume to declare. `true`: the value is an
/// empty struct, so null becomes `{}`.
const NULL_KEEPING_MAPS: &[(&str, bool)] = &[
    ("EndpointsConfig", false),
    ("PortBindings", false),
    ("ExposedPorts", true),
    ("Volumes", true),
];

/// Removes null members of every object: to Go's decoder, which dockerd uses, null leaves a
/// field unset, and clients (docker-py, compose) send nulls for options they leave out.
fn drop_nulls(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for (k, x) in m.iter_mut() {
                let keep = NULL_KEEPING_MAPS.iter().find(|(name, _)| name == k);
                match (keep, x) {
                    (Some((_, empty_struct)), Value::Object(entries)) => {
                        for e in entries.values_mut() {
                            if e.is_null() && *empty_struct {
                                *e = Value::Object(serde_json::Map::new());
                            } else {
                                drop_nulls(e);
                            }
                        }
                    }
                    (_, x) => drop_nulls(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// A decoded query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    /// Parses `a=1&b=x%20y&c` (`+` is a space, as in forms).
    pub fn parse(q: Option<&str>) -> Query {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            m.entry(percent_decode(k))
                .or_default()
                .push(percent_decode(v));
        }
        Query(m)
    }

    /// The first value of `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every value of `k`.
    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Docker's boolean rule: absent, "", "0", "no", "false", "none" are false; anything else true.
    pub fn bool(&self, k: &str) -> bool {
        self.bool_or(k, false)
    }

    /// Like [`Query::bool`] with a default for an absent key.
    pub fn bool_or(&self, k: &str, default: bool) -> bool {
        match self.get(k) {
            None => default,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// An integer parameter; absent or empty is `None`, garbage is a 400.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v:?}"))),
        }
    }

    /// The `filters` parameter.
    pub fn filters(&self) -> Result<wharf_api_types::Filters, ApiError> {
        wharf_api_types::Filters::parse(self.get("filters").unwrap_or(""))
            .map_err(|e| ApiError::from_err(&e))
    }
}

fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// Decodes `%XX` in one path segment (clients escape `@` and `:` in image names, as
/// docker-py does for `name@sha256:…`); `+` stays itself in paths.
pub fn decode_path_segment(s: &str) -> String {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_and_docker_bools() {
        let q = Query::parse(Some(
            "all=1&filters=%7B%22a%22%3A%5B%22b%22%5D%7D&x=True&n=a+b&f=false&e=&bad=%zz&t=%4",
        ));
        assert!(q.bool("all") && q.bool("x"));
        assert!(!q.bool("f") && !q.bool("e") && !q.bool("missing"));
        assert!(q.bool_or("missing", true));
        assert_eq!(q.get("filters"), Some(r#"{"a":["b"]}"#));
        assert_eq!(q.get("n"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("t"), Some("%4"));
        assert_eq!(q.filters().expect("filters").get("a"), ["b"]);
    }

    #[test]
    fn int_params() {
        let q = Query::parse(Some("t=10&bad=x&e="));
        assert_eq!(q.int("t").expect("int"), Some(10));
        assert_eq!(q.int("e").expect("int"), None);
        assert!(q.int("bad").is_err());
    }

    #[test]
    fn json_bodies() {
        #[derive(serde::Deserialize, Default, Debug)]
        #[serde(default)]
        struct T {
            a: i32,
            inner: Vec<T>,
        }
        assert_eq!(parse_json::<T>(b"", true).expect("empty").a, 0);
        assert!(parse_json::<T>(b" ", false).is_err());
        assert!(parse_json::<T>(b"{\"a\":\"x\"}", true).is_err());
        assert_eq!(
            parse_json::<T>(b"{\"a\":1,\"zz\":2}", true)
                .expect("extra")
                .a,
            1
        );
        // null is "unset", also inside nested objects.
        let t: T = parse_json(br#"{"a":null,"inner":[{"a":null}]}"#, false).expect("nulls");
        assert_eq!((t.a, t.inner.len(), t.inner[0].a), (0, 1, 0));
        // ...but a map's key stays (a network to join, a port to expose).
        let v: serde_json::Value = parse_json(
            br#"{"EndpointsConfig":{"net":null,"n2":{"Aliases":null}},"ExposedPorts":{"80/tcp":null},"X":null}"#,
            false,
        )
        .expect("maps");
        assert_eq!(
            v,
            serde_json::json!({"EndpointsConfig":{"net":null,"n2":{}},"ExposedPorts":{"80/tcp":{}}})
        );
    }
}
