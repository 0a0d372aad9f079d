//! Turning the current (forked) process into the spec's process: credentials, capabilities,
//! limits, working directory, and finally `execve`. Shared by container init and `exec`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::Process;
use wharf_seccomp::Filter;

use crate::capabilities::{self, CapSets};
use crate::error::{LibcontainerError, Result};
use crate::rlimit;

/// Everything needed to finish a process after namespaces and rootfs are in place.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    /// The spec's process.
    pub process: Process,
    /// The container's compiled seccomp filter, if any (compiled before forking so profile
    /// errors surface in the runtime, not in a half-built container).
    pub seccomp: Option<Filter>,
    /// Descriptors 3.. up to 3+N stay open in the new process.
    pub preserve_fds: i32,
}

/// A resolved program and its argv/envp, ready for execve.
#[derive(Debug)]
pub struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s)
        .map_err(|_| LibcontainerError::InvalidSpec(format!("{s:?} contains a NUL byte")))
}

fn errno(op: &str) -> LibcontainerError {
    LibcontainerError::Sys {
        op: op.into(),
        source: nix::Error::last(),
    }
}

/// Finds `prog` like execvp, but in the container's PATH (from its env, not ours).
pub fn find_executable(
    prog: &str,
    env: &[String],
    is_exec: impl Fn(&Path) -> bool,
) -> Result<PathBuf> {
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return if is_exec(&p) {
            Ok(p)
        } else {
            // runc's wording: the docker CLI maps "no such file or directory" to exit 127 and
            // "permission denied" to 126.
            let why = if p.exists() {
                "permission denied".to_string()
            } else {
                format!("stat {prog}: no such file or directory")
            };
            Err(LibcontainerError::InvalidSpec(format!(
                "exec: {prog:?}: {why}"
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(prog))
        .find(|p| is_exec(p))
        .ok_or_else(|| {
            LibcontainerError::InvalidSpec(format!(
                "exec: {prog:?}: executable file not found in $PATH"
            ))
        })
}

fn is_executable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file()
}

/// The home directory of `uid` from an /etc/passwd text.
pub fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

impl ProcessPlan {
    /// Applies everything that needs privileges, then drops to the spec's user and
    /// capabilities. Returns the resolved program for [`exec`]. Runs inside the container.
    #[allow(unsafe_code)]
    pub fn apply(&self) -> Result<Exec> {
        let p = &self.process;
        rlimit::apply(p.rlimits().as_deref().unwrap_or_default())?;
        if let Some(adj) = p.oom_score_adj() {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
                LibcontainerError::NotSupported(format!("cannot set oomScoreAdj {adj}: {e}"))
            })?;
        }
        self.enter_cwd()?;
        if let Some(mask) = p.user().umask() {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        } else {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        }
        // Before any filter is loaded: a profile need not allow close_range (runc passes
        // bundles whose allow list omits it). CLOEXEC only marks them, so our own channel and
        // fifo stay usable until the exec.
        close_inherited_fds(self.preserve_fds)?;
        let nnp = p.no_new_privileges().unwrap_or(false);
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter: load it while
        // we still have it (as runc does); the profile must then allow our remaining syscalls.
        if let (Some(filter), false) = (&self.seccomp, nnp) {
            filter.install()?;
        }
        let caps = CapSets::from_spec(p.capabilities().as_ref())
            .limited_to(capabilities::current_bounding());
        capabilities::drop_bounding(caps.bounding)?;
        // SAFETY: PR_SET_KEEPCAPS takes an integer; keeps permitted caps across the uid change.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err(errno("PR_SET_KEEPCAPS"));
        }
        let user = p.user();
        let gids: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        // setgroups is refused in a user namespace whose setgroups file says deny; only fail
        // when the spec actually asks for supplementary groups.
        if let Err(e) = nix::unistd::setgroups(&gids) {
            if !gids.is_empty() {
                return Err(LibcontainerError::Sys {
                    op: "setgroups".into(),
                    source: e,
                });
            }
        }
        let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
        nix::unistd::setresgid(gid, gid, gid)
            .map_err(LibcontainerError::sys(format!("setgid {gid}")))?;
        nix::unistd::setresuid(uid, uid, uid)
            .map_err(LibcontainerError::sys(format!("setuid {uid}")))?;
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        capabilities::apply(&caps)?;
        let exec = self.resolve(user.uid())?;
        if nnp {
            // SAFETY: PR_SET_NO_NEW_PRIVS takes integers and touches no memory.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(errno("PR_SET_NO_NEW_PRIVS"));
            }
            if let Some(filter) = &self.seccomp {
                filter.install()?;
            }
        }
        Ok(exec)
    }

    /// Enters `cwd` and proves it lies inside the container: a leaked host directory fd
    /// (`/proc/self/fd/N`, CVE-2024-21626) would leave getcwd unable to name it.
    fn enter_cwd(&self) -> Result<()> {
        let cwd = self.process.cwd();
        nix::unistd::chdir(cwd).map_err(LibcontainerError::sys(format!(
            "chdir to cwd {}",
            cwd.display()
        )))?;
        match nix::unistd::getcwd() {
            Ok(real) if real.is_absolute() && real.starts_with("/") => Ok(()),
            _ => Err(LibcontainerError::InvalidSpec(format!(
                "cwd {} is outside the container",
                cwd.display()
            ))),
        }
    }

    /// Creates a missing `cwd` (container init does this after pivot_root, so the path is
    /// resolved inside the container; `exec` never creates it).
    pub fn ensure_cwd(&self) -> Result<()> {
        let cwd = self.process.cwd();
        if !cwd.exists() {
            std::fs::create_dir_all(cwd).map_err(LibcontainerError::io(format!(
                "create cwd {}",
                cwd.display()
            )))?;
        }
        Ok(())
    }

    fn resolve(&self, uid: u32) -> Result<Exec> {
        let p = &self.process;
        let args = p.args().as_deref().unwrap_or_default();
        let prog = args
            .first()
            .ok_or_else(|| LibcontainerError::InvalidSpec("process.args is empty".into()))?;
        let mut env: Vec<String> = p.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            let home = std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|s| home_of(&s, uid));
            env.push(format!("HOME={}", home.unwrap_or_else(|| "/".into())));
        }
        let path = find_executable(prog, &env, is_executable)?;
        Ok(Exec {
            path: CString::new(path.as_os_str().as_bytes())
                .map_err(|_| LibcontainerError::InvalidSpec("program path contains NUL".into()))?,
            args: args.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
            env: env.iter().map(|e| cstr(e)).collect::<Result<_>>()?,
        })
    }
}

