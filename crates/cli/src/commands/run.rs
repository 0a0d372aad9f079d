//! `run`, `create`, `start`, `attach`, `exec`: the commands that attach to processes.

use std::io::Write;

use serde_json::Value;
use wharf_client::{ClientError, Query};
use wharf_errdefs::{Classify, ErrorKind};

use super::create::{self, expand_env, read_env_files};
use super::session::{parse_detach_keys, Outcome, Session};
use super::{enc, inspect_container, out, Ctx, StatusError};
use wharf_api_types::exec::{ExecConfig, ExecStartConfig};

use crate::cli::{AttachArgs, CreateArgs, ExecArgs, RunArgs, StartArgs};

const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

fn detach_keys(ctx: &Ctx, flag: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let s = flag
        .or(ctx.config.detach_keys.as_deref())
        .unwrap_or(DEFAULT_DETACH_KEYS);
    parse_detach_keys(s)
        .map_err(|e| StatusError::exit(125, format!("Invalid detach keys ({s}) provided: {e}")))
}

/// Docker's mapping of a failed start to an exit code: 127 not found, 126 cannot invoke.
pub(crate) fn start_error_code(msg: &str) -> i32 {
    let m = msg.to_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

/// Creates the container, pulling the image when it is missing (`--pull missing`).
fn create_container(ctx: &Ctx, a: &CreateArgs, detach: bool) -> anyhow::Result<String> {
    let extra_env: Vec<String> = ctx
        .config
        .proxies
        .get("default")
        .map(|p| p.env())
        .unwrap_or_default();
    if let Some(msg) = create::windows_only_flags(a) {
        return Err(StatusError::exit(1, msg));
    }
    let mut req = create::build(a, detach, &extra_env)
        .map_err(|e| StatusError::exit(125, format!("wharf: {e}")))?;
    let forward_creds = a.use_api_socket && !ctx.config.auths.is_empty();
    if a.use_api_socket {
        create::add_api_socket(&mut req.body, ctx.client.host(), forward_creds)
            .map_err(|e| StatusError::exit(125, format!("wharf: {e}")))?;
    }
    let q = Query::new()
        .opt("name", req.name.clone())
        .opt("platform", req.platform.clone());
    if a.pull == "always" {
        super::image::pull_image(ctx, &a.image, req.platform.as_deref(), a.quiet)
            .map_err(|e| StatusError::exit(125, format!("wharf: {e}")))?;
    }
    let resp = match ctx.client.post("/containers/create", &q, Some(&req.body)) {
        Err(e @ ClientError::Api { .. })
            if e.kind() == ErrorKind::NotFound && a.pull == "missing" =>
        {
            eprintln!("Unable to find image '{}' locally", normalise_ref(&a.image));
            super::image::pull_image(ctx, &a.image, req.platform.as_deref(), a.quiet)
                .map_err(|pe| StatusError::exit(125, format!("wharf: {pe}")))?;
            ctx.client.post("/containers/create", &q, Some(&req.body))
        }
        other => other,
    }
    .map_err(|e| StatusError::exit(125, format!("wharf: {e}")))?;
    let v: Value = resp.json()?;
    for w in v
        .get("Warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = v
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if forward_creds {
        copy_credentials(ctx, &id).map_err(|e| {
            StatusError::exit(
                125,
                format!("wharf: injecting docker config.json into container failed: {e}"),
            )
        })?;
    }
    if let Some(f) = &a.cidfile {
        std::fs::write(f, &id).map_err(|e| {
            StatusError::exit(
                125,
                format!("wharf: failed to write the container ID to the file: {e}"),
            )
        })?;
    }
    Ok(id)
}

/// Copies a config.json holding only our stored credentials into the new container (mode
/// 0600), where `--use-api-socket` points `DOCKER_CONFIG`, as docker 28 does.
fn copy_credentials(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let staging = std::env::temp_dir().join(format!("wharf-api-socket-{}", std::process::id()));
    let packed = (|| {
        let dir = staging.join(create::API_SOCKET_CONFIG_DIR.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("config.json");
        let config = serde_json::json!({"auths": ctx.config.auths});
        std::fs::write(&file, serde_json::to_vec_pretty(&config)?)?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let top = create::API_SOCKET_CONFIG_DIR
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("run");
        super::cp::create_tar(&staging.join(top).to_string_lossy(), false, None)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let tar = packed?;
    let q = Query::new()
        .set("path", "/")
        .set("noOverwriteDirNonDir", "true");
    ctx.client.request(
        "PUT",
        &format!("/containers/{}/archive", enc(id)),
        &q,
        wharf_client::RequestBody::Stream {
            content_type: "application/x-tar",
            reader: &mut tar.as_slice(),
        },
    )?;
    Ok(())
}

fn normalise_ref(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// `create`: prints the new ID.
pub(crate) fn create(ctx: &Ctx, a: &CreateArgs) -> anyhow::Result<i32> {
    let id = create_container(ctx, a, false)?;
    out(&format!("{id}\n"));
    Ok(0)
}

fn start(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    ctx.client
        .post(
            &format!("/containers/{}/start", enc(id)),
            &Query::new(),
            None,
        )
        .map_err(|e| StatusError::exit(start_error_code(&e.message()), format!("wharf: {e}")))?;
    Ok(())
}

/// `run`: create, attach, start, then exit with the container's code.
pub(crate) fn run(ctx: &Ctx, run: &RunArgs) -> anyhow::Result<i32> {
    let a = &run.opts;
    if a.rm && a.restart != "no" {
        return Err(StatusError::exit(
            125,
            "wharf: Conflicting options: --restart and --rm",
        ));
    }
    let keys = detach_keys(ctx, run.detach_keys.as_deref())?;
    let id = create_container(ctx, a, run.detach)?;
    if run.detach {
        start(ctx, &id)?;
        out(&format!("{id}\n"));
        return Ok(0);
    }
    let c = &ctx.client;
    // Register the wait before starting so a fast exit (or --rm removal) cannot be missed.
    let condition = if a.rm { "removed" } else { "next-exit" };
    let wait = c.send(
        "POST",
        &format!("/containers/{id}/wait"),
        &Query::new().set("condition", condition),
        None,
    )?;
    let attach_stdin =
        a.interactive && (a.attach.is_empty() || a.attach.iter().any(|s| s == "stdin"));
    let want = |s: &str| a.attach.is_empty() || a.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
    let q = Query::new()
        .flag("stream", true)
        .flag("stdin", attach_stdin)
        .flag("stdout", want("stdout"))
        .flag("stderr", want("stderr"));
    let stream = c.hijack("POST", &format!("/containers/{id}/attach"), &q, None)?;
    let session = Session {
        client: c,
        tty: a.tty,
        stdin: attach_stdin,
        detach_keys: keys,
        resize_path: a.tty.then(|| format!("/containers/{id}/resize")),
        kill_path: (run.sig_proxy && !a.tty).then(|| format!("/containers/{id}/kill")),
    };
    if session.run(stream, || start(ctx, &id))? == Outcome::Detached {
        return Ok(0);
    }
    wait_code(wait)
}

fn wait_code(wait: wharf_client::Pending) -> anyhow::Result<i32> {
    let v: Value = wait.response()?.json()?;
    if let Some(msg) = v
        .pointer("/Error/Message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        eprintln!("wharf: {msg}");
    }
    Ok(v.get("StatusCode")
        .and_then(Value::as_i64)
        .map_or(125, |c| c as i32))
}

/// `start`: starts each container; with `-a` attaches to the (single) container and exits with
/// its code.
pub(crate) fn start_cmd(ctx: &Ctx, a: &StartArgs) -> anyhow::Result<i32> {
    if !a.attach && !a.interactive {
        let mut code = 0;
        for n in &a.containers {
            match ctx.client.post(
                &format!("/containers/{}/start", enc(n)),
                &Query::new(),
                None,
            ) {
                Ok(_) => out(&format!("{n}\n")),
                Err(e) => {
                    eprintln!("{e}");
                    code = 1;
                }
            }
        }
        if code != 0 {
            eprintln!(
                "Error: failed to start containers: {}",
                a.containers.join(", ")
            );
        }
        return Ok(code);
    }
    let [name] = a.containers.as_slice() else {
        return Err(StatusError::exit(
            1,
            "Error: you cannot start and attach multiple containers at once",
        ));
    };
    let keys = detach_keys(ctx, a.detach_keys.as_deref())?;
    let info = inspect_container(&ctx.client, name)?;
    let id = info
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    let tty = info
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let open_stdin = info
        .pointer("/Config/OpenStdin")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stdin = a.interactive && open_stdin;
    let c = &ctx.client;
    let wait = c.send(
        "POST",
        &format!("/containers/{id}/wait"),
        &Query::new().set("condition", "next-exit"),
        None,
    )?;
    let q = Query::new()
        .flag("stream", true)
        .flag("stdin", stdin)
        .flag("stdout", true)
        .flag("stderr", true);
    let stream = c.hijack("POST", &format!("/containers/{id}/attach"), &q, None)?;
    let session = Session {
        client: c,
        tty,
        stdin,
        detach_keys: keys,
        resize_path: tty.then(|| format!("/containers/{id}/resize")),
        kill_path: (!tty).then(|| format!("/containers/{id}/kill")),
    };
    if session.run(stream, || start(ctx, &id))? == Outcome::Detached {
        return Ok(0);
    }
    wait_code(wait)
}

/// `attach`: attaches to a running container; exits with its code when it ends.
pub(crate) fn attach(ctx: &Ctx, a: &AttachArgs) -> anyhow::Result<i32> {
    let keys = detach_keys(ctx, a.detach_keys.as_deref())?;
    let info = inspect_container(&ctx.client, &a.container)?;
    let id = info
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or(&a.container)
        .to_string();
    if !info
        .pointer("/State/Running")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Err(StatusError::exit(
            1,
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if info
        .pointer("/State/Paused")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Err(StatusError::exit(
            1,
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    let tty = info
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stdin = !a.no_stdin
        && info
            .pointer("/Config/OpenStdin")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let c = &ctx.client;
    let q = Query::new()
        .flag("stream", true)
        .flag("stdin", stdin)
        .flag("stdout", true)
        .flag("stderr", true)
        .opt("detachKeys", a.detach_keys.clone());
    // Registered first so the exit code is the one the session ends with, not a racy inspect.
    let wait = c.send(
        "POST",
        &format!("/containers/{id}/wait"),
        &Query::new().set("condition", "next-exit"),
        None,
    )?;
    let stream = c.hijack("POST", &format!("/containers/{id}/attach"), &q, None)?;
    let session = Session {
        client: c,
        tty,
        stdin,
        detach_keys: keys,
        resize_path: tty.then(|| format!("/containers/{id}/resize")),
        kill_path: (a.sig_proxy && !tty).then(|| format!("/containers/{id}/kill")),
    };
    if session.run(stream, || Ok(()))? == Outcome::Detached {
        // docker attach reports a detach as this error and exits 1 (run -it exits 0).
        return Err(StatusError::exit(1, "read escape sequence"));
    }
    wait_code(wait)
}

/// `exec`: runs a process in a container; exits with its code.
pub(crate) fn exec(ctx: &Ctx, a: &ExecArgs) -> anyhow::Result<i32> {
    let keys = detach_keys(ctx, a.detach_keys.as_deref())?;
    let mut env = read_env_files(&a.env_file)?;
    env.extend(a.env.iter().filter_map(|e| expand_env(e)));
    let c = &ctx.client;
    let body = serde_json::to_value(ExecConfig {
        attach_stdin: a.interactive && !a.detach,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        tty: a.tty,
        cmd: Some(a.command.clone()),
        env: Some(env),
        user: a.user.clone().unwrap_or_default(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        privileged: a.privileged,
        detach_keys: a.detach_keys.clone().unwrap_or_default(),
        console_size: if a.tty {
            crate::tty::size(1).map(|(h, w)| [u32::from(h), u32::from(w)])
        } else {
            None
        },
    })?;
    let created: Value = c
        .post(
            &format!("/containers/{}/exec", enc(&a.container)),
            &Query::new(),
            Some(&body),
        )?
        .json()?;
    let exec_id = created
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if a.detach {
        c.post(
            &format!("/exec/{exec_id}/start"),
            &Query::new(),
            Some(&serde_json::to_value(ExecStartConfig {
                detach: true,
                tty: a.tty,
                console_size: None,
            })?),
        )?;
        return Ok(0);
    }
    let stream = c.hijack(
        "POST",
        &format!("/exec/{exec_id}/start"),
        &Query::new(),
        Some(&serde_json::to_value(ExecStartConfig {
            detach: false,
            tty: a.tty,
            console_size: None,
        })?),
    )?;
    let session = Session {
        client: c,
        tty: a.tty,
        stdin: a.interactive,
        detach_keys: keys,
        resize_path: a.tty.then(|| format!("/exec/{exec_id}/resize")),
        kill_path: None,
    };
    if session.run(stream, || Ok(()))? == Outcome::Detached {
        return Ok(0);
    }
    let _ = std::io::stdout().flush();
    let v: Value = c.get_json(&format!("/exec/{exec_id}/json"), &Query::new())?;
    Ok(v.get("ExitCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_codes() {
        assert_eq!(
            start_error_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_error_code("open /x: no such file or directory"), 127);
        assert_eq!(start_error_code("exec /etc/passwd: permission denied"), 126);
        assert_eq!(start_error_code("cgroup trouble"), 125);
    }

    #[test]
    fn references_get_latest() {
        assert_eq!(normalise_ref("busybox"), "busybox:latest");
        assert_eq!(normalise_ref("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            normalise_ref("localhost:5000/bb"),
            "localhost:5000/bb:latest"
        );
    }
}
