//! Serving the control requests ([`Request`]): state checks, runtime verbs and execs.

use std::fs;
use std::io;

use wharf_shim_proto::{ContainerState, ErrorCode, Request, Response, Status};

use super::{read_pid, AttachSpec, Phase, Proc, Shim};
use crate::console::{set_size, ConsoleSocket};
use crate::runtime::{verbs, RuntimeError};
use crate::stdio::{launch, LaunchError};

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestError {
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl RequestError {
    pub(super) fn response(&self) -> Response {
        let code = match self {
            RequestError::Conflict(_) => ErrorCode::Conflict,
            RequestError::NotFound(_) => ErrorCode::NotFound,
            RequestError::Invalid(_) => ErrorCode::InvalidArgument,
            RequestError::Runtime(_) | RequestError::Launch(_) | RequestError::Io(_) => {
                ErrorCode::Internal
            }
        };
        Response::Error {
            code,
            message: self.to_string(),
        }
    }
}

impl Shim {
    /// Serves one request: the immediate answer (none while waiting) and the client's next phase.
    pub(super) fn dispatch(
        &mut self,
        req: Request,
    ) -> Result<(Option<Response>, Phase), RequestError> {
        let id = self.cfg.id.clone();
        let ok = Ok((Some(Response::Ok), Phase::Done));
        match req {
            Request::Start => {
                if self.status != Status::Created {
                    return Err(RequestError::Conflict(
                        "container is not in the created state",
                    ));
                }
                self.runtime.run(verbs::start(&id))?;
                self.status = Status::Running;
                Ok((
                    Some(Response::Started {
                        pid: self.procs[0].pid,
                    }),
                    Phase::Done,
                ))
            }
            Request::State => Ok((Some(Response::State(self.state())), Phase::Done)),
            Request::Wait => match (&self.exit, self.procs[0].done) {
                (Some(exit), true) => Ok((Some(Response::Exited(exit.clone())), Phase::Done)),
                _ => Ok((None, Phase::WaitInit)),
            },
            Request::Kill { signal, all } => {
                self.require_alive()?;
                self.runtime.run(verbs::kill(&id, signal, all))?;
                ok
            }
            Request::Pause => {
                if self.status != Status::Running {
                    return Err(RequestError::Conflict("container is not running"));
                }
                self.runtime.run(verbs::pause(&id))?;
                self.status = Status::Paused;
                ok
            }
            Request::Resume => {
                if self.status != Status::Paused {
                    return Err(RequestError::Conflict("container is not paused"));
                }
                self.runtime.run(verbs::resume(&id))?;
                self.status = Status::Running;
                ok
            }
            Request::Update { resources } => {
                self.require_alive()?;
                let file = self.dir.join("update.json");
                fs::write(&file, resources.to_string())?;
                let result = self.runtime.run(verbs::update(&id, &file));
                let _ = fs::remove_file(&file);
                result?;
                ok
            }
            Request::Resize { exec_id, size } => {
                let p = self.find_proc(exec_id.as_deref())?;
                let pty = self.procs[p]
                    .io
                    .pty
                    .as_ref()
                    .ok_or(RequestError::Conflict("the process has no terminal"))?;
                set_size(pty, size)?;
                ok
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if self.procs[0].done {
                    return Err(RequestError::Conflict("container has exited"));
                }
                Ok((
                    Some(Response::Ok),
                    Phase::Attach(AttachSpec {
                        proc: 0,
                        stdin,
                        stdout,
                        stderr,
                    }),
                ))
            }
            Request::Exec {
                exec_id,
                process,
                stdin,
                stdout,
                stderr,
                detach,
            } => {
                let p = self.exec(exec_id, &process, stdin && !detach)?;
                let pid = self.procs[p].pid;
                let phase = match detach {
                    true => Phase::Done,
                    false => Phase::Attach(AttachSpec {
                        proc: p,
                        stdin,
                        stdout,
                        stderr,
                    }),
                };
                Ok((Some(Response::Started { pid }), phase))
            }
            Request::ExecState { exec_id, wait } => {
                let p = self.find_proc(Some(&exec_id))?;
                if wait && !self.procs[p].done {
                    return Ok((None, Phase::WaitExec(p)));
                }
                Ok((Some(self.exec_state(p)), Phase::Done))
            }
            Request::Shutdown => {
                // A created container would never exit on its own. Best effort: after a failed
                // start its init may already be gone, and Shutdown must still take effect.
                if self.status == Status::Created && self.exit.is_none() {
                    let _ = self.runtime.run(verbs::kill(&id, 9, false));
                }
                self.shutdown = true;
                self.listener = None; // unlinks the socket
                ok
            }
        }
    }

    fn require_alive(&self) -> Result<(), RequestError> {
        match self.exit {
            Some(_) => Err(RequestError::Conflict("container is not running")),
            None => Ok(()),
        }
    }

    fn state(&self) -> ContainerState {
        ContainerState {
            status: self.status,
            pid: self.procs[0].pid,
            exit: self.exit.clone(),
        }
    }

    pub(super) fn exec_state(&self, p: usize) -> Response {
        let proc = &self.procs[p];
        Response::ExecState {
            pid: proc.pid,
            running: proc.exit_code.is_none(),
            exit_code: proc.exit_code,
        }
    }

    fn find_proc(&self, exec_id: Option<&str>) -> Result<usize, RequestError> {
        let Some(id) = exec_id else { return Ok(0) };
        self.procs
            .iter()
            .position(|p| p.exec_id.as_deref() == Some(id))
            .ok_or_else(|| RequestError::NotFound(format!("no such exec: {id}")))
    }

    /// Starts an exec through `runtime exec --detach`; it is re-parented to the shim.
    fn exec(
        &mut self,
        exec_id: String,
        process: &serde_json::Value,
        stdin: bool,
    ) -> Result<usize, RequestError> {
        validate_exec_id(&exec_id)?;
        if self.find_proc(Some(&exec_id)).is_ok() {
            return Err(RequestError::Conflict("exec id is already in use"));
        }
        if self.status != Status::Running {
            return Err(RequestError::Conflict("container is not running"));
        }
        let tty = process
            .get("terminal")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        let process_file = self.dir.join(format!("exec-{exec_id}.json"));
        let pid_file = self.dir.join(format!("exec-{exec_id}.pid"));
        fs::write(&process_file, process.to_string())?;
        let console = match tty {
            true => Some(ConsoleSocket::bind(&self.dir.join("exec-tty.sock"))?),
            false => None,
        };
        let args = verbs::exec(
            &self.cfg.id,
            &process_file,
            &pid_file,
            console.as_ref().map(|c| c.path()),
        );
        let io = launch(&self.runtime, args, console.as_ref(), stdin);
        let _ = fs::remove_file(&process_file);
        let io = io?;
        let pid = read_pid(&pid_file);
        let _ = fs::remove_file(&pid_file);
        self.procs.push(Proc::new(Some(exec_id), pid?, tty, io));
        Ok(self.procs.len() - 1)
    }
}

/// Exec ids become file names, so they are restricted to a safe alphabet.
fn validate_exec_id(id: &str) -> Result<(), RequestError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !id.starts_with('.');
    match valid {
        true => Ok(()),
        false => Err(RequestError::Invalid(format!("invalid exec id {id:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids_are_safe_file_names() {
        assert!(validate_exec_id("e1-abc_DEF.2").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_exec_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_exec_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn request_errors_map_to_protocol_codes() {
        let code = |e: RequestError| match e.response() {
            Response::Error { code, .. } => code,
            other => panic!("not an error: {other:?}"),
        };
        assert_eq!(code(RequestError::Conflict("x")), ErrorCode::Conflict);
        assert_eq!(
            code(RequestError::NotFound("x".into())),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(RequestError::Invalid("x".into())),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(RequestError::Io(io::Error::other("x"))),
            ErrorCode::Internal
        );
    }
}
