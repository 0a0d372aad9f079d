//! The real [`Kernel`]: network namespaces pinned by a bind mount (so a path can go into the
//! OCI spec and the namespace outlives the daemon), sysctls, and a shared host netlink socket.
//! Namespace work runs on a scoped thread that ends with it: `unshare(CLONE_NEWNET)` moves
//! the calling thread, which must never be a runtime worker or be reused afterwards.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::netlink::RouteSocket;
use super::{InNetns, Kernel, Netlink, SysError};

/// Linux, through /proc and netlink.
pub struct Linux {
    proc_root: PathBuf,
    host: Mutex<Option<RouteSocket>>,
}

impl Linux {
    /// `proc_root` is normally `/proc`.
    pub fn new(proc_root: &Path) -> Linux {
        Linux {
            proc_root: proc_root.to_path_buf(),
            host: Mutex::new(None),
        }
    }
}

fn in_new_netns(proc_root: &Path, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
    // The host namespace, opened before leaving it, so the peer of a veth can go back there.
    let own = proc_root.join("thread-self/ns/net");
    let host_ns = fs::File::open(&own).map_err(SysError::io("opening", &own))?;
    fs::File::create(pin).map_err(SysError::io("creating pin file", pin))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| SysError::sys("unshare", e))?;
    mount(
        Some(&own),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| SysError::sys("pinning netns", e))?;
    let mut nl = RouteSocket::open()?;
    // Loopback is always ifindex 1 in a new namespace.
    nl.set_up(1, None)?;
    f(&mut nl, host_ns.as_raw_fd())
}

fn in_existing_netns(proc_root: &Path, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
    let own = proc_root.join("thread-self/ns/net");
    let host_ns = fs::File::open(&own).map_err(SysError::io("opening", &own))?;
    let target = fs::File::open(pin).map_err(SysError::io("opening", pin))?;
    nix::sched::setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| SysError::sys("setns", e))?;
    let mut nl = RouteSocket::open()?;
    f(&mut nl, host_ns.as_raw_fd())
}

impl Kernel for Linux {
    fn host(
        &self,
        f: &mut dyn FnMut(&mut dyn Netlink) -> Result<(), SysError>,
    ) -> Result<(), SysError> {
        let mut g = self.host.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(RouteSocket::open()?);
        }
        let Some(nl) = g.as_mut() else {
            return Err(SysError::sys("netlink socket", nix::Error::EIO));
        };
        let r = f(nl);
        if r.is_err() {
            // A failed exchange may leave unread answers: start the next one afresh.
            *g = None;
        }
        r
    }

    fn create_netns(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
        if let Some(dir) = pin.parent() {
            fs::create_dir_all(dir).map_err(SysError::io("creating", dir))?;
        }
        let proc_root = self.proc_root.as_path();
        let res = std::thread::scope(|s| {
            s.spawn(|| in_new_netns(proc_root, pin, f))
                .join()
                .unwrap_or_else(|_| Err(SysError::sys("netns thread", nix::Error::EIO)))
        });
        if res.is_err() {
            let _ = self.remove_netns(pin);
        }
        res
    }

    fn host_into(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
        let target = fs::File::open(pin).map_err(SysError::io("opening", pin))?;
        self.host(&mut |nl| f(nl, target.as_raw_fd()))
    }

    fn enter_netns(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
        let proc_root = self.proc_root.as_path();
        std::thread::scope(|s| {
            s.spawn(|| in_existing_netns(proc_root, pin, f))
                .join()
                .unwrap_or_else(|_| Err(SysError::sys("netns thread", nix::Error::EIO)))
        })
    }

    fn bind_udp(
        &self,
        pin: &Path,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::UdpSocket, SysError> {
        let mut sock = None;
        self.enter_netns(pin, &mut |_, _| {
            sock = Some(std::net::UdpSocket::bind(addr).map_err(SysError::io("binding", pin))?);
            Ok(())
        })?;
        sock.ok_or(SysError::sys("binding", nix::Error::EIO))
    }

    fn remove_netns(&self, pin: &Path) -> Result<(), SysError> {
        match umount2(pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(SysError::sys("unmounting netns pin", e)),
        }
        match fs::remove_file(pin) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(SysError::io("removing", pin)(e))
            }
            _ => Ok(()),
        }
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), SysError> {
        let p = self.proc_root.join("sys").join(key);
        if fs::read_to_string(&p).is_ok_and(|v| v.trim() == value) {
            return Ok(());
        }
        fs::write(&p, value).map_err(SysError::io("writing", &p))
    }

    fn read_sysctl(&self, key: &str) -> Result<String, SysError> {
        let p = self.proc_root.join("sys").join(key);
        let v = fs::read_to_string(&p).map_err(SysError::io("reading", &p))?;
        Ok(v.trim().to_string())
    }

    fn replace_table(&self, t: &crate::firewall::Table) -> Result<(), SysError> {
        super::nft::replace_table(t)
    }

    fn delete_table(&self, name: &str) -> Result<(), SysError> {
        super::nft::delete_table(name)
    }

    fn table_exists(&self, name: &str) -> Result<bool, SysError> {
        super::nft::table_exists(name)
    }

    fn nft_events(&self) -> Result<super::NftWait, SysError> {
        let mut ev = super::nft::Events::open()?;
        Ok(Box::new(move || ev.wait()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_netns_with_loopback_up() {
        wharf_testutil::require_root!();
        let dir = tempfile::tempdir().expect("tempdir");
        let k = Linux::new(Path::new("/proc"));
        let pin = dir
            .path()
            .join("netns")
            .join(format!("t{}", std::process::id()));
        struct Cleanup<'a>(&'a Linux, &'a Path);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                let _ = self.0.remove_netns(self.1);
            }
        }
        let _g = Cleanup(&k, &pin);
        let mut seen = Vec::new();
        k.create_netns(&pin, &mut |nl, _| {
            seen = nl.links()?;
            Ok(())
        })
        .expect("create");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].name == "lo" && seen[0].up, "{seen:?}");
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", pin.display()))
            .args(["ip", "-o", "link", "show"])
            .output()
            .expect("nsenter");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("lo:") && text.contains(",UP"), "{text}");
        k.remove_netns(&pin).expect("remove");
        assert!(!pin.exists());
        k.remove_netns(&pin).expect("remove twice");
    }

    #[test]
    fn a_failure_inside_leaves_no_pin() {
        wharf_testutil::require_root!();
        let dir = tempfile::tempdir().expect("tempdir");
        let k = Linux::new(Path::new("/proc"));
        let pin = dir.path().join("x");
        let r = k.create_netns(&pin, &mut |_, _| {
            Err(SysError::sys("test", nix::Error::EPERM))
        });
        assert!(r.is_err());
        assert!(!pin.exists());
    }
}
