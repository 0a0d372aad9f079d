//! Container log drivers: Docker's `json-file` and `local` (16 KiB line splitting, size
//! rotation; rotated `local` files are not compressed) and `none`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use wharf_shim_proto::log::{LocalEntry, LogEntry, PartialMetadata};
use wharf_shim_proto::{LogConfig, LogDriver};

use crate::timefmt::now_rfc3339_nano;

/// Docker cuts lines longer than this into partial entries (no trailing newline).
pub const MAX_LINE: usize = 16 * 1024;

/// An output stream of a container process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (also the terminal with a tty).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name json-file records.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The stream id in multiplexed attach frames.
    pub fn frame_id(self) -> u8 {
        match self {
            Stream::Stdout => wharf_shim_proto::stream::STDOUT,
            Stream::Stderr => wharf_shim_proto::stream::STDERR,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// Why the log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be opened.
    #[error("cannot open log file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Cuts a byte stream into Docker log messages: complete lines, or 16 KiB partial chunks.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Adds `data`, calling `emit` for every finished message (with its `\n` if complete).
    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.buf.len();
            let window = &data[..data.len().min(room)];
            if let Some(nl) = window.iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&window[..=nl]);
                data = &data[nl + 1..];
            } else {
                self.buf.extend_from_slice(window);
                data = &data[window.len()..];
                if self.buf.len() < MAX_LINE {
                    continue;
                }
            }
            emit(&self.buf);
            self.buf.clear();
        }
    }

    /// Emits what is left at end of stream (a final line without newline).
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

/// A log file with Docker's size rotation: `<path>`, `<path>.1` (newest rotated), ...
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
}

