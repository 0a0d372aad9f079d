//! Terminal control: raw mode with guaranteed restore, window size, and signal delivery to a
//! dedicated thread (SIGWINCH for resize, the rest for --sig-proxy).
#![allow(unsafe_code)] // termios, ioctl and signal masks have no safe std equivalent.

use std::io;
use std::os::fd::RawFd;

/// Puts a terminal in raw mode; restores the saved settings when dropped (every exit path of
/// an interactive session drops it before the process exits).
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Enters raw mode on `fd`.
    pub(crate) fn enter(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fully initialises it on success.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios copied from the terminal's settings.
        unsafe { libc::cfmakeraw(&mut raw) };
        // Keep output post-processing so "\n" from a non-tty stream still returns the carriage.
        raw.c_oflag |= libc::OPOST;
        // SAFETY: `raw` is a valid termios for this fd.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores settings previously read from the same fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Turns a terminal's echo off (a password prompt); restores it when dropped.
pub(crate) struct NoEcho {
    _restore: RawMode,
}

impl NoEcho {
    /// Stops `fd` from echoing typed characters.
    pub(crate) fn enter(fd: RawFd) -> io::Result<NoEcho> {
        // SAFETY: termios is plain data; tcgetattr fully initialises it on success.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: `quiet` is a valid termios for this fd.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NoEcho {
            _restore: RawMode { fd, saved },
        })
    }
}

/// Whether `fd` is a terminal.
pub(crate) fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// (rows, cols) of the terminal on `fd`.
pub(crate) fn size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data filled by the ioctl.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid pointer.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Signals a session listens for; blocked in every thread so only [`wait_signal`] sees them.
pub(crate) struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// Blocks `signals` for the calling thread and the threads it spawns afterwards.
    pub(crate) fn block(signals: &[i32]) -> io::Result<SignalSet> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for s in signals {
            // SAFETY: `set` is valid; invalid numbers are rejected by sigaddset.
            unsafe { libc::sigaddset(&mut set, *s) };
        }
        // SAFETY: `set` is a valid sigset_t; the old mask is not needed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(SignalSet(set))
    }

    /// Waits for the next signal of the set.
    pub(crate) fn wait(&self) -> io::Result<i32> {
        let mut sig = 0;
        // SAFETY: the set is valid and `sig` is writable.
        let rc = unsafe { libc::sigwait(&self.0, &mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}

/// Signal number to the name the Engine API's kill endpoint accepts.
pub(crate) fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGWINCH => "SIGWINCH",
        other => return other.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(64), "64");
    }

    #[test]
    fn pipes_are_not_terminals() {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid two-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(!is_tty(fds[0]));
        assert!(size(fds[0]).is_none());
        assert!(RawMode::enter(fds[0]).is_err());
        // SAFETY: closing descriptors this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
