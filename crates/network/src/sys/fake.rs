//! A recording fake of the kernel for unit tests: it keeps links per namespace, answers
//! lookups from them and logs every effect as one line, in order.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{InNetns, Kernel, LinkInfo, LinkKind, Netlink, SysError};
use crate::model::Subnet;

/// Fake state: links per namespace (`""` is the host), host routes, the effect log.
#[derive(Debug, Default)]
pub struct FakeState {
    /// ns -> links.
    pub links: BTreeMap<String, Vec<LinkInfo>>,
    /// Host routes `routes()` reports.
    pub routes: Vec<Subnet>,
    /// Every effect, in order.
    pub log: Vec<String>,
    /// Pinned namespaces.
    pub netns: Vec<PathBuf>,
    /// Host end of each veth -> the namespace holding its other end (the kernel deletes the
    /// pair with that namespace).
    pub veth_peers: BTreeMap<String, String>,
    /// Sysctls as last written (or set by a test).
    pub sysctls: BTreeMap<String, String>,
    /// nftables tables as last replaced.
    pub tables: BTreeMap<String, crate::firewall::Table>,
    /// Namespaces opened by `host_into`: fd `FD_BASE + i` is entry `i`.
    pub opened: Vec<String>,
    /// Link kinds the kernel has no driver for (EOPNOTSUPP), by name (`dummy`).
    pub unsupported: Vec<&'static str>,
    /// A request name that fails with EEXIST (to test rollback).
    pub fail: Option<&'static str>,
    next_index: u32,
}

/// The first fake namespace fd `host_into` hands out.
const FD_BASE: RawFd = 1000;

/// The fake kernel.
#[derive(Debug, Default)]
pub struct FakeKernel {
    /// Its state, for assertions.
    pub state: Mutex<FakeState>,
}

impl FakeKernel {
    /// The effect log so far.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct FakeNs<'a> {
    k: &'a FakeKernel,
    ns: String,
}

impl FakeNs<'_> {
    fn effect(&self, what: &'static str, line: String) -> Result<(), SysError> {
        let mut s = self.k.lock();
        if s.fail == Some(what) {
            return Err(SysError::Netlink {
                what,
                errno: libc::EEXIST,
            });
        }
        let ns = if self.ns.is_empty() { "host" } else { &self.ns };
        s.log.push(format!("{ns}: {line}"));
        Ok(())
    }

    fn add(&self, ns: &str, name: &str) {
        let mut s = self.k.lock();
        s.next_index += 1;
        let index = s.next_index + 1;
        s.links.entry(ns.to_string()).or_default().push(LinkInfo {
            index,
            name: name.to_string(),
            master: None,
            up: false,
        });
    }

    fn find(&self, index: u32) -> Option<(String, String)> {
        let s = self.k.lock();
        s.links.iter().find_map(|(ns, l)| {
            l.iter()
                .find(|l| l.index == index)
                .map(|l| (ns.clone(), l.name.clone()))
        })
    }
}

