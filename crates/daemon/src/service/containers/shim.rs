//! Talking to a container's `wharf-shim`: launching it and the JSON-line protocol on
//! `<dir>/shim.sock` (one request per connection; attach/exec connections then carry a stream).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use wharf_errdefs::{Classify, ErrorKind};
use wharf_shim_proto::sockpath::SocketPath;
use wharf_shim_proto::{
    decode_line, encode_line, files, ErrorCode, ExitStatus, Request, Response, ShimConfig,
};

/// Shim errors.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The shim binary failed to start the container (its stderr).
    #[error("{0}")]
    Launch(String),
    /// The socket is gone: the shim has exited.
    #[error("container shim is not running ({0})")]
    Gone(String),
    /// The shim answered with an error.
    #[error("{message}")]
    Refused {
        /// Its class.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// A malformed or unexpected answer.
    #[error("unexpected shim answer: {0}")]
    Protocol(String),
    /// Local I/O.
    #[error("shim {what}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

impl Classify for ShimError {
    fn kind(&self) -> ErrorKind {
        match self {
            ShimError::Refused {
                code: ErrorCode::InvalidArgument,
                ..
            } => ErrorKind::InvalidArgument,
            ShimError::Refused {
                code: ErrorCode::NotFound,
                ..
            } => ErrorKind::NotFound,
            ShimError::Refused {
                code: ErrorCode::Conflict,
                ..
            }
            | ShimError::Gone(_) => ErrorKind::Conflict,
            ShimError::Launch(m)
                if m.contains("executable file not found") || m.contains("no such file") =>
            {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// A handle on one shim directory.
#[derive(Debug, Clone)]
pub struct Shim {
    dir: PathBuf,
}

impl Shim {
    /// The shim for `dir` (`<exec-root>/containers/<id>`).
    pub fn new(dir: &Path) -> Shim {
        Shim {
            dir: dir.to_path_buf(),
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `shim.json` and runs `wharf-shim <dir>`, which returns once the container is
    /// created and the socket listens (or fails with the runtime's error on stderr).
    pub async fn launch(&self, shim_bin: &Path, cfg: &ShimConfig) -> Result<(), ShimError> {
        let io = |what| move |source| ShimError::Io { what, source };
        let bytes =
            serde_json::to_vec_pretty(cfg).map_err(|e| ShimError::Protocol(e.to_string()))?;
        tokio::fs::write(self.dir.join(files::CONFIG), bytes)
            .await
            .map_err(io("writing config"))?;
        let out = tokio::process::Command::new(shim_bin)
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .await
            .map_err(io("spawning wharf-shim"))?;
        if out.status.success() {
            Ok(())
        } else {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(ShimError::Launch(if msg.is_empty() {
                format!("wharf-shim exited with {}", out.status)
            } else {
                msg
            }))
        }
    }

    /// Connects and sends `req`, returning the answer and the connection (for streams).
    pub async fn open(&self, req: &Request) -> Result<(Response, UnixStream), ShimError> {
        let path = self.dir.join(files::SOCKET);
        let sock = SocketPath::for_self(&path).map_err(|e| ShimError::Gone(e.to_string()))?;
        let mut s = UnixStream::connect(sock.path())
            .await
            .map_err(|e| ShimError::Gone(e.to_string()))?;
        drop(sock);
        s.write_all(&encode_line(req))
            .await
            .map_err(|e| ShimError::Gone(e.to_string()))?;
        // Byte by byte: whatever follows the line belongs to the stream.
        let mut line = Vec::with_capacity(128);
        loop {
            let b = s
                .read_u8()
                .await
                .map_err(|e| ShimError::Gone(e.to_string()))?;
            if b == b'\n' {
                break;
            }
            line.push(b);
            if line.len() > 1 << 20 {
                return Err(ShimError::Protocol("answer line too long".into()));
            }
        }
        match decode_line::<Response>(&line).map_err(|e| ShimError::Protocol(e.to_string()))? {
            Response::Error { code, message } => Err(ShimError::Refused { code, message }),
            r => Ok((r, s)),
        }
    }

    /// One request, one answer.
    pub async fn call(&self, req: &Request) -> Result<Response, ShimError> {
        self.open(req).await.map(|(r, _)| r)
    }

    /// A request whose answer is just `Ok`.
    pub async fn call_ok(&self, req: &Request) -> Result<(), ShimError> {
        match self.call(req).await? {
            Response::Ok => Ok(()),
            other => Err(ShimError::Protocol(format!("{other:?}"))),
        }
    }

    /// Blocks until the container's init exits.
    pub async fn wait(&self) -> Result<ExitStatus, ShimError> {
        match self.call(&Request::Wait).await? {
            Response::Exited(e) => Ok(e),
            other => Err(ShimError::Protocol(format!("{other:?}"))),
        }
    }

    /// `exit.json`, once the shim recorded the exit.
    pub fn exit_file(&self) -> Option<ExitStatus> {
        let b = std::fs::read(self.dir.join(files::EXIT)).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[tokio::test]
    async fn request_answer_and_stream_bytes_stay_separate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = tokio::net::UnixListener::bind(dir.path().join(files::SOCKET)).expect("bind");
        tokio::spawn(async move {
            for answer in [
                &b"{\"type\":\"ok\"}\nSTREAM"[..],
                b"{\"type\":\"error\",\"code\":\"conflict\",\"message\":\"not running\"}\n",
            ] {
                let (s, _) = l.accept().await.expect("accept");
                let mut r = tokio::io::BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).await.expect("read");
                r.get_mut().write_all(answer).await.expect("write");
            }
        });
        let shim = Shim::new(dir.path());
        let (resp, mut s) = shim
            .open(&Request::Attach {
                stdin: false,
                stdout: true,
                stderr: true,
            })
            .await
            .expect("open");
        assert_eq!(resp, Response::Ok);
        let mut rest = String::new();
        s.read_to_string(&mut rest).await.expect("rest");
        assert_eq!(rest, "STREAM");
        let e = shim.call(&Request::Pause).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.to_string(), "not running");
        assert!(matches!(
            Shim::new(Path::new("/nonexistent"))
                .call(&Request::State)
                .await,
            Err(ShimError::Gone(_))
        ));
    }
}
