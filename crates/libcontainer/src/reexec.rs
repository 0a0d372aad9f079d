//! Defence against CVE-2019-5736: a container must never get a writable handle on the runtime
//! binary. Before a command puts runtime code inside a container, the binary re-executes
//! itself from a private read-only bind mount of itself (detached at once, as runc's
//! `try_bindfd`), or when that cannot be made, from a sealed memfd copy. Either way
//! `/proc/<pid>/exe` seen from the container cannot be opened for writing. The bind avoids
//! copying the whole binary on every `create`.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

use crate::error::{LibcontainerError, Result};
use crate::fsroot::sys;

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Whether `fd` is a memfd carrying all our seals.
fn is_sealed(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(SEALS))
}

/// Set in the environment of a process re-executed from a read-only bind: a read-only mount
/// alone could be anyone's, this says it is the one we made.
const CLONED_ENV: &str = "_WHARF_RUNTIME_CLONED";

/// Whether `fd` lies on a read-only mount.
fn on_readonly_mount(fd: impl AsFd) -> bool {
    rustix::fs::fstatvfs(fd).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Returns when the current process already runs from a protected copy; otherwise replaces
/// the process image with one (same argv and environment) and does not return. `scratch` is
/// a directory (created if missing) where the bind mount point briefly lives.
pub fn ensure_sealed_exe(scratch: &Path) -> Result<()> {
    let exe = File::open("/proc/self/exe").map_err(LibcontainerError::io("open /proc/self/exe"))?;
    if is_sealed(&exe) || (std::env::var_os(CLONED_ENV).is_some() && on_readonly_mount(&exe)) {
        return Ok(());
    }
    let (fd, bound) = match readonly_bind(scratch) {
        Ok(fd) => (fd, true),
        Err(_) => (sealed_copy(&exe)?, false),
    };
    let to_c = |v: Vec<u8>| {
        CString::new(v).map_err(|_| LibcontainerError::InvalidSpec("argument contains NUL".into()))
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| to_c(a.into_vec()))
        .collect::<Result<_>>()?;
    let marker = bound.then(|| (CLONED_ENV.into(), "1".into()));
    let env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != CLONED_ENV)
        .chain(marker)
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            to_c(kv)
        })
        .collect::<Result<_>>()?;
    match nix::unistd::fexecve(fd.as_fd(), &args, &env) {
        Err(e) => Err(LibcontainerError::Sys {
            op: "re-exec from a protected copy".into(),
            source: e,
        }),
        Ok(never) => match never {},
    }
}

/// Bind-mounts the running binary read-only on a scratch file, opens it, and detaches the
/// mount: the descriptor keeps the now invisible read-only mount alive.
pub fn readonly_bind(scratch: &Path) -> Result<OwnedFd> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(scratch)
        .map_err(LibcontainerError::io(format!(
            "create {}",
            scratch.display()
        )))?;
    let target = scratch.join(format!(".exe-{}", std::process::id()));
    File::create(&target).map_err(LibcontainerError::io(format!(
        "create {}",
        target.display()
    )))?;
    let opened = (|| {
        mount(
            Some("/proc/self/exe"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys("bind the runtime binary"))?;
        let ro = mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(
            "remount the runtime binary read-only",
        ))
        .and_then(|()| {
            rustix::fs::open(&target, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| sys("open the bound binary", e))
        });
        let detached = umount2(&target, MntFlags::MNT_DETACH)
            .map_err(LibcontainerError::sys("detach the bound binary"));
        let fd = ro?;
        detached.map(|()| fd)
    })();
    let _ = std::fs::remove_file(&target);
    opened
}

/// Copies `src` into a new close-on-exec memfd and seals it against any change.
pub fn sealed_copy(src: &File) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "wharf-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
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
    fn bound_binary_is_read_only_and_leaves_no_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = readonly_bind(dir.path()).expect("bind");
        assert!(on_readonly_mount(&fd));
        let path = crate::fsroot::fd_path(&fd);
        assert!(
            std::fs::OpenOptions::new().write(true).open(&path).is_err(),
            "writable through the bind"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("read dir").count(),
            0,
            "scratch file left"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mounts.contains(&dir.path().display().to_string()),
            "bind left mounted"
        );
    }

    #[test]
    fn copy_is_sealed_and_identical() {
        let exe = File::open("/proc/self/exe").expect("exe");
        assert!(!is_sealed(&exe));
        let fd = sealed_copy(&exe).expect("memfd");
        assert!(is_sealed(&fd));
        let copy = File::from(fd);
        assert_eq!(
            copy.metadata().expect("meta").len(),
            exe.metadata().expect("meta").len()
        );
        // Sealed: writing through a reopened handle, or truncating it, must fail.
        let path = crate::fsroot::fd_path(&copy);
        let wrote = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"pwned"));
        assert!(wrote.is_err());
        assert!(std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .is_err());
    }
}
