//! The json-file log format, shared by the shim (writer) and the daemon (`docker logs` reader).
//! Byte-compatible with Docker's json-file driver so existing log tooling keeps working.

use serde::{Deserialize, Serialize};

/// One log record: a chunk of one stream, ending in a newline unless it is partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, including its trailing `\n` when the line is complete.
    pub log: String,
    /// "stdout" or "stderr".
    pub stream: String,
    /// RFC 3339 time with nanoseconds, UTC.
    pub time: String,
}

impl LogEntry {
    /// The entry as one json-file line (newline-terminated).
    pub fn to_line(&self) -> Vec<u8> {
        super::encode_line(self)
    }

    /// Parses one json-file line.
    pub fn from_line(line: &[u8]) -> Result<LogEntry, super::ProtoError> {
        super::decode_line(line)
    }
}

/// One record of Docker's `local` log driver: the protobuf `LogEntry` of Docker's logdriver
/// API, framed as `[len u32 BE][message][len u32 BE]` (the trailing length allows reading
/// backwards for `--tail`). Lines are stored without their trailing newline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalEntry {
    /// "stdout" or "stderr".
    pub source: String,
    /// Unix time in nanoseconds.
    pub time_nano: i64,
    /// The text without its trailing newline.
    pub line: Vec<u8>,
    /// Set on the pieces of a line that was cut at 16 KiB.
    pub partial: Option<PartialMetadata>,
}

/// Which piece of a cut line a [`LocalEntry`] is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialMetadata {
    /// The final piece (it ended with the newline).
    pub last: bool,
    /// Shared by all pieces of one line.
    pub id: String,
    /// 1-based position of the piece.
    pub ordinal: i32,
}

/// A `local` log file that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum LocalLogError {
    /// The data ends in the middle of a record.
    #[error("truncated local log record")]
    Truncated,
    /// The framing or the protobuf message is invalid.
    #[error("corrupt local log record: {0}")]
    Corrupt(&'static str),
}

impl LocalEntry {
    /// Whether `docker logs` prints a newline after this entry.
    pub fn ends_line(&self) -> bool {
        self.partial.as_ref().is_none_or(|p| p.last)
    }

    /// The framed record.
    pub fn to_record(&self) -> Vec<u8> {
        let mut msg = Vec::with_capacity(self.line.len() + 32);
        pb::put_bytes(&mut msg, 1, self.source.as_bytes());
        pb::put_varint_field(&mut msg, 2, self.time_nano as u64);
        pb::put_bytes(&mut msg, 3, &self.line);
        if let Some(p) = &self.partial {
            pb::put_varint_field(&mut msg, 4, 1);
            let mut md = Vec::new();
            pb::put_varint_field(&mut md, 1, u64::from(p.last));
            pb::put_bytes(&mut md, 2, p.id.as_bytes());
            pb::put_varint_field(&mut md, 3, i64::from(p.ordinal) as u64);
            pb::put_bytes(&mut msg, 5, &md);
        }
        let len = (msg.len() as u32).to_be_bytes();
        let mut rec = Vec::with_capacity(msg.len() + 8);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&msg);
        rec.extend_from_slice(&len);
        rec
    }

    /// Decodes the record at the start of `data`; returns it and the bytes it took.
    pub fn from_record(data: &[u8]) -> Result<(LocalEntry, usize), LocalLogError> {
        let head: [u8; 4] = data
            .get(..4)
            .ok_or(LocalLogError::Truncated)?
            .try_into()
            .map_err(|_| LocalLogError::Truncated)?;
        let len = u32::from_be_bytes(head) as usize;
        let end = 4usize
            .checked_add(len)
            .ok_or(LocalLogError::Corrupt("length overflow"))?;
        let msg = data.get(4..end).ok_or(LocalLogError::Truncated)?;
        let tail = data.get(end..end + 4).ok_or(LocalLogError::Truncated)?;
        if tail != head {
            return Err(LocalLogError::Corrupt(
                "leading and trailing lengths differ",
            ));
        }
        let mut entry = LocalEntry::default();
        let mut partial = false;
        let mut meta = None;
        for field in pb::Fields(msg) {
            match field? {
                (1, pb::Value::Bytes(b)) => entry.source = String::from_utf8_lossy(b).into_owned(),
                (2, pb::Value::Varint(v)) => entry.time_nano = v as i64,
                (3, pb::Value::Bytes(b)) => entry.line = b.to_vec(),
                (4, pb::Value::Varint(v)) => partial = v != 0,
                (5, pb::Value::Bytes(b)) => {
                    let mut md = PartialMetadata::default();
                    for f in pb::Fields(b) {
                        match f? {
                            (1, pb::Value::Varint(v)) => md.last = v != 0,
                            (2, pb::Value::Bytes(b)) => {
                                md.id = String::from_utf8_lossy(b).into_owned()
                            }
                            (3, pb::Value::Varint(v)) => md.ordinal = v as i32,
                            _ => {}
                        }
                    }
                    meta = Some(md);
                }
                _ => {}
            }
        }
        if partial {
            entry.partial = Some(meta.unwrap_or_default());
        }
        Ok((entry, end + 4))
    }
}

