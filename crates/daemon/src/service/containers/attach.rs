//! Attach and exec: splicing a client's hijacked connection with the shim's stream.

use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use wharf_api_types::exec::{ExecConfig, ExecInspect, ExecProcessConfig};
use wharf_errdefs::ErrorKind;
use wharf_shim_proto::{stream, ErrorCode, Request, Response, WindowSize};

use super::shim::ShimError;
use super::spec::resolve_user;
use super::{lock, not_running, ContainerService};
use crate::server::error::ApiError;
use crate::state::Status;

/// A client connection after the HTTP upgrade.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// What the client wants from an attach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Forward the client's input.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// The byte sequence that detaches (Docker's default ctrl-p,ctrl-q).
    pub detach_keys: Vec<u8>,
    /// How the shim's output reaches the client.
    pub output: Framing,
}

/// The client's framing against the shim's (multiplexed unless the process has a terminal).
/// dockerd frames an exec's output by the start request's `Tty`, not the exec's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// As the shim sends it.
    #[default]
    AsIs,
    /// Raw terminal output wrapped in stdout frames.
    Frame,
    /// Frames unwrapped into raw bytes.
    Unframe,
}

impl Framing {
    /// The conversion from a stream framed as `has_tty` says to one framed as `wants_tty`.
    pub fn between(has_tty: bool, wants_tty: bool) -> Framing {
        match (has_tty, wants_tty) {
            (true, false) => Framing::Frame,
            (false, true) => Framing::Unframe,
            _ => Framing::AsIs,
        }
    }
}

/// Copies `from` to `to`, converting the framing; ends at EOF or a write error.
async fn copy_output(
    mut from: impl AsyncRead + Unpin,
    to: &mut (impl AsyncWrite + Unpin),
    framing: Framing,
) {
    use wharf_shim_proto::stream::{frame_header, parse_header, STDOUT};
    if framing == Framing::AsIs {
        let _ = tokio::io::copy(&mut from, to).await;
        return;
    }
    let mut buf = vec![0u8; 32 * 1024];
    // Unframe: bytes of a partly received header, and payload bytes still to pass through.
    let (mut head, mut left) = (Vec::with_capacity(8), 0usize);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 8);
        if framing == Framing::Frame {
            out.extend_from_slice(&frame_header(STDOUT, n as u32));
            out.extend_from_slice(&buf[..n]);
        } else {
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                if left > 0 {
                    let k = left.min(rest.len());
                    out.extend_from_slice(&rest[..k]);
                    (left, rest) = (left - k, &rest[k..]);
                    continue;
                }
                let k = (8 - head.len()).min(rest.len());
                head.extend_from_slice(&rest[..k]);
                rest = &rest[k..];
                if let Ok(h) = <[u8; 8]>::try_from(head.as_slice()) {
                    left = parse_header(&h).1 as usize;
                    head.clear();
                }
            }
        }
        if to.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// An attach waiting for the container to start (`docker run` attaches before starting).
pub struct PendingAttach {
    client: Box<dyn Duplex>,
    opts: AttachOptions,
}

/// An exec created but maybe not started.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// Its id.
    pub id: String,
    /// The container's id.
    pub container_id: String,
    /// As created.
    pub config: ExecConfig,
    /// Started through the shim.
    pub started: bool,
    /// Last known pid.
    pub pid: i64,
    /// Exit code once known.
    pub exit_code: Option<i64>,
    /// The container's OOM kill count when the exec started, until its exit was checked.
    pub oom_base: Option<u64>,
}

/// Parses Docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`...).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    if s.is_empty() {
        return Ok(vec![0x10, 0x11]);
    }
    s.split(',')
        .map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                match c.as_bytes() {
                    [b] if b.is_ascii_alphabetic() => Ok(b.to_ascii_lowercase() - b'a' + 1),
                    [b'@'] => Ok(0),
                    [b'['] => Ok(27),
                    [b'\\'] => Ok(28),
                    [b']'] => Ok(29),
                    [b'^'] => Ok(30),
                    [b'_'] => Ok(31),
                    _ => Err(ApiError::invalid(format!(
                        "Invalid detach keys ({s}) provided"
                    ))),
                }
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(ApiError::invalid(format!(
                    "Invalid detach keys ({s}) provided"
                )))
            }
        })
        .collect()
}