impl Netlink for FakeNs<'_> {
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, SysError> {
        let s = self.k.lock();
        Ok(s.links
            .get(&self.ns)
            .and_then(|l| l.iter().find(|l| l.name == name).cloned()))
    }

    fn links(&mut self) -> Result<Vec<LinkInfo>, SysError> {
        Ok(self
            .k
            .lock()
            .links
            .get(&self.ns)
            .cloned()
            .unwrap_or_default())
    }

    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<(), SysError> {
        self.effect("create bridge", format!("bridge {name} mtu {mtu}"))?;
        self.add(&self.ns.clone(), name);
        Ok(())
    }

    fn create_veth(
        &mut self,
        name: &str,
        mac: [u8; 6],
        mtu: u32,
        peer: &str,
        _peer_netns: RawFd,
    ) -> Result<(), SysError> {
        let mac = crate::model::format_mac(mac);
        self.effect(
            "create veth",
            format!("veth {name} {mac} mtu {mtu} peer {peer} to host"),
        )?;
        let ns = self.ns.clone();
        self.add(&ns, name);
        self.add("", peer);
        self.k.lock().veth_peers.insert(peer.to_string(), ns);
        Ok(())
    }

    fn create_link(
        &mut self,
        name: &str,
        kind: LinkKind,
        mac: Option<[u8; 6]>,
        mtu: u32,
        netns: Option<RawFd>,
    ) -> Result<(), SysError> {
        let name_of = |i: u32| self.find(i).map(|(_, n)| n).unwrap_or_default();
        let what = match kind {
            LinkKind::Dummy if self.k.lock().unsupported.contains(&"dummy") => {
                return Err(SysError::Netlink {
                    what: "create dummy link",
                    errno: libc::EOPNOTSUPP,
                })
            }
            LinkKind::Dummy => "dummy".to_string(),
            LinkKind::Ifb => "ifb".to_string(),
            LinkKind::Vlan { parent, id } => format!("vlan {id} of {}", name_of(parent)),
            LinkKind::Macvlan { parent, mode } => format!("macvlan {mode} of {}", name_of(parent)),
            LinkKind::Ipvlan {
                parent,
                mode,
                flags,
            } => format!("ipvlan {mode}/{flags} of {}", name_of(parent)),
        };
        let ns = match netns {
            Some(fd) => {
                let i = usize::try_from(fd - FD_BASE).unwrap_or(usize::MAX);
                let opened = self.k.lock().opened.get(i).cloned();
                opened.ok_or(SysError::Netlink {
                    what: "create link",
                    errno: libc::EBADF,
                })?
            }
            None => self.ns.clone(),
        };
        let mac = mac.map(crate::model::format_mac);
        self.effect(
            "create link",
            format!("link {name} {what} mac {mac:?} mtu {mtu} into {ns}"),
        )?;
        self.add(&ns, name);
        Ok(())
    }

    fn set_up(&mut self, index: u32, master: Option<u32>) -> Result<(), SysError> {
        let (_, name) = self.find(index).unwrap_or_default();
        let m = master.and_then(|m| self.find(m)).map(|(_, n)| n);
        self.effect("set link up", format!("up {name} master {m:?}"))?;
        let mut s = self.k.lock();
        for l in s.links.values_mut().flatten().filter(|l| l.index == index) {
            l.up = true;
            l.master = master;
        }
        Ok(())
    }

    fn set_port_isolated(&mut self, index: u32) -> Result<(), SysError> {
        let (_, name) = self.find(index).unwrap_or_default();
        self.effect("isolate bridge port", format!("isolate {name}"))
    }

    fn delete_link(&mut self, index: u32) -> Result<(), SysError> {
        let Some((_, name)) = self.find(index) else {
            return Ok(());
        };
        self.effect("delete link", format!("delete {name}"))?;
        let mut s = self.k.lock();
        for l in s.links.values_mut() {
            l.retain(|l| l.index != index);
        }
        Ok(())
    }

    fn add_address(&mut self, index: u32, ip: Ipv4Addr, subnet: Subnet) -> Result<(), SysError> {
        let (_, name) = self.find(index).unwrap_or_default();
        self.effect("add address", format!("addr {name} {ip}/{}", subnet.prefix))
    }

    fn add_address6(&mut self, index: u32, ip: Ipv6Addr, prefix: u8) -> Result<(), SysError> {
        let (_, name) = self.find(index).unwrap_or_default();
        self.effect("add IPv6 address", format!("addr {name} {ip}/{prefix}"))
    }

    fn add_default_route6(&mut self, gateway: Ipv6Addr) -> Result<(), SysError> {
        self.effect("add IPv6 default route", format!("default via {gateway}"))
    }

    fn add_default_route(&mut self, gateway: Option<Ipv4Addr>, oif: u32) -> Result<(), SysError> {
        match gateway {
            Some(gw) => self.effect("add default route", format!("default via {gw}")),
            None => {
                let (_, name) = self.find(oif).unwrap_or_default();
                self.effect("add default route", format!("default dev {name}"))
            }
        }
    }

    fn routes(&mut self) -> Result<Vec<(Subnet, u32)>, SysError> {
        Ok(self.k.lock().routes.iter().map(|r| (*r, 0)).collect())
    }
}

