//! Mount effects behind a small trait: the kernel ([`SysMounter`]) or a recording fake.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::MsFlags;

/// mount(2), umount(2) and a mountinfo lookup.
pub trait Mounter: Send + Sync {
    /// Mounts `device` of `fstype` on `target` with `mount(8)`-style options `opts`.
    fn mount(&self, device: &str, target: &Path, fstype: &str, opts: &str) -> io::Result<()>;
    /// Unmounts `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Whether something is mounted exactly on `target`.
    fn is_mounted(&self, target: &Path) -> io::Result<bool>;
}

/// Splits `mount(8)` options into mount(2) flags and the data string (what is left).
pub fn parse_options(opts: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let (set, clear) = match o {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other);
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

/// The kernel.
#[derive(Debug, Default)]
pub struct SysMounter;

impl Mounter for SysMounter {
    fn mount(&self, device: &str, target: &Path, fstype: &str, opts: &str) -> io::Result<()> {
        let (flags, data) = parse_options(opts);
        let fstype = (!fstype.is_empty()).then_some(fstype);
        let data = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(Some(device), target, fstype, flags, data)?;
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            // A bind ignores MS_RDONLY until remounted.
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            nix::mount::mount(None::<&str>, target, None::<&str>, ro, None::<&str>)?;
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)?;
        Ok(())
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        let found = mount_points(&text).any(|p| p == target);
        Ok(found)
    }
}

/// The mount points of a mountinfo text (field 5, octal escapes decoded).
pub fn mount_points(mountinfo: &str) -> impl Iterator<Item = PathBuf> + '_ {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A recording fake for tests: mounts are remembered, never made.
#[derive(Debug, Default)]
pub struct FakeMounter {
    mounted: Mutex<BTreeSet<PathBuf>>,
    /// Every call, in order (`mount <device> <target> <type> <opts>` / `unmount <target>`).
    pub calls: Mutex<Vec<String>>,
}

impl FakeMounter {
    /// Pretends `target` was mounted before we started.
    pub fn preset(&self, target: &Path) {
        self.mounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.to_path_buf());
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Mounter for FakeMounter {
    fn mount(&self, device: &str, target: &Path, fstype: &str, opts: &str) -> io::Result<()> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!(
                "mount {device} {} {fstype} {opts}",
                target.display()
            ));
        self.mounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.to_path_buf());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("unmount {}", target.display()));
        self.mounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target);
        Ok(())
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        Ok(self
            .mounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse_options("size=100m,uid=1000,ro,noexec");
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC));
        assert_eq!(d, "size=100m,uid=1000");
        let (f, d) = parse_options("bind,ro,rw");
        assert!(f.contains(MsFlags::MS_BIND) && !f.contains(MsFlags::MS_RDONLY));
        assert_eq!(d, "");
    }

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text =
            "36 35 98:0 / /mnt/a\\040b rw - ext3 /dev/root rw\n37 35 0:1 / /x rw - tmpfs t rw\n";
        let v: Vec<PathBuf> = mount_points(text).collect();
        assert_eq!(v, [PathBuf::from("/mnt/a b"), PathBuf::from("/x")]);
    }
}
