//! Per-container network namespaces for network mode `none`/default: a fresh netns with only
//! loopback, brought up, and pinned by a bind mount at `<exec-root>/netns/<id>` so its path
//! can go into the spec and it survives the daemon.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use wharf_errdefs::{Classify, ErrorKind};

/// Netns errors.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A system call failed.
    #[error("network namespace {path}: {what}: {source}")]
    Sys {
        /// The pin path.
        path: PathBuf,
        /// The step.
        what: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// The kernel refused to bring loopback up.
    #[error("network namespace {path}: setting lo up: netlink error {errno}")]
    Netlink {
        /// The pin path.
        path: PathBuf,
        /// The kernel's (negative) errno.
        errno: i32,
    },
}

impl Classify for NetnsError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Creates and pins the namespaces under one directory.
#[derive(Debug, Clone)]
pub struct NetnsManager {
    dir: PathBuf,
    proc_root: PathBuf,
}

impl NetnsManager {
    /// Namespaces are pinned under `dir`; `proc_root` is normally `/proc`.
    pub fn new(dir: &Path, proc_root: &Path) -> NetnsManager {
        NetnsManager {
            dir: dir.to_path_buf(),
            proc_root: proc_root.to_path_buf(),
        }
    }

    /// Where `id`'s namespace is pinned.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Creates `id`'s namespace with loopback up. Runs on a throw-away thread because
    /// `unshare(CLONE_NEWNET)` moves the calling thread, which must not be a runtime worker.
    pub fn create(&self, id: &str) -> Result<PathBuf, NetnsError> {
        let path = self.path(id);
        let (p, proc_root) = (path.clone(), self.proc_root.clone());
        let sys = |what, source| NetnsError::Sys {
            path: path.clone(),
            what,
            source,
        };
        fs::create_dir_all(&self.dir).map_err(|e| {
            sys(
                "creating dir",
                nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        let joined = std::thread::spawn(move || -> Result<(), NetnsError> {
            let sys = |what, source| NetnsError::Sys {
                path: p.clone(),
                what,
                source,
            };
            fs::File::create(&p).map_err(|e| {
                sys(
                    "creating pin file",
                    nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })?;
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| sys("unshare", e))?;
            let own = proc_root.join("thread-self/ns/net");
            mount(Some(&own), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| sys("bind mount", e))?;
            loopback_up(&p)
        })
        .join();
        let res = match joined {
            Ok(r) => r,
            Err(_) => Err(sys("creating", nix::Error::EIO)),
        };
        if res.is_err() {
            let _ = self.remove(id);
        }
        res.map(|()| path)
    }

    /// Unpins and deletes `id`'s namespace; fine if absent.
    pub fn remove(&self, id: &str) -> Result<(), NetnsError> {
        let path = self.path(id);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => {
                return Err(NetnsError::Sys {
                    path,
                    what: "unmount",
                    source: e,
                })
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetnsError::Sys {
                path,
                what: "remove",
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
            }),
        }
    }

    /// Ids with a pinned namespace (for reconciliation at start).
    pub fn list(&self) -> Vec<String> {
        fs::read_dir(&self.dir)
            .map(|r| {
                r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The RTM_NEWLINK request setting IFF_UP on ifindex 1 (loopback is always 1 in a new netns).
fn lo_up_message() -> [u8; 32] {
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST_ACK: u16 = 0x1 | 0x4;
    const IFF_UP: u32 = 1;
    let mut m = [0u8; 32];
    m[0..4].copy_from_slice(&32u32.to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    m[6..8].copy_from_slice(&NLM_F_REQUEST_ACK.to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // ifinfomsg: family, pad, type (0), index, flags, change.
    m[20..24].copy_from_slice(&1i32.to_ne_bytes());
    m[24..28].copy_from_slice(&IFF_UP.to_ne_bytes());
    m[28..32].copy_from_slice(&IFF_UP.to_ne_bytes());
    m
}

/// Reads the error code of an NLMSG_ERROR answer (0 = ack).
fn ack_errno(resp: &[u8]) -> Option<i32> {
    const NLMSG_ERROR: u16 = 2;
    let ty = u16::from_ne_bytes([*resp.get(4)?, *resp.get(5)?]);
    if ty != NLMSG_ERROR {
        return None;
    }
    Some(i32::from_ne_bytes([
        *resp.get(16)?,
        *resp.get(17)?,
        *resp.get(18)?,
        *resp.get(19)?,
    ]))
}

fn loopback_up(path: &Path) -> Result<(), NetnsError> {
    let sys = |what, source| NetnsError::Sys {
        path: path.to_path_buf(),
        what,
        source,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| sys("netlink socket", e))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| sys("netlink bind", e))?;
    sendto(
        fd.as_raw_fd(),
        &lo_up_message(),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| sys("netlink send", e))?;
    let mut buf = [0u8; 512];
    let n =
        recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| sys("netlink recv", e))?;
    match ack_errno(&buf[..n]) {
        Some(0) => Ok(()),
        Some(errno) => Err(NetnsError::Netlink {
            path: path.to_path_buf(),
            errno,
        }),
        None => Err(NetnsError::Netlink {
            path: path.to_path_buf(),
            errno: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let m = lo_up_message();
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 32);
        assert_eq!(i32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 1);
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(-1));
        assert_eq!(ack_errno(&[0u8; 4]), None);
    }

    #[test]
    fn creates_netns_with_loopback_up() {
        wharf_testutil::require_root!();
        let dir = tempfile::tempdir().expect("tempdir");
        let m = NetnsManager::new(&dir.path().join("netns"), Path::new("/proc"));
        let id = format!("t{}", std::process::id());
        struct Cleanup<'a>(&'a NetnsManager, &'a str);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                let _ = self.0.remove(self.1);
            }
        }
        let _g = Cleanup(&m, &id);
        let p = m.create(&id).expect("create");
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", p.display()))
            .args(["ip", "-o", "link", "show"])
            .output()
            .expect("nsenter");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("lo:") && text.contains(",UP"), "{text}");
        assert_eq!(m.list(), [id.clone()]);
        m.remove(&id).expect("remove");
        assert!(!p.exists());
    }
}