/// Copies client input to the shim until EOF or the detach sequence; true when detached.
/// Bytes that might start the sequence are held back until it completes or breaks.
async fn pump_stdin(
    mut from: impl AsyncRead + Unpin,
    to: &mut (impl AsyncWrite + Unpin),
    keys: &[u8],
) -> bool {
    let mut buf = vec![0u8; 8192];
    let mut held: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.write_all(&held).await;
                return false;
            }
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + held.len());
        for &b in &buf[..n] {
            if keys.is_empty() {
                out.push(b);
            } else if b == keys[held.len()] {
                held.push(b);
                if held.len() == keys.len() {
                    let _ = to.write_all(&out).await;
                    return true;
                }
            } else {
                out.append(&mut held);
                if b == keys[0] {
                    held.push(b);
                } else {
                    out.push(b);
                }
            }
        }
        if to.write_all(&out).await.is_err() {
            return false;
        }
    }
}

/// Joins a client connection and a shim stream until the output ends or the client detaches.
pub async fn splice(client: Box<dyn Duplex>, shim: UnixStream, opts: &AttachOptions) {
    let (cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    let out = async {
        copy_output(&mut sr, &mut cw, opts.output).await;
        let _ = cw.shutdown().await;
    };
    if !opts.stdin {
        out.await;
        return;
    }
    let keys = opts.detach_keys.clone();
    let inp = async move {
        let detached = pump_stdin(cr, &mut sw, &keys).await;
        // EOF on the client's input is EOF on the container's stdin.
        let _ = sw.shutdown().await;
        detached
    };
    tokio::pin!(out);
    tokio::select! {
        _ = &mut out => {}
        detached = inp => if !detached { out.await },
    }
}

impl ContainerService {
    /// Attaches a hijacked client to a container: now if it runs, else at its next start.
    pub async fn attach(
        self: &Arc<Self>,
        key: &str,
        client: Box<dyn Duplex>,
        opts: AttachOptions,
    ) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        if c.state.status == Status::Paused {
            return Err(ApiError::conflict(format!(
                "You cannot attach to a paused container, unpause it first"
            )));
        }
        if !c.state.status.is_alive() {
            lock(&self.pending_attach)
                .entry(c.id.clone())
                .or_default()
                .push(PendingAttach { client, opts });
            return Ok(());
        }
        let req = Request::Attach {
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        let (_, stream) = self
            .shim(&c.id)
            .open(&req)
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        self.emit(&c, "attach", &[]);
        tokio::spawn(async move { splice(client, stream, &opts).await });
        Ok(())
    }

    /// Called by start between launching the shim and starting the process.
    pub(super) async fn connect_pending_attaches(&self, id: &str) {
        let pending = lock(&self.pending_attach).remove(id).unwrap_or_default();
        for p in pending {
            let req = Request::Attach {
                stdin: p.opts.stdin,
                stdout: p.opts.stdout,
                stderr: p.opts.stderr,
            };
            match self.shim(id).open(&req).await {
                Ok((_, stream)) => {
                    let opts = p.opts;
                    tokio::spawn(async move { splice(p.client, stream, &opts).await });
                }
                Err(e) => tracing::warn!(id, "connecting attach: {e}"),
            }
        }
    }

    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, cfg: ExecConfig) -> Result<String, ApiError> {
        let c = self.snapshot(key)?;
        if c.state.status == Status::Paused {
            return Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if !c.state.status.is_alive() {
            return Err(not_running(&c.id));
        }
        if cfg.cmd.as_ref().is_none_or(Vec::is_empty) {
            return Err(ApiError::invalid("No exec command specified"));
        }
        if !cfg.detach_keys.is_empty() {
            parse_detach_keys(&cfg.detach_keys)?;
        }
        let id = crate::ids::new_id();
        let cmd = cfg.cmd.clone().unwrap_or_default().join(" ");
        lock(&self.execs).insert(
            id.clone(),
            ExecRecord {
                id: id.clone(),
                container_id: c.id.clone(),
                config: cfg,
                started: false,
                pid: 0,
                exit_code: None,
                oom_base: None,
            },
        );
        self.emit(
            &c,
            &format!("exec_create: {cmd}"),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    fn exec_record(&self, id: &str) -> Result<ExecRecord, ApiError> {
        lock(&self.execs)
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    /// The OCI process of an exec: the container's process with the exec's overrides.
    pub(super) async fn exec_process(&self, e: &ExecRecord) -> Result<serde_json::Value, ApiError> {
        let spec_path = self.shim_dir(&e.container_id).join("config.json");
        let bytes = tokio::fs::read(&spec_path)
            .await
            .map_err(|_| not_running(&e.container_id))?;
        let spec: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::internal(format!("{}: {err}", spec_path.display())))?;
        let mut p = spec["process"].clone();
        let cfg = &e.config;
        p["args"] = json!(cfg.cmd.clone().unwrap_or_default());
        p["terminal"] = json!(cfg.tty);
        let mut env: Vec<String> = p["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for kv in cfg.env.clone().unwrap_or_default() {
            let k = kv.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(k.as_str()));
            env.push(kv);
        }
        p["env"] = json!(env);
        if !cfg.working_dir.is_empty() {
            p["cwd"] = json!(cfg.working_dir);
        }
        if !cfg.user.is_empty() {
            let rootfs =
                std::path::PathBuf::from(spec["root"]["path"].as_str().unwrap_or("/nonexistent"));
            let read = |f: &str| {
                let path = rootfs.join(f);
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => std::fs::read_to_string(&path).unwrap_or_default(),
                    _ => String::new(),
                }
            };
            let (uid, gid, extra) =
                resolve_user(&cfg.user, &read("etc/passwd"), &read("etc/group"), &[])
                    .map_err(|err| ApiError::from_err(&err))?;
            p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": extra});
        }
        if cfg.privileged {
            let all = super::spec::ALL_CAPS;
            p["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
        }
        if let (true, Some([h, w])) = (cfg.tty, cfg.console_size) {
            p["consoleSize"] = json!({"height": h, "width": w});
        }
        Ok(p)
    }

    /// `POST /exec/{id}/start`: detached, or spliced with the hijacked client, which gets the
    /// output framed as `tty` (the start request's) says.
    pub async fn exec_start(
        self: &Arc<Self>,
        exec_id: &str,
        detach: bool,
        client: Option<Box<dyn Duplex>>,
        tty: bool,
    ) -> Result<(), ApiError> {
        let e = self.exec_record(exec_id)?;
        if e.started {
            return Err(ApiError::conflict(format!(
                "Error: Exec command {exec_id} has already run"
            )));
        }
        let c = self.snapshot(&e.container_id)?;
        if !c.state.status.is_alive() {
            return Err(not_running(&c.id));
        }
        let process = self.exec_process(&e).await?;
        let oom_base = self.oom_kills(&c.id).await;
        let cfg = &e.config;
        let req = Request::Exec {
            exec_id: exec_id.to_string(),
            process,
            stdin: cfg.attach_stdin && !detach,
            stdout: cfg.attach_stdout,
            stderr: cfg.attach_stderr,
            detach: detach || client.is_none(),
        };
        let (resp, stream) = match self.shim(&c.id).open(&req).await {
            Ok(v) => v,
            Err(ShimError::Refused {
                code: ErrorCode::Internal,
                message,
            }) => {
                // The runtime could not start the process: Docker's code and message, on the
                // stream for an attached client (the CLI prints it, then asks the exit code).
                let argv0 = cfg.cmd.as_deref().and_then(|c| c.first().cloned());
                let (code, err) = exec_start_failure(argv0.as_deref().unwrap_or(""), &message);
                if let Some(r) = lock(&self.execs).get_mut(exec_id) {
                    r.started = true;
                    r.exit_code = Some(code);
                }
                if let (Some(mut client), false) = (client, detach) {
                    let line = format!("{}\r\n", err.message);
                    let mut out = Vec::new();
                    if !cfg.tty {
                        // Bounded by the shim's 1 MiB answer line.
                        let len = u32::try_from(line.len()).unwrap_or(u32::MAX);
                        out.extend(stream::frame_header(stream::STDOUT, len));
                    }
                    out.extend(line.as_bytes());
                    let _ = client.write_all(&out).await;
                    let _ = client.shutdown().await;
                }
                return Err(err);
            }
            Err(err) => return Err(ApiError::from_err(&err)),
        };
        let pid = match resp {
            Response::Started { pid } => i64::from(pid),
            _ => 0,
        };
        if let Some(r) = lock(&self.execs).get_mut(exec_id) {
            r.started = true;
            r.pid = pid;
            r.oom_base = oom_base;
        }
        let cmd = cfg.cmd.clone().unwrap_or_default().join(" ");
        self.emit(
            &c,
            &format!("exec_start: {cmd}"),
            &[("execID", exec_id.to_string())],
        );
        if let (Some(client), false) = (client, detach) {
            let opts = AttachOptions {
                stdin: cfg.attach_stdin,
                stdout: cfg.attach_stdout,
                stderr: cfg.attach_stderr,
                detach_keys: parse_detach_keys(&cfg.detach_keys)?,
                output: Framing::between(cfg.tty, tty),
            };
            let me = self.clone();
            let (eid, cid) = (exec_id.to_string(), c.id.clone());
            tokio::spawn(async move {
                splice(client, stream, &opts).await;
                let _ = me.exec_inspect(&eid).await;
                if let Ok(c) = me.snapshot(&cid) {
                    me.emit(&c, "exec_die", &[("execID", eid)]);
                }
            });
        }
        Ok(())
    }

    /// `GET /exec/{id}/json`, refreshing the state from the shim.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, ApiError> {
        let mut e = self.exec_record(exec_id)?;
        let mut running = false;
        if e.started && e.exit_code.is_none() {
            match self
                .shim(&e.container_id)
                .call(&Request::ExecState {
                    exec_id: exec_id.to_string(),
                    wait: false,
                })
                .await
            {
                Ok(Response::ExecState {
                    pid,
                    running: r,
                    exit_code,
                }) => {
                    running = r;
                    e.pid = i64::from(pid);
                    e.exit_code = exit_code.map(i64::from);
                }
                // The shim is gone: so is the process.
                _ => e.exit_code = Some(e.exit_code.unwrap_or(137)),
            }
            let oom_base = lock(&self.execs).get_mut(exec_id).and_then(|r| {
                r.pid = e.pid;
                r.exit_code = e.exit_code;
                if r.exit_code.is_some() {
                    r.oom_base.take()
                } else {
                    None
                }
            });
            if let Some(base) = oom_base {
                self.emit_exec_oom(&e.container_id, base).await;
            }
        }
        let args = e.config.cmd.clone().unwrap_or_default();
        Ok(ExecInspect {
            id: e.id.clone(),
            running,
            exit_code: e.exit_code,
            process_config: ExecProcessConfig {
                tty: e.config.tty,
                entrypoint: args.first().cloned().unwrap_or_default(),
                arguments: args.iter().skip(1).cloned().collect(),
                privileged: e.config.privileged,
                user: e.config.user.clone(),
            },
            open_stdin: e.config.attach_stdin,
            open_stderr: e.config.attach_stderr,
            open_stdout: e.config.attach_stdout,
            can_remove: false,
            container_id: e.container_id.clone(),
            detach_keys: e.config.detach_keys.clone(),
            pid: if running { e.pid } else { 0 },
        })
    }

    /// dockerd reports every OOM kill in a container's cgroup, also one that ends an exec while
    /// the container runs on: an `oom` event when the count grew past `base` during the exec.
    async fn emit_exec_oom(&self, container_id: &str, base: u64) {
        let grew = self.oom_kills(container_id).await.is_some_and(|n| n > base);
        if let (true, Ok(c)) = (grew, self.snapshot(container_id)) {
            self.emit(&c, "oom", &[]);
        }
    }

    /// Resizes a container's or an exec's terminal.
    pub async fn resize(
        &self,
        container: Option<&str>,
        exec_id: Option<&str>,
        h: u16,
        w: u16,
    ) -> Result<(), ApiError> {
        let cid = match (container, exec_id) {
            (Some(k), _) => self.snapshot(k)?.id,
            (None, Some(e)) => self.exec_record(e)?.container_id,
            (None, None) => return Err(ApiError::invalid("nothing to resize")),
        };
        let c = self.snapshot(&cid)?;
        if !c.state.status.is_alive() {
            return Err(not_running(&cid));
        }
        let req = Request::Resize {
            exec_id: exec_id.map(String::from),
            size: WindowSize {
                height: h,
                width: w,
            },
        };
        self.shim(&cid)
            .call_ok(&req)
            .await
            .map_err(|e| ApiError::from_err(&e))
    }

    /// Closes attaches waiting for a start that failed.
    pub(super) fn drop_pending_attaches(&self, id: &str) {
        lock(&self.pending_attach).remove(id);
    }

    /// Forgets the execs of a removed container.
    pub(super) fn drop_execs(&self, container_id: &str) {
        lock(&self.execs).retain(|_, e| e.container_id != container_id);
        lock(&self.pending_attach).remove(container_id);
    }

    /// Exec ids of a container (for inspect).
    pub fn exec_ids(&self, container_id: &str) -> Vec<String> {
        lock(&self.execs)
            .values()
            .filter(|e| e.container_id == container_id)
            .map(|e| e.id.clone())
            .collect()
    }
}

/// Docker's outcome of an exec whose process could not start (moby's
/// `translateContainerdStartErr`): 127 when the command itself was not found, else 126, with
/// the runtime's message as "OCI runtime exec failed: …".
fn exec_start_failure(argv0: &str, shim_message: &str) -> (i64, ApiError) {
    let detail = shim_message
        .strip_prefix("runtime exec failed: ")
        .unwrap_or(shim_message);
    let lower = detail.to_ascii_lowercase();
    let not_found = !argv0.is_empty()
        && detail.contains(argv0)
        && (lower.contains("executable file not found") || lower.contains("no such file"));
    let code = if not_found { 127 } else { 126 };
    let kind = if not_found || lower.contains("permission denied") {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Internal
    };
    let message = format!("OCI runtime exec failed: {detail}");
    (code, ApiError::new(kind, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_failures_map_to_dockers_codes() {
        let (code, e) = exec_start_failure(
            "/nope",
            "runtime exec failed: exec: \"/nope\": stat /nope: no such file or directory",
        );
        assert_eq!(code, 127);
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(
            e.message,
            "OCI runtime exec failed: exec: \"/nope\": stat /nope: no such file or directory"
        );
        // A missing working directory names no command: 126.
        let (code, _) = exec_start_failure(
            "true",
            "runtime exec failed: chdir to cwd (\"/x\"): no such file or directory",
        );
        assert_eq!(code, 126);
        let (code, e) = exec_start_failure(
            "/etc/passwd",
            "runtime exec failed: exec /etc/passwd: permission denied",
        );
        assert_eq!((code, e.kind), (126, ErrorKind::InvalidArgument));
    }

    #[test]
    fn detach_key_syntax() {
        assert_eq!(parse_detach_keys("").expect("default"), [0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-a,x").expect("ok"), [1, b'x']);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }

    #[tokio::test]
    async fn stdin_pump_stops_at_detach_keys() {
        let input: &[u8] = b"hello\x10\x11ignored";
        let mut out = Vec::new();
        assert!(pump_stdin(input, &mut out, &[0x10, 0x11]).await);
        assert_eq!(out, b"hello");
        let mut out = Vec::new();
        assert!(!pump_stdin(&b"a\x10b"[..], &mut out, &[0x10, 0x11]).await);
        assert_eq!(out, b"a\x10b");
    }
}
