//! The compiled program and the one syscall that installs it.
#![allow(unsafe_code)]

use libc::sock_filter;

use crate::SeccompError;

/// A compiled filter program (classic BPF `sock_filter` instructions) plus the install flags.
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<sock_filter>,
    flags: libc::c_ulong,
}

impl Filter {
    pub(crate) fn new(program: Vec<sock_filter>, flags: libc::c_ulong) -> Filter {
        Filter { program, flags }
    }

    /// The BPF program.
    pub fn instructions(&self) -> &[sock_filter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// Installs the filter on the calling thread (all threads with TSYNC) via
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`.
    ///
    /// Setting `PR_SET_NO_NEW_PRIVS` first is the caller's job (without it the kernel demands
    /// CAP_SYS_ADMIN). Nothing here allocates or locks, so it may run in a forked child of a
    /// multi-threaded parent just before `execve`.
    pub fn install(&self) -> Result<(), SeccompError> {
        let len = u16::try_from(self.program.len()).map_err(|_| SeccompError::TooLarge {
            len: self.program.len(),
            max: crate::bpf::BPF_MAXINSNS,
        })?;
        let prog = libc::sock_fprog {
            len,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `len` initialised instructions owned by `self`, which outlive
        // the call; the kernel only reads (copies) the program and does not keep the pointer.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match ret {
            0 => Ok(()),
            tid if tid > 0 => Err(SeccompError::TsyncFailed { tid }),
            _ => Err(SeccompError::Install(std::io::Error::last_os_error())),
        }
    }
}
