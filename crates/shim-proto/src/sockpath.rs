//! Unix socket paths longer than the kernel's 107-byte limit (a long `--exec-root` plus a
//! 64-hex container id): such a path is reached through an open handle on its directory,
//! `/proc/<pid>/fd/<n>/<name>`, which is short whatever the directory's own path.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bytes of path a `sockaddr_un` holds (108 with the terminating NUL).
pub const MAX_LEN: usize = 107;

/// A path to bind or connect a unix socket at; keeps the directory handle the short form
/// goes through open for as long as it lives.
#[derive(Debug)]
pub struct SocketPath {
    path: PathBuf,
    _dir: Option<File>,
}

impl SocketPath {
    /// `path` itself when it fits; else a form valid in this process (`/proc/self/fd/...`).
    pub fn for_self(path: &Path) -> io::Result<SocketPath> {
        SocketPath::new(path, "self")
    }

    /// Like [`for_self`](Self::for_self), but a form that this process's children (with
    /// access to its `/proc` entry) can use too, e.g. a console socket handed to the runtime.
    pub fn for_children(path: &Path) -> io::Result<SocketPath> {
        SocketPath::new(path, &std::process::id().to_string())
    }

    fn new(path: &Path, proc_pid: &str) -> io::Result<SocketPath> {
        if path.as_os_str().len() <= MAX_LEN {
            return Ok(SocketPath {
                path: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket path {} has no directory", path.display()),
            ));
        };
        // A handle to walk through, never to read.
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(parent)?;
        let short = Path::new("/proc")
            .join(proc_pid)
            .join("fd")
            .join(dir.as_raw_fd().to_string())
            .join(name);
        if short.as_os_str().len() > MAX_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket name {name:?} is too long"),
            ));
        }
        Ok(SocketPath {
            path: short,
            _dir: Some(dir),
        })
    }

    /// The path to hand to bind(2) or connect(2).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn long_paths_bind_and_connect_through_the_directory_handle() {
        let t = tempfile::tempdir().expect("tempdir");
        let deep = t.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let sock = deep.join("shim.sock");
        assert!(sock.as_os_str().len() > MAX_LEN);
        let bind = SocketPath::for_children(&sock).expect("short path");
        let listener = UnixListener::bind(bind.path()).expect("bind");
        assert!(sock.exists(), "the socket file lives at the long path");
        let connect = SocketPath::for_self(&sock).expect("short path");
        UnixStream::connect(connect.path()).expect("connect");
        drop(listener.accept().expect("accept"));
    }

    #[test]
    fn short_paths_stay_as_they_are() {
        let p = Path::new("/run/wharf/x.sock");
        assert_eq!(SocketPath::for_self(p).expect("path").path(), p);
    }
}
