//! Loading and attaching the device filter with bpf(2). The only unsafe code in the crate:
//! neither libc nor nix wraps bpf(2).
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::devfilter::Insn;
use crate::CgroupError;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Lets nested cgroups (and other managers) attach their own filters too.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr`, filled by byte offset; every command here uses a prefix of it and the
/// kernel requires the rest to be zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32_at(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn fd_u32(fd: RawFd) -> u32 {
    u32::try_from(fd).unwrap_or(u32::MAX)
}

/// bpf(2). Any pointers stored in `attr` must stay valid for the call.
fn sys_bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable 128-byte buffer whose size we pass alongside; the
    // callers only store pointers to buffers that outlive this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr().cast::<c_void>(),
            attr.0.len(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

fn fd_result(op: &'static str, ret: io::Result<libc::c_long>) -> Result<OwnedFd, CgroupError> {
    let fd = ret.map_err(|source| CgroupError::Bpf { op, source })?;
    let fd = RawFd::try_from(fd).map_err(|_| CgroupError::Bpf {
        op,
        source: io::Error::other("kernel returned an impossible fd"),
    })?;
    // SAFETY: on success these bpf commands return a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load(prog: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let license = b"Apache-2.0\0";
    let count = u32::try_from(prog.len()).map_err(|_| CgroupError::Bpf {
        op: "BPF_PROG_LOAD",
        source: io::Error::other("program too long"),
    })?;
    let mut attr = Attr::new();
    attr.u32_at(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32_at(4, count)
        .u64_at(8, prog.as_ptr() as u64)
        .u64_at(16, license.as_ptr() as u64);
    let first = sys_bpf(BPF_PROG_LOAD, &mut attr);
    if first.is_ok() {
        return fd_result("BPF_PROG_LOAD", first);
    }
    // Load again with the verifier log so the error says why.
    let mut log = vec![0u8; 64 * 1024];
    attr.u32_at(24, 1)
        .u32_at(28, u32::try_from(log.len()).unwrap_or(0))
        .u64_at(32, log.as_mut_ptr() as u64);
    let second = sys_bpf(BPF_PROG_LOAD, &mut attr);
    if second.is_ok() {
        return fd_result("BPF_PROG_LOAD", second);
    }
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    let msg = String::from_utf8_lossy(&log[..end]).trim().to_string();
    let err = first.err().unwrap_or_else(|| io::Error::other("unknown"));
    Err(CgroupError::Bpf {
        op: "BPF_PROG_LOAD",
        source: io::Error::new(err.kind(), format!("{err}; verifier: {msg}")),
    })
}

/// Ids of the device programs now attached to `cgroup`.
fn query(cgroup: &File) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(cgroup.as_raw_fd()))
        .u32_at(4, BPF_CGROUP_DEVICE)
        .u64_at(16, ids.as_mut_ptr() as u64)
        .u32_at(24, u32::try_from(ids.len()).unwrap_or(0));
    sys_bpf(BPF_PROG_QUERY, &mut attr).map_err(|source| CgroupError::Bpf {
        op: "BPF_PROG_QUERY",
        source,
    })?;
    let n = usize::try_from(attr.get_u32(24))
        .unwrap_or(0)
        .min(ids.len());
    ids.truncate(n);
    Ok(ids)
}

/// Attaches `prog` to the cgroup directory `dir`, then detaches the filters this cgroup had
/// before, so re-applying resources replaces rather than stacks (the same order as runc:
/// there is never a moment without a filter).
pub(super) fn attach_device_filter(dir: &Path, prog: &[Insn]) -> Result<(), CgroupError> {
    let cgroup = File::open(dir).map_err(|e| CgroupError::io("open", dir, e))?;
    let old = query(&cgroup)?;
    let fd = load(prog)?;
    let mut attr = Attr::new();
    attr.u32_at(0, fd_u32(cgroup.as_raw_fd()))
        .u32_at(4, fd_u32(fd.as_raw_fd()))
        .u32_at(8, BPF_CGROUP_DEVICE)
        .u32_at(12, BPF_F_ALLOW_MULTI);
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| CgroupError::Bpf {
        op: "BPF_PROG_ATTACH",
        source,
    })?;
    for id in old {
        let mut attr = Attr::new();
        attr.u32_at(0, id);
        let old_fd = fd_result(
            "BPF_PROG_GET_FD_BY_ID",
            sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr),
        )?;
        let mut attr = Attr::new();
        attr.u32_at(0, fd_u32(cgroup.as_raw_fd()))
            .u32_at(4, fd_u32(old_fd.as_raw_fd()))
            .u32_at(8, BPF_CGROUP_DEVICE);
        sys_bpf(BPF_PROG_DETACH, &mut attr).map_err(|source| CgroupError::Bpf {
            op: "BPF_PROG_DETACH",
            source,
        })?;
    }
    Ok(())
}
