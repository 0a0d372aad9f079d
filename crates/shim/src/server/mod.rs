//! The shim proper: creates the container, then runs a single-threaded poll loop over the
//! container's and execs' stdio, the control socket and its clients, and a SIGCHLD signalfd.
//!
//! Output is never blocked by a client: each attach client has a bounded backlog and is dropped
//! when it overflows, so a stalled client can stall neither the container nor the log.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use wharf_shim_proto::stream::frame_header;
use wharf_shim_proto::{
    decode_line, encode_line, files, ExitStatus, Request, Response, ShimConfig, Status,
};

use crate::atomic::write_atomic;
use crate::console::{set_size, ConsoleSocket};
use crate::logger::{LogError, Logger, Stream};
use crate::oom::OomProbe;
use crate::runtime::{verbs, Runtime};
use crate::stdio::{launch, LaunchError, ProcStdio};
use crate::timefmt::now_rfc3339_nano;

mod requests;
mod socket;

use requests::RequestError;
use socket::ControlSocket;

const READ_CHUNK: usize = 32 * 1024;
/// Output queued for one attach client before it is considered stalled and dropped.
const MAX_CLIENT_BACKLOG: usize = 1 << 20;
/// Stdin queued for one process before attach clients stop being read.
const MAX_STDIN_BACKLOG: usize = 256 * 1024;
const MAX_REQUEST: usize = 1 << 20;
/// How long init's output may stay open after it exited (processes that escaped the pid
/// namespace can hold the pipes forever).
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long the shim keeps answering after the container finished, so a daemon that asks
/// just after the exit (Kill then Wait, or a reconnect) still gets answers from the shim rather
/// than only from exit.json. [`Request::Shutdown`] ends it early.
const LINGER: Duration = Duration::from_secs(10);
/// Hard limit for clients that do not take their last bytes.
const MAX_LINGER: Duration = Duration::from_secs(30);

