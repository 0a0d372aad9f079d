//! Helpers shared by Wharf's tests: a busybox root filesystem and the root-test guard.
//!
//! Tests that need root call [`require_root!`], which fails loudly instead of skipping, so a
//! run without privileges can never report a pass (house rule 8).
#![forbid(unsafe_code)]

pub mod http;
pub mod net;

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Fails the calling test unless it runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        assert!(
            $crate::is_root(),
            "this test needs root (namespaces, mounts, cgroups); run the suite as root"
        );
    };
}

/// Whether the effective uid is 0.
pub fn is_root() -> bool {
    // /proc/self/status avoids an unsafe geteuid call in a forbid(unsafe) crate.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The statically linked busybox binary; panics with the install hint when it is missing.
pub fn busybox() -> PathBuf {
    let p = PathBuf::from(BUSYBOX);
    assert!(
        p.exists(),
        "{BUSYBOX} is missing: install Debian's busybox-static (apt-get install busybox-static)"
    );
    p
}

/// Fills `root` with a minimal busybox system: /bin/busybox, a symlink per applet, the usual
/// top-level directories, and /etc/passwd and /etc/group with root and nobody.
pub fn make_busybox_rootfs(root: &Path) -> io::Result<()> {
    let bin = root.join("bin");
    fs::create_dir_all(&bin)?;
    fs::copy(busybox(), bin.join("busybox"))?;
    for dir in [
        "dev", "proc", "sys", "tmp", "etc", "root", "home", "var", "usr/bin", "sbin",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    let list = Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = bin.join(applet);
        if applet != "busybox" && fs::symlink_metadata(&link).is_err() {
            symlink("busybox", link)?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// Writes a tar of a fresh busybox rootfs to `out` (via the host's `tar`, kept out of the code
/// under test so the fixture is an independent oracle).
pub fn busybox_rootfs_tar(out: &Path) -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    make_busybox_rootfs(dir.path())?;
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("tar exited with {status}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_shell_and_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_busybox_rootfs(dir.path()).expect("rootfs");
        assert!(dir.path().join("bin/sh").symlink_metadata().is_ok());
        let passwd = fs::read_to_string(dir.path().join("etc/passwd")).expect("passwd");
        assert!(passwd.starts_with("root:x:0:0"));
    }
}

/// xorshift64*: a seeded generator for tests whose inputs must reproduce exactly.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items` (non-empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
