//! A minimal HTTP/1.1 codec over a blocking stream: enough for the Engine API (fixed-length,
//! chunked and read-to-EOF bodies, and connection upgrade for attach/exec).

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::conn::Conn;
use crate::error::ClientError;

/// Upper bound on a response head, so a broken peer cannot make us buffer forever.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The body a request carries.
pub enum RequestBody<'a> {
    /// No body.
    Empty,
    /// A JSON document (already serialised).
    Json(Vec<u8>),
    /// A streamed body (tar archives for load/import/cp), sent with chunked encoding.
    Stream {
        /// The Content-Type to announce.
        content_type: &'static str,
        /// Where the bytes come from.
        reader: &'a mut dyn Read,
    },
}

/// Writes the request line, headers and body.
pub(crate) fn write_request(
    conn: &mut Conn,
    method: &str,
    target: &str,
    host: &str,
    extra_headers: &[(&str, &str)],
    body: RequestBody<'_>,
) -> io::Result<()> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wharf-client/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in extra_headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    match body {
        RequestBody::Empty => {
            if method != "GET" && method != "HEAD" {
                head.push_str("Content-Length: 0\r\n");
            }
            head.push_str("\r\n");
            conn.write_all(head.as_bytes())?;
        }
        RequestBody::Json(bytes) => {
            head.push_str("Content-Type: application/json\r\n");
            head.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
            conn.write_all(head.as_bytes())?;
            conn.write_all(&bytes)?;
        }
        RequestBody::Stream {
            content_type,
            reader,
        } => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ));
            conn.write_all(head.as_bytes())?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                conn.write_all(format!("{n:x}\r\n").as_bytes())?;
                conn.write_all(&buf[..n])?;
                conn.write_all(b"\r\n")?;
            }
            conn.write_all(b"0\r\n\r\n")?;
        }
    }
    conn.flush()
}

/// Status and headers of a response.
#[derive(Debug, Clone)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a status line and headers.
pub(crate) fn read_head<R: BufRead>(r: &mut R) -> Result<Head, ClientError> {
    let mut total = 0usize;
    let mut line = String::new();
    let mut next_line = |line: &mut String| -> Result<(), ClientError> {
        line.clear();
        let n = r.read_line(line)?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "connection closed before response".into(),
            ));
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(ClientError::Protocol("response head too large".into()));
        }
        Ok(())
    };
    next_line(&mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(ClientError::Protocol(format!(
            "bad status line {:?}",
            line.trim_end()
        )));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| ClientError::Protocol(format!("bad status line {:?}", line.trim_end())))?;
    let mut headers = Vec::new();
    loop {
        next_line(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| ClientError::Protocol(format!("bad header line {l:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Head { status, headers })
}

/// How the body's end is marked.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked { left_in_chunk: u64, done: bool },
    Eof,
}

/// A response body, decoded from its transfer framing as it is read.
pub struct Body {
    inner: BufReader<Conn>,
    framing: Framing,
}

impl Body {
    pub(crate) fn new(inner: BufReader<Conn>, head: &Head, method: &str) -> Body {
        let no_body = method == "HEAD" || head.status == 204 || head.status == 304;
        let framing = if no_body {
            Framing::Length(0)
        } else if head
            .header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked {
                left_in_chunk: 0,
                done: false,
            }
        } else if let Some(n) = head.header("Content-Length").and_then(|v| v.parse().ok()) {
            Framing::Length(n)
        } else {
            Framing::Eof
        };
        Body { inner, framing }
    }

    /// The underlying connection (for upgraded streams) with any bytes already buffered.
    pub(crate) fn into_upgraded(self) -> (Vec<u8>, Conn) {
        let buffered = self.inner.buffer().to_vec();
        (buffered, self.inner.into_inner())
    }

    fn read_chunk_size(&mut self) -> io::Result<u64> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        let hex = line.trim().split(';').next().unwrap_or_default();
        u64::from_str_radix(hex, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {:?}", line.trim()),
            )
        })
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.framing {
            Framing::Eof => self.inner.read(buf),
            Framing::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked {
                left_in_chunk,
                done,
            } => {
                if *done {
                    return Ok(0);
                }
                if *left_in_chunk == 0 {
                    let size = self.read_chunk_size()?;
                    if size == 0 {
                        // Trailers end with an empty line; drain them so the framing is exact.
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if self.inner.read_line(&mut line)? == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        self.framing = Framing::Chunked {
                            left_in_chunk: 0,
                            done: true,
                        };
                        return Ok(0);
                    }
                    self.framing = Framing::Chunked {
                        left_in_chunk: size,
                        done: false,
                    };
                }
                let Framing::Chunked { left_in_chunk, .. } = &mut self.framing else {
                    return Ok(0);
                };
                let want = buf
                    .len()
                    .min(usize::try_from(*left_in_chunk).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left_in_chunk -= n as u64;
                if *left_in_chunk == 0 {
                    let mut crlf = [0u8; 2];
                    self.inner.read_exact(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters pass through).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string under construction.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// An empty query.
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds `key=value`.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Query {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// Adds `key=1` when `on` (Docker's boolean convention), nothing otherwise.
    pub fn flag(self, key: &str, on: bool) -> Query {
        if on {
            self.set(key, "1")
        } else {
            self
        }
    }

    /// Adds `key=value` when `value` is `Some`.
    pub fn opt(self, key: &str, value: Option<impl Into<String>>) -> Query {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// `?k=v&...`, or the empty string.
    pub fn encode(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn parses_head() {
        let mut r = Cursor::new(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nApi-Version: 1.45\r\n\r\nbody"
                .to_vec(),
        );
        let head = read_head(&mut r).unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.header("api-version"), Some("1.45"));
        assert_eq!(head.header("content-length"), Some("5"));
    }

    #[test]
    fn rejects_garbage_status() {
        let mut r = Cursor::new(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
        assert!(matches!(read_head(&mut r), Err(ClientError::Protocol(_))));
        let mut r = Cursor::new(Vec::new());
        assert!(read_head(&mut r).is_err());
    }

    #[test]
    fn query_encoding() {
        let q = Query::new()
            .set("filters", r#"{"name":["a b"]}"#)
            .flag("all", true)
            .flag("size", false)
            .opt("limit", None::<String>);
        assert_eq!(
            q.encode(),
            "?filters=%7B%22name%22%3A%5B%22a%20b%22%5D%7D&all=1"
        );
        assert_eq!(Query::new().encode(), "");
    }
}
