//! The contract between `wharfd` and `wharf-shim`: the shim's start-up config, the control
//! protocol on its socket, and the files both sides read (exit status, container logs).
//!
//! Rules (house rule 9): fields are only ever added (with `#[serde(default)]`), never removed or
//! renamed, so a newer daemon can adopt shims started by an older one after a restart.
//!
//! Lifecycle: the daemon writes [`ShimConfig`] to `<dir>/shim.json` and runs `wharf-shim <dir>`.
//! The shim daemonizes, runs `runtime create` (the container's init waits before exec), starts
//! listening on `<dir>/shim.sock`, writes `<dir>/shim.pid`, and only then lets the launching
//! process exit 0 (non-zero with the error on stderr if anything failed). The daemon then
//! connects any pending attach streams and sends [`Request::Start`]. When the init process
//! exits, the shim runs `runtime delete`, writes `<dir>/exit.json` atomically, answers every
//! pending [`Request::Wait`], flushes attach streams and log, and exits: after a short linger
//! (about 10 s) during which new connections still get answers, or at once after
//! [`Request::Shutdown`]. A shim started again in the same directory (a restart) replaces
//! `shim.sock` and removes the previous run's `exit.json`.
#![forbid(unsafe_code)]

pub mod log;
pub mod sockpath;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bumped only when a change needs both sides to know about it.
pub const PROTOCOL_VERSION: u32 = 1;

/// File names inside a container's shim directory.
pub mod files {
    /// The [`super::ShimConfig`] the shim was started with.
    pub const CONFIG: &str = "shim.json";
    /// The control socket.
    pub const SOCKET: &str = "shim.sock";
    /// The shim's pid, written once it is listening.
    pub const PID: &str = "shim.pid";
    /// The container init's [`super::ExitStatus`], written atomically when it exits.
    pub const EXIT: &str = "exit.json";
}

/// How the daemon asks the shim to run one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// [`PROTOCOL_VERSION`] of the daemon that wrote it.
    pub version: u32,
    /// The container id (also the runtime's container id).
    pub id: String,
    /// The OCI bundle directory (holds config.json; rootfs path is in it).
    pub bundle: PathBuf,
    /// The runc-compatible runtime to drive.
    pub runtime: RuntimeConfig,
    /// How the container's stdio is set up.
    pub stdio: StdioConfig,
    /// Where and how the container's output is logged.
    pub log: LogConfig,
}

/// A runc-compatible runtime command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// The binary (`wharf-runtime`, `runc`, `crun`).
    pub path: PathBuf,
    /// Passed as the runtime's global `--root`.
    pub root: PathBuf,
    /// Extra global arguments (from daemon.json `runtimes.<name>.runtimeArgs`).
    #[serde(default)]
    pub args: Vec<String>,
}

/// The container's stdio, as Docker's Config.Tty / OpenStdin / StdinOnce describe it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioConfig {
    /// Allocate a pseudo-terminal (stdout and stderr are then one stream).
    pub tty: bool,
    /// Keep stdin open for attach.
    pub stdin: bool,
    /// Close the container's stdin when the first attached client detaches.
    pub stdin_once: bool,
    /// Initial terminal size, when `tty` is set.
    #[serde(default)]
    pub initial_size: Option<WindowSize>,
}

/// Log driver settings (Docker's `--log-driver` / `--log-opt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Which driver writes the log.
    pub driver: LogDriver,
    /// The log file (json-file, local); unused for `none`.
    pub path: PathBuf,
    /// Rotate when the file reaches this many bytes (`max-size`); `None` = never.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// Files kept including the current one (`max-file`), at least 1.
    #[serde(default = "one")]
    pub max_file: u32,
}

fn one() -> u32 {
    1
}

/// The log drivers the shim implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    /// Docker's default: one JSON object per line ([`log::LogEntry`]).
    JsonFile,
    /// Docker's `local` driver.
    Local,
    /// Nothing is kept; `docker logs` is refused.
    None,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
}

/// The first line (JSON, newline-terminated) a client sends on a new connection; one request
/// per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// `runtime start`: let the created init exec the user process. Answer: [`Response::Started`].
    Start,
    /// The container's current state. Answer: [`Response::State`].
    State,
    /// Block until init exits. Answer: [`Response::Exited`].
    Wait,
    /// `runtime kill [--all] <signal>`. Answer: [`Response::Ok`].
    Kill {
        /// Signal number.
        signal: i32,
        /// Signal every process of the container, not only init.
        #[serde(default)]
        all: bool,
    },
    /// `runtime pause`. Answer: [`Response::Ok`].
    Pause,
    /// `runtime resume`. Answer: [`Response::Ok`].
    Resume,
    /// `runtime update` with OCI `LinuxResources` JSON. Answer: [`Response::Ok`].
    Update {
        /// An OCI `LinuxResources` object.
        resources: serde_json::Value,
    },
    /// Resize the container's (or an exec's) terminal. Answer: [`Response::Ok`].
    Resize {
        /// The exec whose terminal to resize; `None` for the container's.
        #[serde(default)]
        exec_id: Option<String>,
        /// The new size.
        size: WindowSize,
    },
    /// Attach to the container's stdio. Answer: [`Response::Ok`], then the connection becomes
    /// an [attach stream](self#attach-streams).
    Attach {
        /// Forward what the client writes to the container's stdin.
        stdin: bool,
        /// Send the container's stdout.
        stdout: bool,
        /// Send the container's stderr.
        stderr: bool,
    },
    /// Run an extra process in the container (`runtime exec`). Answer: [`Response::Started`],
    /// then (unless `detach`) an [attach stream](self#attach-streams) for that process.
    Exec {
        /// Daemon-chosen id of this exec.
        exec_id: String,
        /// An OCI `Process` object (args, env, cwd, user, terminal, capabilities...).
        process: serde_json::Value,
        /// Forward stdin.
        stdin: bool,
        /// Send stdout.
        stdout: bool,
        /// Send stderr.
        stderr: bool,
        /// Start it and return at once; output is discarded.
        #[serde(default)]
        detach: bool,
    },
    /// An exec's state; with `wait`, block until it has exited. Answer: [`Response::ExecState`].
    ExecState {
        /// The exec.
        exec_id: String,
        /// Wait for it to exit first.
        #[serde(default)]
        wait: bool,
    },
    /// Stop serving and exit once the container has exited. Answer: [`Response::Ok`].
    Shutdown,
}

