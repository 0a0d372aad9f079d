//! Loading, validating and generating a bundle's `config.json`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{LibcontainerError, Result};

/// A validated spec together with its resolved paths.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub path: PathBuf,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
    /// The parsed spec.
    pub spec: Spec,
}

fn invalid(msg: impl Into<String>) -> LibcontainerError {
    LibcontainerError::InvalidSpec(msg.into())
}

/// Reads and validates `<bundle>/config.json`.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let path = std::path::absolute(bundle)
        .map_err(|e| invalid(format!("bundle {}: {e}", bundle.display())))?;
    let config = path.join("config.json");
    let data = std::fs::read(&config).map_err(|e| invalid(format!("{}: {e}", config.display())))?;
    let spec: Spec =
        serde_json::from_slice(&data).map_err(|e| invalid(format!("{}: {e}", config.display())))?;
    validate(&spec)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("config.json has no root"))?;
    let rootfs = path.join(root.path());
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| invalid(format!("rootfs {}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(invalid(format!(
            "rootfs {} is not a directory",
            rootfs.display()
        )));
    }
    Ok(Bundle { path, rootfs, spec })
}

/// Checks what the runtime needs from a spec before it forks anything.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("config.json has no process"))?;
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid("process.args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(format!(
            "process.cwd {:?} must be absolute",
            process.cwd()
        )));
    }
    if spec.root().is_none() {
        return Err(invalid("config.json has no root"));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("config.json has no linux section"))?;
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let mut seen = HashSet::new();
    for ns in namespaces {
        if !seen.insert(ns.typ()) {
            return Err(invalid(format!("namespace {} listed twice", ns.typ())));
        }
    }
    let has = |t| seen.contains(&t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname needs a new uts namespace"));
    }
    if !has(LinuxNamespaceType::Mount) {
        check_shared_mount_namespace(spec)?;
    }
    let user_new = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        && linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if user_new && !has_maps {
        return Err(invalid(
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if !user_new && linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(invalid("uidMappings given without a new user namespace"));
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if !m.destination().is_absolute() {
            return Err(invalid(format!(
                "mount destination {:?} must be absolute",
                m.destination()
            )));
        }
    }
    Ok(())
}

/// A container without a mount namespace mounts in its caller's namespace and is only
/// chrooted (as runc): what would change the caller's own mounts is refused.
fn check_shared_mount_namespace(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let listed = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    if listed(linux.and_then(|l| l.masked_paths().as_ref()))
        || listed(linux.and_then(|l| l.readonly_paths().as_ref()))
    {
        // runc's wording.
        return Err(invalid(
            "unable to restrict sys entries without a private MNT namespace",
        ));
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return Err(invalid("a read-only root needs a private mount namespace"));
    }
    if linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .is_some_and(|p| !p.is_empty())
    {
        return Err(invalid("rootfsPropagation needs a private mount namespace"));
    }
    Ok(())
}

/// Checks a container id the way runc does: it becomes a directory name under the state root.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(LibcontainerError::InvalidId(id.to_string()))
    }
}

/// The template `wharf-runtime spec` writes: runc's defaults with plain stdio.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("wharf".into()));
    if rootless {
        spec.set_linux(Some(oci_spec::runtime::Linux::rootless(0, 0)));
        if let Some(mut p) = spec.process().clone() {
            p.set_rlimits(None);
            spec.set_process(Some(p));
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_json(patch: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut v = serde_json::to_value(default_spec(false)).expect("json");
        patch(&mut v);
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn default_spec_is_valid() {
        validate(&default_spec(false)).expect("valid");
    }

    #[test]
    fn empty_args_rejected() {
        let s = spec_json(|v| v["process"]["args"] = serde_json::json!([]));
        assert!(validate(&s).unwrap_err().to_string().contains("args"));
    }

    #[test]
    fn relative_cwd_rejected() {
        let s = spec_json(|v| v["process"]["cwd"] = "tmp".into());
        assert!(validate(&s).is_err());
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let s = spec_json(|v| {
            v["linux"]["namespaces"] = serde_json::json!([{"type":"pid"},{"type":"pid"}]);
            v["hostname"] = serde_json::Value::Null;
        });
        assert!(validate(&s).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn hostname_without_uts_rejected() {
        let s = spec_json(|v| v["linux"]["namespaces"] = serde_json::json!([{"type":"pid"}]));
        assert!(validate(&s).unwrap_err().to_string().contains("uts"));
    }

    #[test]
    fn without_a_mount_namespace_only_what_spares_the_callers_mounts_passes() {
        let shared = |v: &mut serde_json::Value| {
            let ns = v["linux"]["namespaces"].as_array_mut().expect("array");
            ns.retain(|n| n["type"] != "mount");
        };
        let plain = spec_json(|v| {
            shared(v);
            v["linux"]["maskedPaths"] = serde_json::json!([]);
            v["linux"]["readonlyPaths"] = serde_json::Value::Null;
            v["root"]["readonly"] = false.into();
        });
        validate(&plain).expect("no mount namespace is supported");
        let masked = spec_json(shared);
        let e = validate(&masked).unwrap_err().to_string();
        assert!(e.contains("without a private MNT namespace"), "{e}");
        let ro = spec_json(|v| {
            shared(v);
            v["linux"]["maskedPaths"] = serde_json::json!([]);
            v["linux"]["readonlyPaths"] = serde_json::json!([]);
            v["root"]["readonly"] = true.into();
        });
        assert!(validate(&ro)
            .unwrap_err()
            .to_string()
            .contains("read-only root"));
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let s = spec_json(|v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .expect("array")
                .push(serde_json::json!({"type":"user"}));
        });
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("uidMappings"));
    }

    #[test]
    fn unknown_namespace_fails_to_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut v = serde_json::to_value(default_spec(false)).expect("json");
        v["linux"]["namespaces"] = serde_json::json!([{"type":"bogus"}]);
        std::fs::write(dir.path().join("config.json"), v.to_string()).expect("write");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
        let e = load_bundle(dir.path()).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn missing_rootfs_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        default_spec(false)
            .save(dir.path().join("config.json"))
            .expect("save");
        let e = load_bundle(dir.path()).unwrap_err();
        assert!(e.to_string().contains("rootfs"), "{e}");
    }

    #[test]
    fn ids() {
        assert!(validate_id("c1_x-y.z").is_ok());
        for bad in ["", "..", "a/b", ".hidden", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