impl Kernel for FakeKernel {
    fn host(
        &self,
        f: &mut dyn FnMut(&mut dyn Netlink) -> Result<(), SysError>,
    ) -> Result<(), SysError> {
        f(&mut FakeNs {
            k: self,
            ns: String::new(),
        })
    }

    fn create_netns(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
        let ns = pin.display().to_string();
        {
            let mut s = self.lock();
            s.netns.push(pin.to_path_buf());
            s.log.push(format!("netns {ns}"));
            s.links.insert(
                ns.clone(),
                vec![LinkInfo {
                    index: 1,
                    name: "lo".into(),
                    master: None,
                    up: true,
                }],
            );
        }
        let r = f(&mut FakeNs { k: self, ns }, -1);
        if r.is_err() {
            let _ = self.remove_netns(pin);
        }
        r
    }

    fn host_into(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
        let ns = pin.display().to_string();
        let fd = {
            let mut s = self.lock();
            if !s.links.contains_key(&ns) {
                return Err(SysError::sys("open netns", nix::Error::ENOENT));
            }
            s.opened.push(ns);
            FD_BASE + s.opened.len() as RawFd - 1
        };
        f(
            &mut FakeNs {
                k: self,
                ns: String::new(),
            },
            fd,
        )
    }

    fn enter_netns(&self, pin: &Path, f: &mut InNetns<'_>) -> Result<(), SysError> {
        let ns = pin.display().to_string();
        if !self.lock().links.contains_key(&ns) {
            return Err(SysError::sys("setns", nix::Error::ENOENT));
        }
        f(&mut FakeNs { k: self, ns }, -1)
    }

    fn bind_udp(
        &self,
        pin: &Path,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::UdpSocket, SysError> {
        self.lock()
            .log
            .push(format!("{}: bind udp {addr}", pin.display()));
        std::net::UdpSocket::bind("127.0.0.1:0").map_err(SysError::io("binding", pin))
    }

    fn remove_netns(&self, pin: &Path) -> Result<(), SysError> {
        let mut s = self.lock();
        let ns = pin.display().to_string();
        if s.links.remove(&ns).is_some() {
            s.log.push(format!("rm netns {ns}"));
        }
        let gone: Vec<String> = s
            .veth_peers
            .iter()
            .filter(|(_, peer_ns)| **peer_ns == ns)
            .map(|(host_end, _)| host_end.clone())
            .collect();
        for host_end in &gone {
            s.veth_peers.remove(host_end);
        }
        for l in s.links.values_mut() {
            l.retain(|l| !gone.contains(&l.name));
        }
        s.netns.retain(|p| p != pin);
        Ok(())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), SysError> {
        let mut s = self.lock();
        s.log.push(format!("sysctl {key}={value}"));
        s.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn read_sysctl(&self, key: &str) -> Result<String, SysError> {
        Ok(self.lock().sysctls.get(key).cloned().unwrap_or_default())
    }

    fn replace_table(&self, t: &crate::firewall::Table) -> Result<(), SysError> {
        let mut s = self.lock();
        if s.fail == Some("replace table") {
            return Err(SysError::Netlink {
                what: "replace table",
                errno: libc::EPROTONOSUPPORT,
            });
        }
        let rules: usize = t.chains.iter().map(|c| c.rules.len()).sum();
        s.log.push(format!("nft {} {rules} rules", t.name));
        s.tables.insert(t.name.clone(), t.clone());
        Ok(())
    }

    fn delete_table(&self, name: &str) -> Result<(), SysError> {
        let mut s = self.lock();
        if s.tables.remove(name).is_some() {
            s.log.push(format!("nft delete {name}"));
        }
        Ok(())
    }

    fn table_exists(&self, name: &str) -> Result<bool, SysError> {
        Ok(self.lock().tables.contains_key(name))
    }

    fn nft_events(&self) -> Result<super::NftWait, SysError> {
        Err(SysError::sys("nftables events", nix::Error::ENOTSUP))
    }
}
