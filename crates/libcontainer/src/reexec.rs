//! Defence against CVE-2019-5736: a container must never get a writable handle on the runtime
//! binary. Before a command puts runtime code inside a container, the binary re-executes
//! itself from a sealed memfd copy, so `/proc/<pid>/exe` seen from the container names an
//! immutable anonymous file instead of the host's binary.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{MemfdFlags, SealFlags};

use crate::error::{LibcontainerError, Result};
use crate::fsroot::sys;

const SEALS: SealFlags = SealFlags::SEAL.union(SealFlags::SHRINK).union(SealFlags::GROW).union(SealFlags::WRITE);

/// Whether `fd` is a memfd carrying all our seals.
fn is_sealed(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(SEALS))
}

/// Returns when the current process already runs from a sealed copy; otherwise replaces the
/// process image with one (same argv and environment) and does not return.
pub fn ensure_sealed_exe() -> Result<()> {
    let exe = File::open("/proc/self/exe").map_err(LibcontainerError::io("open /proc/self/exe"))?;
    if is_sealed(&exe) {
        return Ok(());
    }
    let memfd = sealed_copy(&exe)?;
    let to_c = |v: Vec<u8>| CString::new(v).map_err(|_| LibcontainerError::InvalidSpec("argument contains NUL".into()));
    let args: Vec<CString> = std::env::args_os().map(|a| to_c(a.into_vec())).collect::<Result<_>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            to_c(kv)
        })
        .collect::<Result<_>>()?;
    match nix::unistd::fexecve(memfd.as_fd(), &args, &env) {
        Err(e) => Err(LibcontainerError::Sys { op: "re-exec from sealed copy".into(), source: e }),
        Ok(never) => match never {},
    }
}

/// Copies `src` into a new close-on-exec memfd and seals it against any change.
pub fn sealed_copy(src: &File) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("wharf-runtime", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| sys("memfd_create", e))?;
    let mut dst = File::from(fd);
    let mut src = src;
    std::io::copy(&mut src, &mut dst).map_err(LibcontainerError::io("copy runtime binary"))?;
    let fd = OwnedFd::from(dst);
    rustix::fs::fcntl_add_seals(&fd, SEALS).map_err(|e| sys("seal runtime copy", e))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_is_sealed_and_identical() {
        let exe = File::open("/proc/self/exe").expect("exe");
        assert!(!is_sealed(&exe));
        let fd = sealed_copy(&exe).expect("memfd");
        assert!(is_sealed(&fd));
        let copy = File::from(fd);
        assert_eq!(copy.metadata().expect("meta").len(), exe.metadata().expect("meta").len());
        // Sealed: writing through a reopened handle, or truncating it, must fail.
        let path = crate::fsroot::fd_path(&copy);
        let wrote = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"pwned"));
        assert!(wrote.is_err());
        assert!(std::fs::OpenOptions::new().write(true).truncate(true).open(&path).is_err());
    }
}
