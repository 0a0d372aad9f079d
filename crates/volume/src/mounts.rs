//! Container mounts: Docker's `-v`/`Binds` syntax, the resolved record a container keeps
//! (`MountPoints`), and the OCI mount each one becomes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VolumeError};

/// What a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    #[default]
    Bind,
    /// A named or anonymous volume.
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

impl MountKind {
    /// Docker's name.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// A mount asked for at create time, before any volume is resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountRequest {
    /// Kind.
    pub kind: MountKind,
    /// Host path (bind) or volume name (empty: anonymous).
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// The `-v` mode string as given (inspect shows it).
    pub mode: String,
    /// Bind propagation (empty: `rprivate`).
    pub propagation: String,
    /// Do not copy image content into a new volume.
    pub nocopy: bool,
    /// Mount only this path inside the volume.
    pub subpath: String,
    /// Volume driver (empty: `local`).
    pub driver: String,
    /// Driver options for a volume created here.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels for a volume created here.
    pub labels: BTreeMap<String, String>,
    /// tmpfs size in bytes (0: kernel default).
    pub tmpfs_size: i64,
    /// tmpfs mode (0: default).
    pub tmpfs_mode: u32,
    /// Bind without submounts.
    pub nonrecursive: bool,
    /// Create a missing bind source (`-v` does, `--mount` refuses).
    pub create_source: bool,
}

/// A resolved mount, kept in the container record (dockerd's `MountPoints`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// Kind.
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// Volume name (volumes only).
    pub name: String,
    /// Volume driver (volumes only).
    pub driver: String,
    /// Host path: the bind source or the volume's mount point.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Mode string shown by inspect.
    pub mode: String,
    /// Bind propagation.
    pub propagation: String,
    /// Copy image content into the volume on first start.
    pub copy_data: bool,
    /// Path inside the volume to mount.
    pub subpath: String,
    /// Bind without submounts.
    pub nonrecursive: bool,
    /// tmpfs mount options (`size=…,mode=…`).
    pub tmpfs_options: String,
}

/// One OCI `mounts` entry, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciMount {
    /// Path in the container.
    pub destination: String,
    /// `bind` or `tmpfs`.
    pub kind: String,
    /// Host path or `tmpfs`.
    pub source: String,
    /// Options.
    pub options: Vec<String>,
}

impl MountPoint {
    /// The OCI mount for this point, with the volume's host path `source` already resolved
    /// (subpath included) for volumes.
    pub fn oci(&self, source: &str) -> OciMount {
        let mut options = Vec::new();
        match self.kind {
            MountKind::Tmpfs => {
                options.extend(["nosuid", "nodev", "noexec"].map(String::from));
                options.extend(
                    self.tmpfs_options
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(String::from),
                );
                if !self.rw {
                    options.push("ro".into());
                }
                return OciMount {
                    destination: self.destination.clone(),
                    kind: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options,
                };
            }
            MountKind::Bind if self.nonrecursive => options.push("bind".into()),
            _ => options.push("rbind".into()),
        }
        if !self.rw {
            options.push("ro".into());
        }
        options.push(if self.propagation.is_empty() {
            "rprivate".into()
        } else {
            self.propagation.clone()
        });
        OciMount {
            destination: self.destination.clone(),
            kind: "bind".into(),
            source: source.to_string(),
            options,
        }
    }
}

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

fn invalid_spec(spec: &str) -> VolumeError {
    VolumeError::Invalid(format!("invalid volume specification: '{spec}'"))
}

/// Docker's "mount path must be absolute" and "destination can't be '/'" checks.
pub fn check_target(kind: MountKind, target: &str) -> Result<()> {
    if !target.starts_with('/') {
        return Err(VolumeError::Invalid(format!(
            "invalid mount config for type \"{}\": invalid mount path: '{target}' mount path must be absolute",
            kind.as_str()
        )));
    }
    if target.trim_end_matches('/').is_empty() {
        return Err(VolumeError::Invalid(format!(
            "invalid mount config for type \"{}\": invalid specification: destination can't be '/'",
            kind.as_str()
        )));
    }
    Ok(())
}

