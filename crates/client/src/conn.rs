//! Transport: a connected stream to the daemon (unix socket, TCP, or TLS over TCP).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

/// A connected byte stream to the daemon.
pub enum Conn {
    /// A unix domain socket.
    Unix(UnixStream),
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// One half of a TLS session split for an interactive stream (see [`Conn::split`]).
    SharedTls(Arc<Mutex<StreamOwned<ClientConnection, TcpStream>>>),
}

/// How long a reader holds a shared TLS session before letting a writer in.
const SHARED_TLS_POLL: Duration = Duration::from_millis(20);

impl Conn {
    /// Connects to a unix socket.
    pub fn unix(path: &std::path::Path) -> io::Result<Conn> {
        UnixStream::connect(path).map(Conn::Unix)
    }

    /// Connects over TCP, wrapping in TLS when a config is given.
    pub fn tcp(
        addr: &str,
        tls: Option<(
            &Arc<rustls::ClientConfig>,
            rustls::pki_types::ServerName<'static>,
        )>,
    ) -> io::Result<Conn> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        match tls {
            None => Ok(Conn::Tcp(sock)),
            Some((config, name)) => {
                let session =
                    ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
                Ok(Conn::Tls(Box::new(StreamOwned::new(session, sock))))
            }
        }
    }

    /// Splits into a reading and a writing handle for two threads. A TLS session cannot be
    /// cloned, so both halves share it behind a lock and the reader polls with a short socket
    /// timeout, releasing the lock between attempts so input is never starved.
    pub fn split(self) -> io::Result<(Conn, Conn)> {
        match self {
            Conn::Unix(s) => Ok((Conn::Unix(s.try_clone()?), Conn::Unix(s))),
            Conn::Tcp(s) => Ok((Conn::Tcp(s.try_clone()?), Conn::Tcp(s))),
            Conn::Tls(s) => {
                s.sock.set_read_timeout(Some(SHARED_TLS_POLL))?;
                let shared = Arc::new(Mutex::new(*s));
                Ok((
                    Conn::SharedTls(Arc::clone(&shared)),
                    Conn::SharedTls(shared),
                ))
            }
            Conn::SharedTls(s) => Ok((Conn::SharedTls(Arc::clone(&s)), Conn::SharedTls(s))),
        }
    }

    /// Half-closes the write side so the daemon sees end-of-input (stdin closed).
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.shutdown(Shutdown::Write),
            Conn::Tcp(s) => s.shutdown(Shutdown::Write),
            Conn::Tls(s) => {
                s.conn.send_close_notify();
                s.flush()
            }
            Conn::SharedTls(s) => {
                let mut g = s
                    .lock()
                    .map_err(|_| io::Error::other("TLS session lock poisoned"))?;
                g.conn.send_close_notify();
                g.flush()
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => match s.read(buf) {
                // Daemons often drop the TCP connection without close_notify after a full body.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Conn::SharedTls(s) => loop {
                let mut g = s
                    .lock()
                    .map_err(|_| io::Error::other("TLS session lock poisoned"))?;
                match g.read(buf) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        drop(g);
                        std::thread::yield_now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    other => return other,
                }
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::SharedTls(s) => s
                .lock()
                .map_err(|_| io::Error::other("TLS session lock poisoned"))?
                .write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::SharedTls(s) => s
                .lock()
                .map_err(|_| io::Error::other("TLS session lock poisoned"))?
                .flush(),
        }
    }
}
