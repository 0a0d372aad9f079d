//! Lifecycle hooks: run each with the OCI state on stdin, honouring its timeout.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{LibcontainerError, Result};
use crate::state::OciState;

/// Runs `hooks` in order; the first failure stops the list.
pub fn run(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &OciState) -> Result<()> {
    let input = serde_json::to_vec(state).map_err(|e| LibcontainerError::Io {
        op: "serialize state for hook".into(),
        source: std::io::Error::other(e),
    })?;
    for hook in hooks.into_iter().flatten() {
        run_one(kind, hook, &input)?;
    }
    Ok(())
}

/// Whether the spec has prestart or createRuntime hooks, which init must stop for.
pub fn has_runtime_hooks(hooks: Option<&Hooks>) -> bool {
    #[allow(deprecated)]
    hooks.is_some_and(|h| {
        h.prestart()
            .iter()
            .chain(h.create_runtime())
            .any(|l| !l.is_empty())
    })
}

/// Runs prestart (deprecated, same point) then createRuntime: in the runtime's namespaces,
/// once the container's mounts exist and before pivot_root.
pub fn run_runtime_hooks(hooks: Option<&Hooks>, state: &OciState) -> Result<()> {
    #[allow(deprecated)]
    run("prestart", hooks.and_then(|h| h.prestart().as_ref()), state)?;
    run(
        "createRuntime",
        hooks.and_then(|h| h.create_runtime().as_ref()),
        state,
    )
}

fn run_one(kind: &'static str, hook: &Hook, input: &[u8]) -> Result<()> {
    let path = hook.path().display().to_string();
    let fail = |reason: String| LibcontainerError::Hook {
        kind,
        path: path.clone(),
        reason,
    };
    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some(argv0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
        cmd.args(&args[1..]);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores its stdin may exit before reading it; that is not a failure.
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            break st;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    Err(fail(format!("{status}: {}", err.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn state() -> OciState {
        OciState {
            oci_version: "1.0.2".into(),
            id: "h1".into(),
            status: crate::state::ContainerStatus::Created,
            pid: Some(1),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: chrono::Utc::now(),
            annotations: HashMap::new(),
        }
    }

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).expect("hook")
    }

    #[test]
    fn hook_reads_state_and_failure_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let ok = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]}),
        );
        run("prestart", Some(&vec![ok]), &state()).expect("hook ran");
        let seen: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).expect("out")).expect("json");
        assert_eq!(seen["id"], "h1");
        let bad = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}),
        );
        let e = run("poststart", Some(&vec![bad]), &state()).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn hook_timeout_kills() {
        let slow =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}));
        let e = run("prestart", Some(&vec![slow]), &state()).unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
    }
}
