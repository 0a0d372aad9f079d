//! `GET /distribution/{name}/json`: what the registry holds for a reference (its descriptor
//! and platforms), without pulling anything.

use serde::Serialize;
use wharf_image::Reference;

use crate::client::Repo;
use crate::error::DistributionError;
use crate::manifest::{self, Fetched};
use crate::Registry;

/// Docker's `DistributionInspect`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DistributionInspect {
    /// The manifest (or index) the reference names.
    pub descriptor: InspectDescriptor,
    /// The platforms it serves.
    pub platforms: Vec<InspectPlatform>,
}

/// An OCI descriptor in Docker's JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
}

/// One platform.
#[derive(Debug, Clone, Serialize)]
pub struct InspectPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Registry {
    /// Looks `reference` up on its registry.
    pub async fn inspect(
        &self,
        reference: &Reference,
        creds: Option<&crate::Credentials>,
    ) -> Result<DistributionInspect, DistributionError> {
        let reference = reference.clone().with_default_tag();
        let tag_or_digest = manifest::tag_or_digest(&reference);
        self.on_pull_endpoints(&reference, creds, |repo| {
            let tag_or_digest = &tag_or_digest;
            async move { inspect_on(&repo, tag_or_digest).await }
        })
        .await
        .map_err(|e| crate::pull::docker_words(e, &reference))
    }
}

async fn inspect_on(
    repo: &Repo,
    tag_or_digest: &str,
) -> Result<DistributionInspect, DistributionError> {
    let (fetched, digest, bytes) = manifest::fetch(repo, tag_or_digest).await?;
    let (media_type, platforms) = match &fetched {
        Fetched::Index(i) => (
            or(&i.media_type, wharf_image::MT_OCI_INDEX),
            i.manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| InspectPlatform {
                    architecture: p.architecture.clone(),
                    os: p.os.clone(),
                    variant: p.variant.clone().unwrap_or_default(),
                })
                .collect(),
        ),
        Fetched::Image(m) => {
            let config = crate::pull::fetch_config(repo, m).await?;
            let c: wharf_image::ImageConfig = serde_json::from_slice(&config).map_err(|e| {
                DistributionError::InvalidManifest(format!("invalid image config: {e}"))
            })?;
            (
                or(&m.media_type, wharf_image::MT_OCI_MANIFEST),
                vec![InspectPlatform {
                    architecture: c.architecture,
                    os: c.os,
                    variant: c.variant.unwrap_or_default(),
                }],
            )
        }
    };
    Ok(DistributionInspect {
        descriptor: InspectDescriptor {
            media_type,
            digest: digest.to_string(),
            size: bytes.len(),
        },
        platforms,
    })
}

fn or(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_string()
}
