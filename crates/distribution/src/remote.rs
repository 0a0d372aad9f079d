//! `docker manifest inspect`: a manifest, or every manifest of an index, read straight from
//! the registry with the platform each serves. The CLI prints them in Docker's JSON; the raw
//! bytes are kept because docker prints them with their own key order.

use bytes::Bytes;
use serde::Serialize;
use wharf_image::{Digest, Reference};

use crate::client::Repo;
use crate::error::DistributionError;
use crate::manifest::{self, Fetched};
use crate::Registry;

/// One manifest as the registry serves it.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    /// `name:tag`, or `name[:tag]@digest` for an entry of an index.
    pub reference: String,
    /// Its descriptor, with the platform of its config (or of its index entry).
    pub descriptor: RemoteDescriptor,
    /// The manifest's bytes as served.
    pub raw: Bytes,
}

/// An OCI descriptor in the field order Go marshals `ocispec.Descriptor`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<RemotePlatform>,
}

/// `ocispec.Platform`, in Go's field order.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RemotePlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// What a reference names on the registry.
#[derive(Debug, Clone)]
pub enum RemoteView {
    /// One image manifest.
    Manifest(Box<RemoteManifest>),
    /// An index: each of its image manifests, with its entry's platform.
    List(Vec<RemoteManifest>),
}

impl Registry {
    /// Reads what `reference` (`:latest` when it has neither tag nor digest) names.
    pub async fn remote_view(
        &self,
        reference: &Reference,
        creds: Option<&crate::Credentials>,
    ) -> Result<RemoteView, DistributionError> {
        let reference = reference.clone().with_default_tag();
        let tag_or_digest = manifest::tag_or_digest(&reference);
        self.on_pull_endpoints(&reference, creds, |repo| {
            let (reference, tag_or_digest) = (&reference, &tag_or_digest);
            async move { view_on(&repo, reference, tag_or_digest).await }
        })
        .await
    }
}

async fn view_on(
    repo: &Repo,
    reference: &Reference,
    tag_or_digest: &str,
) -> Result<RemoteView, DistributionError> {
    let (fetched, digest, raw) = manifest::fetch(repo, tag_or_digest).await?;
    match fetched {
        Fetched::Image(m) => Ok(RemoteView::Manifest(Box::new(
            with_config_platform(repo, reference.to_string(), m, digest, raw).await?,
        ))),
        Fetched::Index(index) => {
            let mut out = Vec::new();
            for entry in index.manifests {
                let (child, d, bytes) = manifest::fetch(repo, entry.digest.as_str()).await?;
                let Fetched::Image(m) = child else {
                    continue;
                };
                // Docker's `WithDigest`: the tag stays, the digest is the entry's.
                let tag = reference.tag().map(|t| format!(":{t}")).unwrap_or_default();
                let named = format!("{}{tag}@{d}", reference.name());
                let mut one = with_config_platform(repo, named, m, d, bytes).await?;
                // As docker's CLI: the index entry's platform wins over the config's.
                one.descriptor.platform = entry.platform.map(|p| RemotePlatform {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant.unwrap_or_default(),
                    ..Default::default()
                });
                out.push(one);
            }
            Ok(RemoteView::List(out))
        }
    }
}

async fn with_config_platform(
    repo: &Repo,
    reference: String,
    m: wharf_image::Manifest,
    digest: Digest,
    raw: Bytes,
) -> Result<RemoteManifest, DistributionError> {
    let config = crate::pull::fetch_config(repo, &m).await?;
    let platform: RemotePlatform = serde_json::from_slice(&config)
        .map_err(|e| DistributionError::InvalidManifest(format!("invalid image config: {e}")))?;
    let media_type = if m.media_type.is_empty() {
        wharf_image::MT_OCI_MANIFEST.to_string()
    } else {
        m.media_type.clone()
    };
    Ok(RemoteManifest {
        reference,
        descriptor: RemoteDescriptor {
            media_type,
            digest: digest.to_string(),
            size: raw.len() as u64,
            platform: Some(platform),
        },
        raw,
    })
}
