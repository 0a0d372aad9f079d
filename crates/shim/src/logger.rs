//! Container log drivers: Docker's `json-file` (16 KiB line splitting, size rotation) and `none`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use wharf_shim_proto::log::LogEntry;
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
    /// The driver exists in Docker but not in this shim.
    #[error("log driver \"{0}\" is not supported by wharf-shim (use json-file or none)")]
    Unsupported(&'static str),
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

/// A json-file log with Docker's rotation: `<path>`, `<path>.1` (newest rotated), ...
#[derive(Debug)]
pub struct JsonFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
}

impl JsonFile {
    /// Opens (appending to) the log file.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> Result<JsonFile, LogError> {
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
        Ok(JsonFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
        })
    }

    /// Appends one entry, rotating first when the file already reached `max_size` (as Docker
    /// does, so a file may exceed the limit by at most one entry).
    pub fn write(&mut self, entry: &LogEntry) -> io::Result<()> {
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.rotate()?;
        }
        let line = entry.to_line();
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
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

/// The closed set of drivers the shim can write.
#[derive(Debug)]
enum Driver {
    JsonFile(JsonFile),
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
        let driver = match cfg.driver {
            LogDriver::JsonFile => {
                Driver::JsonFile(JsonFile::open(&cfg.path, cfg.max_size, cfg.max_file)?)
            }
            LogDriver::None => Driver::None,
            LogDriver::Local => return Err(LogError::Unsupported("local")),
        };
        Ok(Logger {
            driver,
            splitters: Default::default(),
        })
    }

    /// Logs output read from `stream`.
    pub fn feed(&mut self, stream: Stream, data: &[u8]) {
        let Logger { driver, splitters } = self;
        if let Driver::JsonFile(file) = driver {
            splitters[stream.index()].feed(data, &mut |msg| write_entry(file, stream, msg));
        }
    }

    /// Flushes the unfinished lines of both streams at the end of the output.
    pub fn finish(&mut self) {
        let Logger { driver, splitters } = self;
        if let Driver::JsonFile(file) = driver {
            for stream in [Stream::Stdout, Stream::Stderr] {
                splitters[stream.index()].finish(&mut |msg| write_entry(file, stream, msg));
            }
        }
    }
}

fn write_entry(file: &mut JsonFile, stream: Stream, msg: &[u8]) {
    let entry = LogEntry {
        log: String::from_utf8_lossy(msg).into_owned(),
        stream: stream.name().to_string(),
        time: now_rfc3339_nano(),
    };
    // A full disk must not stall or kill the container: the entry is lost, the container runs
    // on (Docker's json-file behaves the same).
    let _ = file.write(&entry);
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

    fn entry(text: &str) -> LogEntry {
        LogEntry {
            log: text.into(),
            stream: "stdout".into(),
            time: "t".into(),
        }
    }

    #[test]
    fn rotates_and_keeps_max_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut f = JsonFile::open(&path, Some(10), 3).expect("open");
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
        let mut f = JsonFile::open(&path, Some(10), 1).expect("open");
        f.write(&entry("first\n")).expect("write");
        f.write(&entry("second\n")).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert!(!text.contains("first") && text.contains("second"));
        assert!(!dir.path().join("log.1").exists());
    }

    #[test]
    fn logger_writes_docker_lines_and_refuses_local() {
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
        let local = LogConfig {
            driver: LogDriver::Local,
            ..cfg
        };
        assert!(matches!(
            Logger::open(&local),
            Err(LogError::Unsupported("local"))
        ));
    }
}