/// Why the shim could not bring the container up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The log could not be opened or its driver is unsupported.
    #[error(transparent)]
    Log(#[from] LogError),
    /// `runtime create` failed.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// A local setup step failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

fn io_err<E: Into<io::Error>>(what: &'static str) -> impl FnOnce(E) -> StartError {
    move |e| StartError::Io {
        what,
        source: e.into(),
    }
}

/// A process whose stdio the shim holds: the container's init (index 0) or an exec.
#[derive(Debug)]
struct Proc {
    exec_id: Option<String>,
    pid: i32,
    tty: bool,
    io: ProcStdio,
    stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written.
    close_stdin: bool,
    exit_code: Option<i32>,
    /// Exited and its output is drained: waiters have been answered.
    done: bool,
}

impl Proc {
    fn new(exec_id: Option<String>, pid: i32, tty: bool, io: ProcStdio) -> Proc {
        Proc {
            exec_id,
            pid,
            tty,
            io,
            stdin_buf: Vec::new(),
            close_stdin: false,
            exit_code: None,
            done: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AttachSpec {
    proc: usize,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

impl AttachSpec {
    fn wants(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the request line.
    Request,
    /// Answered: close once the answer is sent.
    Done,
    /// Waiting for init to exit.
    WaitInit,
    /// Waiting for an exec (index into `procs`) to exit.
    WaitExec(usize),
    /// An attach stream.
    Attach(AttachSpec),
}

#[derive(Debug)]
struct Client {
    sock: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    phase: Phase,
    /// The client shut down its writing half.
    eof: bool,
}

#[derive(Debug, Clone, Copy)]
enum Token {
    Signal,
    Listener,
    Source(usize, usize),
    Stdin(usize),
    Client(usize),
}

/// A running shim for one container.
#[derive(Debug)]
pub struct Shim {
    cfg: ShimConfig,
    dir: PathBuf,
    runtime: Runtime,
    sigfd: SignalFd,
    listener: Option<ControlSocket>,
    logger: Logger,
    oom: OomProbe,
    status: Status,
    exit: Option<ExitStatus>,
    procs: Vec<Proc>,
    clients: Vec<Option<Client>>,
    init_exited_at: Option<Instant>,
    finished_at: Option<Instant>,
    shutdown: bool,
}

impl Shim {
    /// Creates the container (`runtime create`), opens the log and starts listening on
    /// `<dir>/shim.sock`. `proc_root` is normally `/proc`. Must run in the detached process:
    /// it makes this process a child subreaper and blocks SIGCHLD.
    pub fn start(dir: &Path, cfg: ShimConfig, proc_root: &Path) -> Result<Shim, StartError> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io_err("becoming a subreaper"))?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block().map_err(io_err("blocking SIGCHLD"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io_err("creating a signalfd"))?;
        let logger = Logger::open(&cfg.log)?;
        let runtime = Runtime::new(&cfg.runtime, &dir.join("runtime.log"));
        match Self::create(dir, &cfg, &runtime, proc_root) {
            Ok((init, oom, listener)) => Ok(Shim {
                cfg,
                dir: dir.to_path_buf(),
                runtime,
                sigfd,
                listener: Some(listener),
                logger,
                oom,
                status: Status::Created,
                exit: None,
                procs: vec![init],
                clients: Vec::new(),
                init_exited_at: None,
                finished_at: None,
                shutdown: false,
            }),
            Err(e) => {
                // Whatever got created must not outlive the failed start.
                let _ = runtime.run(verbs::delete_force(&cfg.id));
                Err(e)
            }
        }
    }

    fn create(
        dir: &Path,
        cfg: &ShimConfig,
        runtime: &Runtime,
        proc_root: &Path,
    ) -> Result<(Proc, OomProbe, ControlSocket), StartError> {
        // An exit status left by an earlier run of this container is not ours to report.
        let _ = fs::remove_file(dir.join(files::EXIT));
        let pid_file = dir.join("init.pid");
        let console = match cfg.stdio.tty {
            true => Some(
                ConsoleSocket::bind(&dir.join("console.sock"))
                    .map_err(io_err("listening on the console socket"))?,
            ),
            false => None,
        };
        let args = verbs::create(
            &cfg.id,
            &cfg.bundle,
            &pid_file,
            console.as_ref().map(|c| c.path()),
        );
        let io = launch(runtime, args, console.as_ref(), cfg.stdio.stdin)?;
        drop(console);
        let pid = read_pid(&pid_file).map_err(io_err("reading the init pid file"))?;
        if let (Some(pty), Some(size)) = (&io.pty, cfg.stdio.initial_size) {
            set_size(pty, size).map_err(io_err("setting the terminal size"))?;
        }
        let oom = OomProbe::locate(proc_root, pid);
        let listener = ControlSocket::bind(&dir.join(files::SOCKET))
            .map_err(io_err("listening on shim.sock"))?;
        write_atomic(
            &dir.join(files::PID),
            std::process::id().to_string().as_bytes(),
        )
        .map_err(io_err("writing shim.pid"))?;
        Ok((Proc::new(None, pid, cfg.stdio.tty, io), oom, listener))
    }

    /// Serves until the container has exited, its output is drained and waiters answered.
    pub fn run(mut self) {
        loop {
            self.progress();
            if self.should_exit() {
                break;
            }
            let ready = match self.poll_once() {
                Ok(ready) => ready,
                Err(Errno::EINTR) => continue,
                // poll only fails on resource exhaustion; retry rather than orphan the container.
                Err(_) => continue,
            };
            let mut accept = false;
            for (token, ev) in ready {
                match token {
                    Token::Signal => self.reap(),
                    Token::Listener => accept = true,
                    Token::Source(p, s) => self.read_output(p, s),
                    Token::Stdin(p) => self.write_stdin(p),
                    Token::Client(c) => self.client_event(c, ev),
                }
            }
            // Accepting last keeps client slots stable while this round's tokens are handled.
            if accept {
                self.accept();
            }
        }
        // Dropping `self` unlinks the control socket (if it is still ours).
    }

    fn poll_once(&self) -> nix::Result<Vec<(Token, PollFlags)>> {
        let mut fds = Vec::new();
        let mut tokens = Vec::new();
        fds.push(PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN));
        tokens.push(Token::Signal);
        if let Some(l) = &self.listener {
            fds.push(PollFd::new(l.listener.as_fd(), PollFlags::POLLIN));
            tokens.push(Token::Listener);
        }
        for (p, proc) in self.procs.iter().enumerate() {
            for (s, src) in proc.io.sources.iter().enumerate() {
                if let Some(fd) = &src.fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    tokens.push(Token::Source(p, s));
                }
            }
            if let (Some(fd), false) = (&proc.io.stdin, proc.stdin_buf.is_empty()) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
                tokens.push(Token::Stdin(p));
            }
        }
        for (c, client) in self.clients.iter().enumerate() {
            let Some(cl) = client else { continue };
            let mut ev = PollFlags::empty();
            if self.wants_input(cl) {
                ev |= PollFlags::POLLIN;
            }
            if !cl.out.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            // Polled even with no events: hang-ups are always reported.
            fds.push(PollFd::new(cl.sock.as_fd(), ev));
            tokens.push(Token::Client(c));
        }
        let timeout = match self.init_exited_at {
            Some(_) => PollTimeout::from(100u16),
            None => PollTimeout::NONE,
        };
        poll(&mut fds, timeout)?;
        Ok(fds
            .iter()
            .zip(tokens)
            .filter_map(|(fd, t)| fd.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
            .collect())
    }

    fn wants_input(&self, cl: &Client) -> bool {
        match cl.phase {
            Phase::Request => !cl.eof,
            Phase::Attach(a) if a.stdin => {
                let proc = &self.procs[a.proc];
                !cl.eof && proc.io.stdin.is_some() && proc.stdin_buf.len() < MAX_STDIN_BACKLOG
            }
            _ => false,
        }
    }

    /// Advances lifecycles after events: closes stdin when asked, notices drained processes,
    /// answers their waiters and ends their attach streams.
    fn progress(&mut self) {
        let now = Instant::now();
        let grace_over = self
            .init_exited_at
            .is_some_and(|t| now.duration_since(t) > DRAIN_GRACE);
        let mut finished = Vec::new();
        for (p, proc) in self.procs.iter_mut().enumerate() {
            if proc.close_stdin && proc.stdin_buf.is_empty() {
                proc.io.stdin = None;
            }
            proc.io.sources.retain(|s| s.fd.is_some());
            if proc.done || proc.exit_code.is_none() {
                continue;
            }
            if proc.io.sources.is_empty() || (p == 0 && grace_over) {
                proc.done = true;
                proc.io.sources.clear();
                proc.io.stdin = None;
                proc.stdin_buf.clear();
                finished.push(p);
            }
        }
        for p in finished {
            self.finish_proc(p, now);
        }
        for slot in &mut self.clients {
            if let Some(cl) = slot
                .as_ref()
                .filter(|c| c.phase == Phase::Done && c.out.is_empty())
            {
                // Closing a unix socket with unread input makes the peer's next read fail with
                // ECONNRESET instead of a clean EOF, so consume what the client sent.
                let mut sink = [0u8; 4096];
                while matches!((&cl.sock).read(&mut sink), Ok(n) if n > 0) {}
                *slot = None;
            }
        }
        while matches!(self.clients.last(), Some(None)) {
            self.clients.pop();
        }
    }

    fn finish_proc(&mut self, p: usize, now: Instant) {
        let answer = if p == 0 {
            self.logger.finish();
            self.finished_at = Some(now);
            self.exit.clone().map(Response::Exited)
        } else {
            Some(self.exec_state(p))
        };
        for cl in self.clients.iter_mut().flatten() {
            let waiting = match cl.phase {
                Phase::WaitInit => p == 0,
                Phase::WaitExec(q) => q == p,
                Phase::Attach(a) => {
                    if a.proc == p {
                        cl.phase = Phase::Done;
                    }
                    false
                }
                _ => false,
            };
            if waiting {
                if let Some(resp) = &answer {
                    cl.out.extend(encode_line(resp));
                }
                cl.phase = Phase::Done;
            }
        }
    }

    fn should_exit(&self) -> bool {
        let Some(finished) = self.finished_at else {
            return false;
        };
        let idle = self.clients.is_empty() && (self.shutdown || finished.elapsed() > LINGER);
        idle || finished.elapsed() > MAX_LINGER
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            let (pid, code) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some(p) = self
                .procs
                .iter()
                .position(|x| x.pid == pid && x.exit_code.is_none())
            else {
                continue; // an orphan re-parented to us
            };
            self.procs[p].exit_code = Some(code);
            if p == 0 {
                self.init_exited(code);
            }
        }
    }

    fn init_exited(&mut self, code: i32) {
        // Read before `delete` removes the cgroup.
        let oom_killed = self.oom.fired();
        let _ = self.runtime.run(verbs::delete_force(&self.cfg.id));
        let exit = ExitStatus {
            exit_code: code,
            exited_at: now_rfc3339_nano(),
            oom_killed,
        };
        // Nobody could be told about a failed write; the daemon falls back to asking the shim.
        let _ = write_atomic(&self.dir.join(files::EXIT), &encode_line(&exit));
        self.exit = Some(exit);
        self.status = Status::Stopped;
        self.init_exited_at = Some(Instant::now());
    }

    fn read_output(&mut self, p: usize, s: usize) {
        let mut buf = [0u8; READ_CHUNK];
        let src = &mut self.procs[p].io.sources[s];
        let Some(fd) = &src.fd else { return };
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => src.fd = None,
            Ok(n) => {
                let stream = src.stream;
                self.output(p, stream, &buf[..n]);
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            // EIO: every holder of the pty slave closed it.
            Err(_) => src.fd = None,
        }
    }

    fn output(&mut self, p: usize, stream: Stream, data: &[u8]) {
        if p == 0 {
            self.logger.feed(stream, data);
        }
        let tty = self.procs[p].tty;
        for slot in &mut self.clients {
            let Some(cl) = slot else { continue };
            let Phase::Attach(a) = cl.phase else { continue };
            if a.proc != p || !a.wants(stream) {
                continue;
            }
            if !tty {
                // `data` is at most READ_CHUNK bytes.
                cl.out
                    .extend_from_slice(&frame_header(stream.frame_id(), data.len() as u32));
            }
            cl.out.extend_from_slice(data);
            if cl.out.len() > MAX_CLIENT_BACKLOG {
                *slot = None;
            }
        }
    }

    fn write_stdin(&mut self, p: usize) {
        let proc = &mut self.procs[p];
        let Some(fd) = &proc.io.stdin else { return };
        match rustix::io::write(fd, &proc.stdin_buf) {
            Ok(n) => {
                proc.stdin_buf.drain(..n);
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            Err(_) => {
                proc.io.stdin = None;
                proc.stdin_buf.clear();
            }
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok((sock, _)) = listener.listener.accept() {
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let client = Client {
                sock,
                inbuf: Vec::new(),
                out: Vec::new(),
                phase: Phase::Request,
                eof: false,
            };
            match self.clients.iter().position(Option::is_none) {
                Some(i) => self.clients[i] = Some(client),
                None => self.clients.push(Some(client)),
            }
        }
    }

    fn client_event(&mut self, c: usize, ev: PollFlags) {
        if ev.contains(PollFlags::POLLIN) {
            self.client_read(c);
        }
        let Some(cl) = self.clients[c].as_mut() else {
            return;
        };
        if ev.contains(PollFlags::POLLOUT) {
            match (&cl.sock).write(&cl.out) {
                Ok(n) => {
                    cl.out.drain(..n);
                }
                Err(e) if retry(&e) => {}
                Err(_) => {
                    self.clients[c] = None;
                    return;
                }
            }
        }
        if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) && !ev.contains(PollFlags::POLLIN)
        {
            self.clients[c] = None;
        }
    }

    fn client_read(&mut self, c: usize) {
        let mut buf = [0u8; READ_CHUNK];
        let Some(cl) = self.clients[c].as_mut() else {
            return;
        };
        let n = match (&cl.sock).read(&mut buf) {
            Ok(n) => n,
            Err(e) if retry(&e) => return,
            Err(_) => {
                self.clients[c] = None;
                return;
            }
        };
        match cl.phase {
            Phase::Request if n == 0 => self.clients[c] = None,
            Phase::Request => {
                cl.inbuf.extend_from_slice(&buf[..n]);
                if let Some(nl) = cl.inbuf.iter().position(|&b| b == b'\n') {
                    let rest = cl.inbuf.split_off(nl + 1);
                    let line = std::mem::take(&mut cl.inbuf);
                    self.on_request(c, &line, rest);
                } else if cl.inbuf.len() > MAX_REQUEST {
                    let err = RequestError::Invalid("request line too long".into());
                    cl.out.extend(encode_line(&err.response()));
                    cl.phase = Phase::Done;
                    cl.eof = true;
                }
            }
            Phase::Attach(a) if n == 0 => {
                cl.eof = true;
                // Docker closes the container's stdin at the client's EOF only with
                // StdinOnce; an exec's stdin always follows its client. A terminal's input
                // stays open: a client that detached (ctrl-p ctrl-q) may come back.
                let proc = &self.procs[a.proc];
                if a.stdin && !proc.tty && (a.proc != 0 || self.cfg.stdio.stdin_once) {
                    self.procs[a.proc].close_stdin = true;
                }
            }
            Phase::Attach(a) if a.stdin => {
                self.procs[a.proc].stdin_buf.extend_from_slice(&buf[..n])
            }
            _ => cl.eof = n == 0,
        }
    }

    fn on_request(&mut self, c: usize, line: &[u8], rest: Vec<u8>) {
        let (resp, phase) = match decode_line::<Request>(line) {
            Ok(req) => self
                .dispatch(req)
                .unwrap_or_else(|e| (Some(e.response()), Phase::Done)),
            Err(e) => (
                Some(RequestError::Invalid(e.to_string()).response()),
                Phase::Done,
            ),
        };
        let Some(cl) = self.clients[c].as_mut() else {
            return;
        };
        if let Some(resp) = resp {
            cl.out.extend(encode_line(&resp));
        }
        cl.phase = phase;
        if let Phase::Attach(a) = phase {
            if a.stdin && !rest.is_empty() && self.procs[a.proc].io.stdin.is_some() {
                self.procs[a.proc].stdin_buf.extend_from_slice(&rest);
            }
        }
    }
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn read_pid(path: &Path) -> io::Result<i32> {
    fs::read_to_string(path)?.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad pid in {}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_parse_or_fail_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pid");
        fs::write(&p, "1234\n").expect("write");
        assert_eq!(read_pid(&p).expect("pid"), 1234);
        fs::write(&p, "garbage").expect("write");
        assert!(read_pid(&p).is_err());
    }
}