/// Marks every descriptor above the preserved range close-on-exec, so nothing of the
/// runtime (state dir, cgroup files, sockets) reaches the container.
pub fn close_inherited_fds(preserve: i32) -> Result<()> {
    close_range(
        3 + preserve.max(0) as u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    )
}

/// close_range(2) on `first..=last`.
#[allow(unsafe_code)]
fn close_range(first: u32, last: u32, flags: libc::c_uint) -> Result<()> {
    // SAFETY: close_range only closes descriptors or sets their flags; callers pass ranges
    // holding nothing they use afterwards.
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) } != 0 {
        return Err(errno("close_range"));
    }
    Ok(())
}

/// Closes every descriptor from 3 upwards except `keep`. Runs right after fork, so the
/// caller's other descriptors (pipes of whoever ran `create`) are not held open by a container
/// that outlives the command.
pub fn close_fds_except(keep: &[std::os::fd::RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .collect();
    keep.sort_unstable();
    let mut first = 3;
    for k in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if k > first {
            close_range(first, k - 1, 0)?;
        }
        first = first.max(k.saturating_add(1));
    }
    Ok(())
}

impl Exec {
    /// Replaces the process image; returns only on failure.
    pub fn exec(&self) -> LibcontainerError {
        // execve keeps the signal mask: the caller's (a shim blocks SIGCHLD for its signalfd)
        // must not leak into the container's processes.
        let empty = nix::sys::signal::SigSet::empty();
        if let Err(e) = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&empty),
            None,
        ) {
            return LibcontainerError::Sys {
                op: "reset the signal mask".into(),
                source: e,
            };
        }
        match nix::unistd::execve(&self.path, &self.args, &self.env) {
            Err(e) => LibcontainerError::Sys {
                op: format!("exec {:?}", self.path),
                source: e,
            },
            Ok(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_uses_container_env() {
        let env = vec!["PATH=/a:/b".to_string()];
        let found = find_executable("sh", &env, |p| p == Path::new("/b/sh")).expect("found");
        assert_eq!(found, PathBuf::from("/b/sh"));
        let e = find_executable("nope", &env, |_| false).unwrap_err();
        assert!(e.to_string().contains("not found in $PATH"));
        assert!(find_executable("/bin/x", &env, |_| true).is_ok());
        let missing = find_executable("/no/such/x", &env, |_| false)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("stat /no/such/x: no such file or directory"),
            "{missing}"
        );
        let not_exec = find_executable("/", &env, |_| false)
            .unwrap_err()
            .to_string();
        assert!(not_exec.contains("permission denied"), "{not_exec}");
        assert!(find_executable("./x", &env, |_| false).is_err());
    }

    #[test]
    #[allow(unsafe_code)]
    fn closes_all_but_kept() {
        // Runs in a child: closing descriptors of the test harness itself would be unsafe.
        let keep = std::fs::File::open("/dev/null").expect("open");
        let gone = std::fs::File::open("/dev/null").expect("open");
        let (k, g) = (
            std::os::fd::AsRawFd::as_raw_fd(&keep),
            std::os::fd::AsRawFd::as_raw_fd(&gone),
        );
        // SAFETY: the child only makes raw syscalls and leaves with _exit.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let ok = close_fds_except(&[k]).is_ok()
                    && nix::fcntl::fcntl(&keep, nix::fcntl::FcntlArg::F_GETFD).is_ok()
                    // SAFETY: probing a descriptor number with F_GETFD touches no memory.
                    && unsafe { libc::fcntl(g, libc::F_GETFD) } == -1;
                // SAFETY: leave the forked child without running the harness's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).expect("wait");
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn home_lookup() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:n:/nonexistent:/bin/false\n";
        assert_eq!(home_of(pw, 0).as_deref(), Some("/root"));
        assert_eq!(home_of(pw, 65534).as_deref(), Some("/nonexistent"));
        assert_eq!(home_of(pw, 5), None);
    }
}