/// The shim's answer: one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Done.
    Ok,
    /// A process was started.
    Started {
        /// Its pid in the host's pid namespace.
        pid: i32,
    },
    /// The container's state.
    State(ContainerState),
    /// The container's init has exited.
    Exited(ExitStatus),
    /// An exec's state.
    ExecState {
        /// Its pid (0 before it started).
        pid: i32,
        /// Whether it is still running.
        running: bool,
        /// Its exit code once it has exited.
        #[serde(default)]
        exit_code: Option<i32>,
    },
    /// The request failed.
    Error {
        /// What kind of failure ([`ErrorCode`]).
        code: ErrorCode,
        /// One line, for the user.
        message: String,
    },
}

/// Failure classes the daemon maps onto its error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad request (unknown exec, malformed JSON).
    InvalidArgument,
    /// No such exec or process.
    NotFound,
    /// Not possible in the current state (not running, already started).
    Conflict,
    /// The runtime or the system failed.
    Internal,
}

/// Container status as the shim sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, waiting for [`Request::Start`].
    Created,
    /// Init is running.
    Running,
    /// Frozen by [`Request::Pause`].
    Paused,
    /// Init has exited.
    Stopped,
}

/// Answer to [`Request::State`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// The status.
    pub status: Status,
    /// Init's pid in the host's pid namespace.
    pub pid: i32,
    /// Set once stopped.
    #[serde(default)]
    pub exit: Option<ExitStatus>,
}

/// How the container's init ended; also the content of `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal number when killed by a signal (Docker's convention).
    pub exit_code: i32,
    /// RFC 3339 time with nanoseconds, UTC.
    pub exited_at: String,
    /// The cgroup recorded an OOM kill.
    #[serde(default)]
    pub oom_killed: bool,
}

/// Errors decoding a protocol line.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The line was not a valid message.
    #[error("malformed shim message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// A message as one newline-terminated JSON line.
pub fn encode_line<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these plain data types cannot fail (no maps with non-string keys).
    let mut v = serde_json::to_vec(msg).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Parses one line produced by [`encode_line`] (the trailing newline is optional).
pub fn decode_line<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<T, ProtoError> {
    Ok(serde_json::from_slice(
        line.strip_suffix(b"\n").unwrap_or(line),
    )?)
}

/// # Attach streams
///
/// After the answer line, shim → client carries the output: with a tty the raw bytes; without,
/// Docker's multiplexed frames (an 8-byte header `[stream, 0, 0, 0, len as u32 big-endian]`,
/// stream 1 = stdout, 2 = stderr, then `len` bytes), so the daemon can pass them to Docker
/// clients unchanged. Client → shim carries raw stdin bytes; shutting down the write half is EOF
/// on stdin. The shim closes the stream after the process exited and its output was sent.
pub mod stream {
    /// Stream id of stdin in multiplexed frames.
    pub const STDIN: u8 = 0;
    /// Stream id of stdout.
    pub const STDOUT: u8 = 1;
    /// Stream id of stderr.
    pub const STDERR: u8 = 2;

    /// The header of a multiplexed frame carrying `len` bytes of `stream`.
    pub fn frame_header(stream: u8, len: u32) -> [u8; 8] {
        let l = len.to_be_bytes();
        [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
    }

    /// Splits a frame header into (stream, payload length).
    pub fn parse_header(h: &[u8; 8]) -> (u8, u32) {
        (h[0], u32::from_be_bytes([h[4], h[5], h[6], h[7]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_round_trip() {
        let req = Request::Kill {
            signal: 15,
            all: true,
        };
        let line = encode_line(&req);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(decode_line::<Request>(&line).expect("decode"), req);
        let raw = br#"{"type":"exec_state","exec_id":"e1"}"#;
        assert_eq!(
            decode_line::<Request>(raw).expect("decode"),
            Request::ExecState {
                exec_id: "e1".into(),
                wait: false
            }
        );
    }

    #[test]
    fn responses_round_trip_and_bad_lines_fail() {
        let resp = Response::Exited(ExitStatus {
            exit_code: 137,
            exited_at: "2026-11-23T12:00:00.000000001Z".into(),
            oom_killed: true,
        });
        assert_eq!(
            decode_line::<Response>(&encode_line(&resp)).expect("decode"),
            resp
        );
        assert!(decode_line::<Response>(b"{\"type\":\"nonsense\"}").is_err());
    }

    #[test]
    fn frame_header_layout() {
        let h = stream::frame_header(stream::STDERR, 0x0102_0304);
        assert_eq!(h, [2, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(stream::parse_header(&h), (2, 0x0102_0304));
    }
}
