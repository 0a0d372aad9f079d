//! The control socket. It is unlinked when the shim stops serving, but only while the path
//! still names it: a new shim for the same container (a restart) may already have replaced it
//! while this one lingered.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// A listening, non-blocking control socket, unlinked on drop if still ours.
#[derive(Debug)]
pub(super) struct ControlSocket {
    pub(super) listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file we bound.
    file: (u64, u64),
}

impl ControlSocket {
    /// Binds `path`, replacing a stale socket file from an earlier shim.
    pub(super) fn bind(path: &Path) -> io::Result<ControlSocket> {
        let _ = fs::remove_file(path);
        let listener =
            UnixListener::bind(wharf_shim_proto::sockpath::SocketPath::for_self(path)?.path())?;
        listener.set_nonblocking(true)?;
        let meta = fs::symlink_metadata(path)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            file: (meta.dev(), meta.ino()),
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.file {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlinks_only_its_own_socket_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shim.sock");
        drop(ControlSocket::bind(&path).expect("bind"));
        assert!(!path.exists());
        let old = ControlSocket::bind(&path).expect("bind");
        let new = ControlSocket::bind(&path).expect("rebind replaces the stale file");
        drop(old);
        assert!(path.exists(), "the newer shim's socket must survive");
        drop(new);
        assert!(!path.exists());
    }
}