fn valid_mode(mode: &str, kind: MountKind) -> bool {
    let (mut rw, mut label, mut prop, mut copy) = (0, 0, 0, 0);
    for o in mode.split(',') {
        match o {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            "nocopy" if kind == MountKind::Volume => copy += 1,
            p if PROPAGATIONS.contains(&p) && kind == MountKind::Bind => prop += 1,
            "consistent" | "cached" | "delegated" => {}
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1
}

/// Parses one `-v`/`Binds` entry: `/path`, `name:/path[:mode]` or `/host:/path[:mode]`.
pub fn parse_bind_spec(spec: &str) -> Result<MountRequest> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => {
            if valid_mode(t, MountKind::Bind) || valid_mode(t, MountKind::Volume) {
                // `/path:ro`: an anonymous volume cannot take a mode.
                return Err(invalid_spec(spec));
            }
            (*s, *t, "")
        }
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid_spec(spec)),
    };
    if source.is_empty() && parts.len() > 1 {
        return Err(invalid_spec(spec));
    }
    let kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    check_target(kind, target).map_err(|e| {
        VolumeError::Invalid(format!("invalid volume specification: '{spec}': {e}"))
    })?;
    if !mode.is_empty() && !valid_mode(mode, kind) {
        return Err(VolumeError::Invalid(format!("invalid mode: {mode}")));
    }
    let opts: Vec<&str> = mode.split(',').collect();
    Ok(MountRequest {
        kind,
        source: source.to_string(),
        target: target.to_string(),
        read_only: opts.contains(&"ro"),
        mode: mode.to_string(),
        propagation: opts
            .iter()
            .find(|o| PROPAGATIONS.contains(o))
            .map(|p| p.to_string())
            .unwrap_or_default(),
        nocopy: opts.contains(&"nocopy"),
        create_source: true,
        ..Default::default()
    })
}

/// `tmpfs-size`/`tmpfs-mode` as mount options.
pub fn tmpfs_options(size: i64, mode: u32) -> String {
    let mut o = Vec::new();
    if size > 0 {
        o.push(format!("size={size}"));
    }
    if mode > 0 {
        o.push(format!("mode={mode:o}"));
    }
    o.join(",")
}

/// One `--volumes-from` parent: its mount points and the ro/rw override (`None`: keep each).
pub type VolumesFrom = (Vec<MountPoint>, Option<bool>);

/// `--volumes-from c[:ro|rw]`: the container and whether its mounts become read-only
/// (`None`: keep each mount's own mode).
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>)> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((c, "ro")) => Ok((c.to_string(), Some(true))),
        Some((c, "rw")) => Ok((c.to_string(), Some(false))),
        Some((_, m)) => Err(VolumeError::Invalid(format!("invalid mode: {m}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_syntax_like_docker() {
        let r = parse_bind_spec("/data").expect("anon");
        assert_eq!(
            (r.kind, r.source.as_str(), r.target.as_str()),
            (MountKind::Volume, "", "/data")
        );
        let r = parse_bind_spec("vol:/data:ro,nocopy").expect("named");
        assert!(r.read_only && r.nocopy && r.kind == MountKind::Volume);
        let r = parse_bind_spec("/host:/c:ro,rshared").expect("bind");
        assert!(r.read_only && r.create_source && r.kind == MountKind::Bind);
        assert_eq!(r.propagation, "rshared");
        let err = |s: &str| parse_bind_spec(s).expect_err(s).to_string();
        assert_eq!(err("/data:ro"), "invalid volume specification: '/data:ro'");
        assert_eq!(err("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(
            err("vol:rel"),
            "invalid volume specification: 'vol:rel': invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            err("/h:/"),
            "invalid volume specification: '/h:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(err("vol:/d:rshared"), "invalid mode: rshared");
        assert_eq!(err("/h:/d:nocopy"), "invalid mode: nocopy");
        assert_eq!(err("/h:/d:ro,rw"), "invalid mode: ro,rw");
    }

    #[test]
    fn oci_mounts() {
        let mp = MountPoint {
            kind: MountKind::Volume,
            destination: "/d".into(),
            rw: false,
            ..Default::default()
        };
        assert_eq!(mp.oci("/v/_data").options, ["rbind", "ro", "rprivate"]);
        let t = MountPoint {
            kind: MountKind::Tmpfs,
            destination: "/t".into(),
            rw: true,
            tmpfs_options: tmpfs_options(1 << 20, 0o1777),
            ..Default::default()
        };
        assert_eq!(
            t.oci("").options,
            ["nosuid", "nodev", "noexec", "size=1048576", "mode=1777"]
        );
        assert_eq!(
            parse_volumes_from("db:ro").expect("ro"),
            ("db".into(), Some(true))
        );
        assert!(parse_volumes_from("db:xx").is_err());
    }
}
