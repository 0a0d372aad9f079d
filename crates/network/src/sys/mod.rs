//! The kernel effects the network crate needs, behind two small traits so the drivers are
//! unit-tested against a recording fake: [`Netlink`] (links, addresses, routes in one
//! namespace) and [`Kernel`] (namespaces, sysctls, a host netlink socket, nftables).

pub mod fake;
pub mod netlink;
pub mod netns;
pub mod nft;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::model::Subnet;

/// A kernel operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// The step.
        what: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// The kernel refused a netlink request.
    #[error("{what}: {}", nix::Error::from_raw(*errno))]
    Netlink {
        /// The request.
        what: &'static str,
        /// The (positive) errno.
        errno: i32,
    },
    /// A file under /proc or a pin.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl SysError {
    pub(crate) fn sys(what: &'static str, source: nix::Error) -> SysError {
        SysError::Sys { what, source }
    }

    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SysError {
        let path = path.to_path_buf();
        move |source| SysError::Io { what, path, source }
    }
}

/// A network interface as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// The bridge it is enslaved to.
    pub master: Option<u32>,
    /// IFF_UP.
    pub up: bool,
}

/// A link [`Netlink::create_link`] makes; parents are ifindexes in the requesting namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A dummy: the parent of a macvlan/ipvlan network given none.
    Dummy,
    /// An IFB, which drops what it is sent: the same parent where the kernel has no dummy
    /// driver (Firecracker's kernels build ifb in, not dummy).
    Ifb,
    /// An 802.1Q VLAN `id` on `parent` (`-o parent=eth0.10`).
    Vlan {
        /// The trunk link.
        parent: u32,
        /// 1..=4094.
        id: u16,
    },
    /// A macvlan of `parent`; `mode` is the kernel's `MACVLAN_MODE_*` bit.
    Macvlan {
        /// The host interface.
        parent: u32,
        /// private 1, vepa 2, bridge 4, passthru 8.
        mode: u32,
    },
    /// An ipvlan of `parent`.
    Ipvlan {
        /// The host interface.
        parent: u32,
        /// l2 0, l3 1, l3s 2.
        mode: u16,
        /// bridge 0, private 1, vepa 2.
        flags: u16,
    },
}

impl LinkKind {
    /// The same kind on the parent with ifindex `parent` (the dummy and IFB have none).
    pub fn on(self, parent: u32) -> LinkKind {
        match self {
            LinkKind::Dummy | LinkKind::Ifb => self,
            LinkKind::Vlan { id, .. } => LinkKind::Vlan { parent, id },
            LinkKind::Macvlan { mode, .. } => LinkKind::Macvlan { parent, mode },
            LinkKind::Ipvlan { mode, flags, .. } => LinkKind::Ipvlan {
                parent,
                mode,
                flags,
            },
        }
    }
}

