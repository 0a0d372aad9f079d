//! Which namespaces a container gets new and which it joins by path.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{LibcontainerError, Result};

/// The clone flag for a namespace type.
pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The file name under `/proc/<pid>/ns/` for a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Namespaces split into those to create and those to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    /// Flags for `unshare` (new namespaces).
    pub new: CloneFlags,
    /// Namespaces to `setns` into, user namespace first so it governs the others.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl NamespacePlan {
    /// Splits the spec's list.
    pub fn from_spec(list: &[LinuxNamespace]) -> NamespacePlan {
        let mut plan = NamespacePlan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        for ns in list {
            match ns.path() {
                Some(p) => plan.join.push((ns.typ(), p.clone())),
                None => plan.new |= clone_flag(ns.typ()),
            }
        }
        plan.join
            .sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        plan
    }

    /// Whether the container gets a namespace of this type at all (new or joined).
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(clone_flag(t)) || self.join.iter().any(|(j, _)| *j == t)
    }

    /// Whether a new user namespace is created (so id maps must be written).
    pub fn new_user(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWUSER)
    }

    /// Opens every namespace to join; done before any setns so a path resolves in the
    /// runtime's own mount namespace.
    pub fn open_joins(&self) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
        self.join
            .iter()
            .map(|(t, p)| {
                let f = std::fs::File::open(p).map_err(|e| {
                    LibcontainerError::InvalidSpec(format!(
                        "namespace {t} path {}: {e}",
                        p.display()
                    ))
                })?;
                Ok((*t, OwnedFd::from(f)))
            })
            .collect()
    }
}

/// Enters each opened namespace.
pub fn join_all(fds: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
    for (t, fd) in fds {
        nix::sched::setns(fd, clone_flag(*t))
            .map_err(LibcontainerError::sys(format!("setns {t}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_new_and_joined_user_first() {
        let list: Vec<LinuxNamespace> = serde_json::from_value(serde_json::json!([
            {"type": "pid"},
            {"type": "network", "path": "/run/netns/x"},
            {"type": "mount"},
            {"type": "user", "path": "/proc/1/ns/user"}
        ]))
        .expect("ns");
        let plan = NamespacePlan::from_spec(&list);
        assert_eq!(plan.new, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS);
        assert_eq!(plan.join[0].0, LinuxNamespaceType::User);
        assert_eq!(plan.join[1].0, LinuxNamespaceType::Network);
        assert!(plan.has(LinuxNamespaceType::Network));
        assert!(!plan.has(LinuxNamespaceType::Uts));
        assert!(!plan.new_user());
    }

    #[test]
    fn proc_names() {
        assert_eq!(proc_name(LinuxNamespaceType::Network), "net");
        assert_eq!(proc_name(LinuxNamespaceType::Mount), "mnt");
    }
}
