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
}
