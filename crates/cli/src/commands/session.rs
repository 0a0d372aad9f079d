//! An attached session: pumps stdin to the container (with detach keys), output to the
//! terminal (raw or demultiplexed), window-size changes and proxied signals to the daemon.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread;

use wharf_client::{copy_multiplexed, Client, Hijacked, Query};

use crate::tty::{self, RawMode, SignalSet};

/// How an attached session ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The output stream ended (the process exited or closed its output).
    Finished,
    /// The user typed the detach keys.
    Detached,
}

/// What to attach and how.
pub(crate) struct Session<'a> {
    pub client: &'a Client,
    /// The process has a pseudo-terminal: output is raw, not multiplexed.
    pub tty: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// Detach sequence (empty disables detaching).
    pub detach_keys: Vec<u8>,
    /// `/containers/ID/resize` or `/exec/ID/resize`, when the window size should follow ours.
    pub resize_path: Option<String>,
    /// `/containers/ID/kill` when signals should be proxied (--sig-proxy without a tty).
    pub kill_path: Option<String>,
}

enum Event {
    OutputDone(io::Result<()>),
    Detached,
}

const PROXIED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

impl Session<'_> {
    /// Runs the session over `stream`; `started` runs once the stream is attached (e.g. to start
    /// the container) so no early output is lost.
    pub(crate) fn run(
        self,
        stream: Hijacked,
        started: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<Outcome> {
        let mut signals = Vec::new();
        if self.resize_path.is_some() {
            signals.push(libc::SIGWINCH);
        }
        if self.kill_path.is_some() {
            signals.extend(PROXIED);
        }
        // Blocked before any thread exists so only the signal thread receives them.
        let sigset = if signals.is_empty() {
            None
        } else {
            Some(SignalSet::block(&signals)?)
        };
        let raw = if self.tty && self.stdin && tty::is_tty(0) {
            Some(RawMode::enter(0)?)
        } else {
            None
        };
        let (reader, writer) = stream.into_split();
        started()?;
        if let Some(path) = &self.resize_path {
            resize(self.client, path);
        }
        let (tx, rx) = mpsc::channel();
        // All helper threads are detached: each may block forever on a descriptor or in
        // sigwait after the session is over, and process exit ends them.
        let out_tx = tx.clone();
        let is_tty = self.tty;
        let mut reader = reader;
        thread::spawn(move || {
            let res = copy_output(&mut reader, is_tty);
            let _ = out_tx.send(Event::OutputDone(res));
        });
        if self.stdin {
            if let Some(mut w) = writer {
                let keys = self.detach_keys.clone();
                thread::spawn(move || {
                    if pump_stdin(&mut w, &keys) {
                        let _ = tx.send(Event::Detached);
                    }
                });
            }
        }
        if let Some(set) = sigset {
            let client = self.client.clone();
            let resize_path = self.resize_path.clone();
            let kill_path = self.kill_path.clone();
            thread::spawn(move || loop {
                let Ok(sig) = set.wait() else { return };
                if sig == libc::SIGWINCH {
                    if let Some(p) = &resize_path {
                        resize(&client, p);
                    }
                } else if let Some(p) = &kill_path {
                    let _ =
                        client.post(p, &Query::new().set("signal", tty::signal_name(sig)), None);
                }
            });
        }
        let outcome = match rx.recv() {
            Ok(Event::Detached) => Ok(Outcome::Detached),
            Ok(Event::OutputDone(res)) => {
                res.map(|_| Outcome::Finished).map_err(anyhow::Error::from)
            }
            Err(_) => Err(anyhow::anyhow!("attach session ended unexpectedly")),
        };
        drop(raw);
        outcome
    }
}

fn resize(client: &Client, path: &str) {
    if let Some((h, w)) = tty::size(1).or_else(|| tty::size(0)) {
        // Resizing is best effort: a process that already exited cannot be resized.
        let _ = client.post(
            path,
            &Query::new().set("h", h.to_string()).set("w", w.to_string()),
            None,
        );
    }
}

fn copy_output(reader: &mut (dyn Read + Send), tty: bool) -> io::Result<()> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    if tty {
        let mut out = stdout.lock();
        let mut buf = [0u8; 32 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    } else {
        copy_multiplexed(reader, &mut stdout.lock(), &mut stderr.lock())
    }
}

/// Copies stdin to the container until EOF (then half-closes) or the detach keys; returns
/// whether the user detached.
fn pump_stdin(w: &mut wharf_client::Conn, keys: &[u8]) -> bool {
    let mut filter = DetachFilter::new(keys);
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let (send, detached) = filter.feed(&buf[..n]);
        if !send.is_empty() && w.write_all(&send).and_then(|_| w.flush()).is_err() {
            return false;
        }
        if detached {
            return true;
        }
    }
    let _ = w.shutdown_write();
    false
}

/// Recognises the detach sequence in the input, holding back a partial match.
pub(crate) struct DetachFilter {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachFilter {
    pub(crate) fn new(keys: &[u8]) -> DetachFilter {
        DetachFilter {
            keys: keys.to_vec(),
            matched: 0,
        }
    }

    /// Returns the bytes to forward and whether the full sequence was typed.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Parses docker's detach-key syntax: comma-separated `ctrl-<x>` or single characters.
pub(crate) fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let key = key.trim();
        let b = if let Some(c) = key.strip_prefix("ctrl-") {
            let mut chars = c.chars();
            let (Some(ch), None) = (chars.next(), chars.next()) else {
                return Err(format!("Unknown character: '{key}'"));
            };
            match ch {
                'a'..='z' => ch as u8 - b'a' + 1,
                'A'..='Z' => ch as u8 - b'A' + 1,
                '@' => 0,
                '[' => 27,
                '\\' => 28,
                ']' => 29,
                '^' => 30,
                '_' => 31,
                _ => return Err(format!("Unknown character: '{key}'")),
            }
        } else {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) if ch.is_ascii() => ch as u8,
                _ => return Err(format!("Unknown character: '{key}'")),
            }
        };
        out.push(b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("ctrl-@,a,ctrl-\\").unwrap(),
            vec![0, b'a', 28]
        );
        assert!(parse_detach_keys("ctrl-pp").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }

    #[test]
    fn filter_holds_partial_matches() {
        let mut f = DetachFilter::new(&[16, 17]);
        assert_eq!(f.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(f.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(f.feed(b"\x10\x10\x11rest"), (b"\x10".to_vec(), true));
        let mut none = DetachFilter::new(&[]);
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
