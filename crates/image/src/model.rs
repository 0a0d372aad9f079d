//! On-disk and wire formats: the image config, Docker/OCI manifests and indexes, chain IDs.
//!
//! Configs loaded from archives are kept as the original bytes (the image ID is their sha256);
//! these types are only for reading them and for building new ones. Unknown fields are kept in
//! `extra` maps so re-serialising a user's config loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wharf_imageref::Digest;

use crate::content::finish;

/// Docker's image manifest (schema 2).
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list.
pub const MT_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image config.
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI image manifest.
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The `config` section of an image: Docker's field names, everything optional, unknown kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attach_stdin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attach_stdout: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attach_stderr: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_stdin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields this struct does not name, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `HEALTHCHECK` settings; durations in nanoseconds as Docker stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// One `history` entry of an image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// The image config blob (Docker's and OCI's are the same JSON shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryItem>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub rootfs: RootFs,
    /// Fields this struct does not name (`os.version`, `os.features`, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// A fresh config for this host with the given layers.
    pub fn new_for_host(diff_ids: Vec<Digest>, created: String) -> ImageConfig {
        ImageConfig {
            architecture: host_arch().to_string(),
            author: None,
            comment: None,
            config: None,
            container: None,
            container_config: None,
            created: Some(created),
            docker_version: None,
            history: Vec::new(),
            os: "linux".into(),
            variant: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            extra: BTreeMap::new(),
        }
    }
}

/// The Go/OCI name of the architecture this binary runs on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// An OCI/Docker content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A descriptor's platform (in indexes / manifest lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// One entry of a docker-save `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaveManifestEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// Whether a media type is a list of manifests rather than one image.
pub fn is_index_type(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_MANIFEST_LIST
}

/// Picks the manifest for this host (linux + our architecture) from an index; a lone entry
/// without a platform is taken as is. Attestation manifests (`unknown/unknown`) never match.
pub fn pick_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let arch = host_arch();
    manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .or_else(|| {
            let unplatformed: Vec<_> = manifests.iter().filter(|d| d.platform.is_none()).collect();
            match unplatformed.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        })
}

/// Chain IDs per the OCI spec: `C0 = D0`, `Cn = sha256(Cn-1 + " " + Dn)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id_on(out.last(), d);
        out.push(next);
    }
    out
}

/// The chain ID of a layer with `diff_id` on top of the chain `parent`.
pub(crate) fn chain_id_on(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(prev) => {
            let mut h = Sha256::new();
            h.update(prev.as_str().as_bytes());
            h.update(b" ");
            h.update(diff_id.as_str().as_bytes());
            finish(h.finalize().as_slice())
        }
    }
}

/// Current time as Docker writes it: RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn chain_id_follows_the_spec() {
        let ids = chain_ids(&[d('a'), d('b')]);
        assert_eq!(ids[0], d('a'));
        let expect = crate::content::digest_of(format!("{} {}", d('a'), d('b')).as_bytes());
        assert_eq!(ids[1], expect);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn config_keeps_unknown_fields() {
        let raw = r#"{"architecture":"amd64","os":"linux","os.version":"x","config":{"Env":["A=1"],"Cmd":["sh"],"Custom":{"k":1}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c: ImageConfig = serde_json::from_str(raw).unwrap();
        assert_eq!(c.extra.get("os.version"), Some(&Value::String("x".into())));
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.env.as_deref(), Some(&["A=1".to_string()][..]));
        assert!(cc.extra.contains_key("Custom"));
        let back: Value = serde_json::to_value(&c).unwrap();
        assert_eq!(back["config"]["Custom"]["k"], 1);
        assert_eq!(back["os.version"], "x");
    }

    #[test]
    fn platform_choice() {
        let mk = |arch: &str| Descriptor {
            media_type: MT_OCI_MANIFEST.into(),
            digest: d('c'),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: None,
            }),
            annotations: None,
        };
        let list = vec![mk("s390x-nope"), mk(host_arch())];
        assert_eq!(
            pick_platform(&list)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            host_arch()
        );
        assert!(pick_platform(&[mk("s390x-nope")]).is_none());
    }
}
