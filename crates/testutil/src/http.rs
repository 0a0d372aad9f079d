//! A tiny HTTP/1.1 file server on 127.0.0.1 for tests that fetch URLs (`docker import <url>`).
//!
//! std only, one thread, one request per connection (`Connection: close`): enough for a
//! client under test, and independent of the hyper code it exercises.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What the server answers for one path.
#[derive(Debug, Clone)]
pub enum Route {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status (3xx) with a `Location` header.
    Redirect(u16, String),
    /// 200 with this body and these extra headers (`Last-Modified`).
    BodyWith(Vec<u8>, Vec<(String, String)>),
}

/// A running server; stops and joins its thread on drop.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `routes` (path → answer); any other path gets 404 with a short text body.
    pub fn start(routes: Vec<(String, Route)>) -> io::Result<HttpServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    // A client that hangs up early is the client's business.
                    let _ = answer(conn, &routes);
                }
            }
        });
        Ok(HttpServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(conn: TcpStream, routes: &[(String, Route)]) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers; the request has no body.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, extra, body): (u16, String, Vec<u8>) =
        match routes.iter().find(|(p, _)| p == path).map(|(_, r)| r) {
            Some(Route::Body(b)) => (200, String::new(), b.clone()),
            Some(Route::BodyWith(b, headers)) => (
                200,
                headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}\r\n"))
                    .collect(),
                b.clone(),
            ),
            Some(Route::Redirect(code, to)) => (*code, format!("Location: {to}\r\n"), Vec::new()),
            None => (404, String::new(), b"404 page not found\n".to_vec()),
        };
    let mut out = io::BufWriter::new(conn);
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        reason(status),
        body.len()
    )?;
    out.write_all(&body)?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        _ => "Unknown",
    }
}