impl RotatingFile {
    /// Opens (appending to) the log file.
    pub fn open(
        path: &Path,
        max_size: Option<u64>,
        max_file: u32,
    ) -> Result<RotatingFile, LogError> {
        let open_err = |source| LogError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_err)?;
        let size = file.metadata().map_err(open_err)?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
        })
    }

    /// Appends one encoded entry, rotating first when the file already reached `max_size` (as
    /// Docker does, so a file may exceed the limit by at most one entry).
    pub fn write(&mut self, record: &[u8]) -> io::Result<()> {
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.rotate()?;
        }
        self.file.write_all(record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file > 1 {
            for n in (1..self.max_file - 1).rev() {
                match fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The pieces of a line being cut at 16 KiB, for the `local` format's partial metadata.
#[derive(Debug, Default)]
struct PartialLine {
    id: Option<String>,
    ordinal: i32,
}

impl PartialLine {
    /// The `local` record for one message from the splitter.
    fn entry(&mut self, stream: Stream, msg: &[u8]) -> LocalEntry {
        let line = msg.strip_suffix(b"\n");
        let partial = match (line, self.id.take()) {
            // A cut piece: the line goes on.
            (None, id) => {
                let id = id.unwrap_or_else(partial_id);
                self.ordinal += 1;
                self.id = Some(id.clone());
                Some(PartialMetadata {
                    last: false,
                    id,
                    ordinal: self.ordinal,
                })
            }
            // The end of a cut line.
            (Some(_), Some(id)) => {
                let ordinal = self.ordinal + 1;
                self.ordinal = 0;
                Some(PartialMetadata {
                    last: true,
                    id,
                    ordinal,
                })
            }
            (Some(_), None) => None,
        };
        LocalEntry {
            source: stream.name().to_string(),
            time_nano: Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            line: line.unwrap_or(msg).to_vec(),
            partial,
        }
    }
}

/// A fresh id shared by the pieces of one cut line (unique enough within one log).
fn partial_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "{now:x}{:x}{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The closed set of drivers the shim can write.
#[derive(Debug)]
enum Driver {
    JsonFile(RotatingFile),
    Local(RotatingFile, [PartialLine; 2]),
    None,
}

/// The container's log: splits each stream into messages and hands them to the driver.
#[derive(Debug)]
pub struct Logger {
    driver: Driver,
    splitters: [LineSplitter; 2],
}

impl Logger {
    /// Opens the log the config asks for.
    pub fn open(cfg: &LogConfig) -> Result<Logger, LogError> {
        let file = || RotatingFile::open(&cfg.path, cfg.max_size, cfg.max_file);
        let driver = match cfg.driver {
            LogDriver::JsonFile => Driver::JsonFile(file()?),
            LogDriver::Local => Driver::Local(file()?, Default::default()),
            LogDriver::None => Driver::None,
        };
        Ok(Logger {
            driver,
            splitters: Default::default(),
        })
    }

    /// Logs output read from `stream`.
    pub fn feed(&mut self, stream: Stream, data: &[u8]) {
        let Logger { driver, splitters } = self;
        splitters[stream.index()].feed(data, &mut |msg| driver.write(stream, msg));
    }

    /// Flushes the unfinished lines of both streams at the end of the output.
    pub fn finish(&mut self) {
        let Logger { driver, splitters } = self;
        for stream in [Stream::Stdout, Stream::Stderr] {
            splitters[stream.index()].finish(&mut |msg| driver.write(stream, msg));
        }
    }
}

impl Driver {
    fn write(&mut self, stream: Stream, msg: &[u8]) {
        // A full disk must not stall or kill the container: the entry is lost, the container
        // runs on (Docker's file drivers behave the same).
        let _ = match self {
            Driver::JsonFile(file) => {
                let entry = LogEntry {
                    log: String::from_utf8_lossy(msg).into_owned(),
                    stream: stream.name().to_string(),
                    time: now_rfc3339_nano(),
                };
                file.write(&entry.to_line())
            }
            Driver::Local(file, partial) => {
                file.write(&partial[stream.index()].entry(stream, msg).to_record())
            }
            Driver::None => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |m| out.push(m.to_vec()));
        }
        s.finish(&mut |m| out.push(m.to_vec()));
        out
    }

    #[test]
    fn splits_on_newlines_across_chunks() {
        let out = split(&[b"a\nb", b"c\n\nd"]);
        assert_eq!(
            out,
            vec![
                b"a\n".to_vec(),
                b"bc\n".to_vec(),
                b"\n".to_vec(),
                b"d".to_vec()
            ]
        );
    }

    #[test]
    fn long_lines_become_16k_partials() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut input = long.clone();
        input.push(b'\n');
        let out = split(&[&input[..100], &input[100..]]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1].len(), MAX_LINE);
        assert!(!out[0].ends_with(b"\n"));
        assert_eq!(out[2], [vec![b'x'; 10], b"\n".to_vec()].concat());
    }

    fn entry(text: &str) -> Vec<u8> {
        LogEntry {
            log: text.into(),
            stream: "stdout".into(),
            time: "t".into(),
        }
        .to_line()
    }

    #[test]
    fn rotates_and_keeps_max_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut f = RotatingFile::open(&path, Some(10), 3).expect("open");
        for i in 0..5 {
            f.write(&entry(&format!("line{i}\n"))).expect("write");
        }
        let read = |p: &Path| fs::read_to_string(p).expect("read");
        assert!(read(&path).contains("line4"));
        assert!(read(&dir.path().join("c-json.log.1")).contains("line3"));
        assert!(read(&dir.path().join("c-json.log.2")).contains("line2"));
        assert!(!dir.path().join("c-json.log.3").exists());
    }

    #[test]
    fn max_file_one_truncates_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut f = RotatingFile::open(&path, Some(10), 1).expect("open");
        f.write(&entry("first\n")).expect("write");
        f.write(&entry("second\n")).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert!(!text.contains("first") && text.contains("second"));
        assert!(!dir.path().join("log.1").exists());
    }

    #[test]
    fn logger_writes_docker_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let cfg = LogConfig {
            driver: LogDriver::JsonFile,
            path: path.clone(),
            max_size: None,
            max_file: 1,
        };
        let mut log = Logger::open(&cfg).expect("open");
        log.feed(Stream::Stderr, b"oops\npart");
        log.finish();
        let text = fs::read_to_string(&path).expect("read");
        let entries: Vec<LogEntry> = text
            .lines()
            .map(|l| LogEntry::from_line(l.as_bytes()).expect("entry"))
            .collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[0].log.as_str(), entries[0].stream.as_str()),
            ("oops\n", "stderr")
        );
        assert_eq!(entries[1].log, "part");
    }

    #[test]
    fn local_driver_writes_records_with_partial_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("container.log");
        let cfg = LogConfig {
            driver: LogDriver::Local,
            path: path.clone(),
            max_size: None,
            max_file: 1,
        };
        let mut log = Logger::open(&cfg).expect("open");
        let mut long = vec![b'y'; MAX_LINE + 5];
        long.push(b'\n');
        log.feed(Stream::Stdout, b"short\n");
        log.feed(Stream::Stdout, &long);
        log.feed(Stream::Stdout, b"after\n");
        let entries =
            wharf_shim_proto::log::read_local(&fs::read(&path).expect("read")).expect("decode");
        let lines: Vec<&[u8]> = entries.iter().map(|e| e.line.as_slice()).collect();
        assert_eq!(
            lines,
            vec![
                &b"short"[..],
                &long[..MAX_LINE],
                &long[MAX_LINE..MAX_LINE + 5],
                b"after"
            ]
        );
        assert!(entries[0].partial.is_none() && entries[3].partial.is_none());
        let (first, last) = (
            entries[1].partial.clone().expect("cut"),
            entries[2].partial.clone().expect("end"),
        );
        assert_eq!(
            (first.ordinal, first.last, last.ordinal, last.last),
            (1, false, 2, true)
        );
        assert_eq!(first.id, last.id);
        assert!(entries
            .iter()
            .all(|e| e.source == "stdout" && e.time_nano > 0));
    }

    #[test]
    fn none_driver_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let cfg = LogConfig {
            driver: LogDriver::None,
            path: path.clone(),
            max_size: None,
            max_file: 1,
        };
        let mut log = Logger::open(&cfg).expect("open");
        log.feed(Stream::Stdout, b"dropped\n");
        log.finish();
        assert!(!path.exists());
    }
}