/// Route netlink requests in one network namespace.
pub trait Netlink {
    /// The link called `name`, if any.
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, SysError>;
    /// Every link.
    fn links(&mut self) -> Result<Vec<LinkInfo>, SysError>;
    /// Creates a Linux bridge (down).
    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<(), SysError>;
    /// Creates a veth pair: `name` here with `mac`, `peer` moved into the namespace `peer_netns`.
    fn create_veth(
        &mut self,
        name: &str,
        mac: [u8; 6],
        mtu: u32,
        peer: &str,
        peer_netns: RawFd,
    ) -> Result<(), SysError>;
    /// Creates a link `name` (down), straight into the namespace `netns` when given, with
    /// `mac` when given and `mtu` unless 0.
    fn create_link(
        &mut self,
        name: &str,
        kind: LinkKind,
        mac: Option<[u8; 6]>,
        mtu: u32,
        netns: Option<RawFd>,
    ) -> Result<(), SysError>;
    /// Sets a link up, enslaving it to `master` first when given.
    fn set_up(&mut self, index: u32, master: Option<u32>) -> Result<(), SysError>;
    /// Makes a bridge port isolated: it can talk to the bridge (the host) but not to other
    /// isolated ports (`icc=false`).
    fn set_port_isolated(&mut self, index: u32) -> Result<(), SysError>;
    /// Deletes a link (a veth takes its peer along); fine if gone.
    fn delete_link(&mut self, index: u32) -> Result<(), SysError>;
    /// Adds `ip` in `subnet` to a link; fine if present.
    fn add_address(&mut self, index: u32, ip: Ipv4Addr, subnet: Subnet) -> Result<(), SysError>;
    /// Adds IPv6 `ip`/`prefix` to a link, usable at once (no duplicate address detection:
    /// IPAM made it unique); fine if present.
    fn add_address6(&mut self, index: u32, ip: Ipv6Addr, prefix: u8) -> Result<(), SysError>;
    /// Adds the IPv6 default route via `gateway`.
    fn add_default_route6(&mut self, gateway: Ipv6Addr) -> Result<(), SysError>;
    /// Adds the default route via `gateway`, or straight out of link `oif` without one
    /// (ipvlan l3).
    fn add_default_route(&mut self, gateway: Option<Ipv4Addr>, oif: u32) -> Result<(), SysError>;
    /// Destinations and output links of the IPv4 routes in the main table (the default
    /// route left out).
    fn routes(&mut self) -> Result<Vec<(Subnet, u32)>, SysError>;
}

/// Work to do inside a fresh namespace: its netlink socket and an fd of the host namespace.
pub type InNetns<'a> = dyn FnMut(&mut dyn Netlink, RawFd) -> Result<(), SysError> + Send + 'a;

/// Namespaces, sysctls and the host's netlink socket.
pub trait Kernel: Send + Sync {
    /// Runs `f` with a netlink socket in the host namespace.
    fn host(
        &self,
        f: &mut dyn FnMut(&mut dyn Netlink) -> Result<(), SysError>,
    ) -> Result<(), SysError>;
    /// Creates a network namespace pinned at `pin`, brings `lo` up and runs `f` inside it, on
    /// a short-lived thread of its own (never the caller's). Removes the pin if anything fails.
    fn create_netns(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError>;
    /// Runs `f` with the host's netlink socket and an fd of the namespace pinned at `pin`,
    /// to create links straight into it.
    fn host_into(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError>;
    /// Runs `f` inside the existing namespace pinned at `pin`, on a short-lived thread.
    fn enter_netns(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError>;
    /// A UDP socket bound to `addr` inside the namespace pinned at `pin` (it stays there).
    fn bind_udp(
        &self,
        pin: &Path,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::UdpSocket, SysError>;
    /// Unpins and deletes a namespace; fine if absent.
    fn remove_netns(&self, pin: &Path) -> Result<(), SysError>;
    /// Writes a sysctl under /proc/sys (`net/ipv4/ip_forward`).
    fn sysctl(&self, key: &str, value: &str) -> Result<(), SysError>;
    /// Reads a sysctl under /proc/sys, trimmed.
    fn read_sysctl(&self, key: &str) -> Result<String, SysError>;
    /// Makes the host's nftables table `t.name` exactly `t` in one atomic batch (its kept
    /// chains created when missing, never flushed).
    fn replace_table(&self, t: &crate::firewall::Table) -> Result<(), SysError>;
    /// Deletes nftables table `name`; fine if absent.
    fn delete_table(&self, name: &str) -> Result<(), SysError>;
    /// Whether nftables table `name` exists.
    fn table_exists(&self, name: &str) -> Result<bool, SysError>;
    /// Subscribes to nftables changes on the host; the returned call blocks until the next.
    fn nft_events(&self) -> Result<NftWait, SysError>;
}

/// Blocks until nftables changes (see [`Kernel::nft_events`]).
pub type NftWait = Box<dyn FnMut() -> Result<(), SysError> + Send>;