/// Decodes a whole `local` log file.
pub fn read_local(mut data: &[u8]) -> Result<Vec<LocalEntry>, LocalLogError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (entry, used) = LocalEntry::from_record(data)?;
        out.push(entry);
        data = &data[used..];
    }
    Ok(out)
}

/// The few protobuf wire-format pieces the `local` format needs.
mod pb {
    use super::LocalLogError;

    pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
        put_varint(out, field << 3);
        put_varint(out, v);
    }

    pub fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        put_varint(out, (field << 3) | 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    pub enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed,
    }

    fn varint(data: &mut &[u8]) -> Result<u64, LocalLogError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data
                .split_first()
                .ok_or(LocalLogError::Corrupt("truncated varint"))?;
            *data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(LocalLogError::Corrupt("varint too long"))
    }

    /// Iterates over (field number, value) of one message.
    pub struct Fields<'a>(pub &'a [u8]);

    impl<'a> Iterator for Fields<'a> {
        type Item = Result<(u64, Value<'a>), LocalLogError>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.0.is_empty() {
                return None;
            }
            let item = (|| {
                let key = varint(&mut self.0)?;
                let value = match key & 7 {
                    0 => Value::Varint(varint(&mut self.0)?),
                    1 | 5 => {
                        let n = if key & 7 == 1 { 8 } else { 4 };
                        self.0 = self
                            .0
                            .get(n..)
                            .ok_or(LocalLogError::Corrupt("truncated fixed field"))?;
                        Value::Fixed
                    }
                    2 => {
                        let len = usize::try_from(varint(&mut self.0)?)
                            .map_err(|_| LocalLogError::Corrupt("length overflow"))?;
                        let b = self
                            .0
                            .get(..len)
                            .ok_or(LocalLogError::Corrupt("truncated field"))?;
                        self.0 = &self.0[len..];
                        Value::Bytes(b)
                    }
                    _ => return Err(LocalLogError::Corrupt("unsupported wire type")),
                };
                Ok((key >> 3, value))
            })();
            if item.is_err() {
                self.0 = &[];
            }
            Some(item)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_docker_json_file_shape() {
        let e = LogEntry {
            log: "hello\n".into(),
            stream: "stdout".into(),
            time: "2026-11-23T12:00:00.123456789Z".into(),
        };
        assert_eq!(
            String::from_utf8(e.to_line()).expect("utf8"),
            "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-23T12:00:00.123456789Z\"}\n"
        );
        assert_eq!(LogEntry::from_line(&e.to_line()).expect("parse"), e);
    }

    #[test]
    fn local_records_round_trip_and_reject_garbage() {
        let whole = LocalEntry {
            source: "stdout".into(),
            time_nano: 1_700_000_000_123_456_789,
            line: b"hello".to_vec(),
            partial: None,
        };
        let piece = LocalEntry {
            source: "stderr".into(),
            time_nano: 5,
            line: vec![b'x'; 300],
            partial: Some(PartialMetadata {
                last: false,
                id: "abc".into(),
                ordinal: 1,
            }),
        };
        let mut file = whole.to_record();
        file.extend(piece.to_record());
        assert_eq!(
            read_local(&file).expect("decode"),
            vec![whole.clone(), piece.clone()]
        );
        assert!(whole.ends_line() && !piece.ends_line());
        assert!(matches!(
            read_local(&file[..file.len() - 1]),
            Err(LocalLogError::Truncated)
        ));
        let mut bad = whole.to_record();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(read_local(&bad), Err(LocalLogError::Corrupt(_))));
    }

    #[test]
    fn local_record_matches_docker_protobuf_bytes() {
        // Hand-encoded per Docker's logdriver LogEntry: source=1, time_nano=2, line=3.
        let e = LocalEntry {
            source: "stdout".into(),
            time_nano: 300,
            line: b"hi".to_vec(),
            partial: None,
        };
        let msg = [
            &[0x0a, 6][..],
            b"stdout",
            &[0x10, 0xac, 0x02],
            &[0x1a, 2],
            b"hi",
        ]
        .concat();
        let len = (msg.len() as u32).to_be_bytes();
        assert_eq!(e.to_record(), [&len[..], &msg, &len].concat());
    }
}
