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
        let tag_or_digest = match reference.digest() {
            Some(d) => d.to_string(),
            None => reference
                .tag()
                .unwrap_or(wharf_imageref::DEFAULT_TAG)
                .to_string(),
        };
        let mut last = None;
        for endpoint in self.config.endpoints(reference.domain()) {
            let mirror = endpoint.mirror;
            let repo = Repo {
                endpoint,
                path: reference.path().to_string(),
                actions: "pull",
                mount_from: None,
                creds: creds.cloned(),
                cache: self.cache.clone(),
            };
            match manifest::fetch(&repo, &tag_or_digest).await {
                Ok((fetched, digest, bytes)) => {
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
                            let config = crate::pull::fetch_config(&repo, m).await?;
                            let c: wharf_image::ImageConfig = serde_json::from_slice(&config)
                                .map_err(|e| {
                                    DistributionError::InvalidManifest(format!(
                                        "invalid image config: {e}"
                                    ))
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
                    return Ok(DistributionInspect {
                        descriptor: InspectDescriptor {
                            media_type,
                            digest: digest.to_string(),
                            size: bytes.len(),
                        },
                        platforms,
                    });
                }
                Err(e) if mirror || matches!(e, DistributionError::Transport(_)) => last = Some(e),
                Err(e) => return Err(crate::pull::docker_words(e, &reference)),
            }
        }
        Err(crate::pull::docker_words(
            last.unwrap_or_else(|| self.config.no_endpoint(reference.domain())),
            &reference,
        ))
    }
}

fn or(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_string()
}
