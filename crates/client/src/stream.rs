//! Streaming bodies: Docker's multiplexed stdout/stderr frames, JSON document streams, and
//! hijacked (upgraded) attach/exec connections.

use std::io::{self, Cursor, Read, Write};

use crate::conn::Conn;
use crate::error::ClientError;
use crate::http::Body;

/// Copies Docker's multiplexed stream (8-byte header: stream id, 3 zero bytes, big-endian
/// length, then the payload) to `out` and `err`, flushing after each frame so interactive output
/// appears at once. Ends cleanly at EOF on a frame boundary.
pub fn copy_multiplexed<R: Read + ?Sized>(
    r: &mut R,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if !read_full_or_eof(r, &mut header)? {
            return Ok(());
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let target: &mut dyn Write = match header[0] {
            0 | 1 => &mut *out,
            2 => &mut *err,
            3 => {
                // System error stream: the daemon's own failure text.
                let mut msg = vec![0u8; len];
                r.read_exact(&mut msg)?;
                return Err(io::Error::other(String::from_utf8_lossy(&msg).into_owned()));
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown stream id {other} in multiplexed output"),
                ))
            }
        };
        let mut left = len;
        while left > 0 {
            let want = left.min(buf.len());
            r.read_exact(&mut buf[..want])?;
            target.write_all(&buf[..want])?;
            left -= want;
        }
        target.flush()?;
    }
}

/// Fills `buf` completely; `Ok(false)` when EOF came before the first byte.
fn read_full_or_eof<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Iterates over a body made of concatenated JSON documents.
pub struct JsonStream<R: Read> {
    inner: serde_json::StreamDeserializer<'static, serde_json::de::IoRead<R>, serde_json::Value>,
}

impl<R: Read> JsonStream<R> {
    /// Wraps a reader.
    pub fn new(r: R) -> JsonStream<R> {
        JsonStream {
            inner: serde_json::Deserializer::from_reader(r).into_iter(),
        }
    }
}

impl<R: Read> Iterator for JsonStream<R> {
    type Item = Result<serde_json::Value, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| r.map_err(ClientError::from))
    }
}

/// An attach/exec connection after the HTTP exchange: raw bytes both ways.
pub struct Hijacked {
    reader: Box<dyn Read + Send>,
    writer: Option<Conn>,
}

impl Hijacked {
    pub(crate) fn upgraded(buffered: Vec<u8>, conn: Conn) -> io::Result<Hijacked> {
        let (reader, writer) = conn.split()?;
        Ok(Hijacked {
            reader: Box::new(Cursor::new(buffered).chain(reader)),
            writer: Some(writer),
        })
    }

    pub(crate) fn from_body(body: Body) -> Hijacked {
        Hijacked {
            reader: Box::new(body),
            writer: None,
        }
    }

    /// The output half and, for upgraded connections, the input half. Call
    /// [`Conn::shutdown_write`] on the input half when stdin ends.
    pub fn into_split(self) -> (Box<dyn Read + Send>, Option<Conn>) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn demultiplexes_frames() {
        let mut input = frame(1, b"hello ");
        input.extend(frame(2, b"oops\n"));
        input.extend(frame(1, b"world\n"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy_multiplexed(&mut Cursor::new(input), &mut out, &mut err).unwrap();
        assert_eq!(out, b"hello world\n");
        assert_eq!(err, b"oops\n");
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let mut input = frame(1, b"hello");
        input.truncate(10);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(copy_multiplexed(&mut Cursor::new(input), &mut out, &mut err).is_err());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(copy_multiplexed(&mut Cursor::new(vec![1, 0, 0]), &mut out, &mut err).is_err());
    }

    #[test]
    fn system_error_stream_surfaces() {
        let input = frame(3, b"exec failed");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = copy_multiplexed(&mut Cursor::new(input), &mut out, &mut err).unwrap_err();
        assert_eq!(e.to_string(), "exec failed");
    }

    #[test]
    fn json_stream_splits_documents() {
        let docs: Vec<_> = JsonStream::new(Cursor::new(b"{\"a\":1}\n{\"a\":2}{\"a\":3}".to_vec()))
            .map(|r| r.unwrap()["a"].as_i64().unwrap())
            .collect();
        assert_eq!(docs, vec![1, 2, 3]);
        let mut bad = JsonStream::new(Cursor::new(b"{\"a\":".to_vec()));
        assert!(bad.next().unwrap().is_err());
    }
}
