//! Transport: a connected stream to the daemon (unix socket, TCP, or TLS over TCP).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use rustls::{ClientConnection, StreamOwned};

/// A connected byte stream to the daemon.
pub enum Conn {
    /// A unix domain socket.
    Unix(UnixStream),
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

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

    /// A second handle on the same socket so one thread can read while another writes.
    /// TLS sessions cannot be split that way.
    pub fn try_clone(&self) -> io::Result<Conn> {
        match self {
            Conn::Unix(s) => s.try_clone().map(Conn::Unix),
            Conn::Tcp(s) => s.try_clone().map(Conn::Tcp),
            Conn::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "interactive streams over TLS are not supported",
            )),
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
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}
