//! Fetching manifests: Docker schema 2 and OCI image manifests, manifest lists and OCI
//! indexes (followed to one platform's manifest). Schema 1 is refused, as Docker 28 does.

use bytes::Bytes;
use http::{header, Method};
use wharf_image::{Digest, Index, Manifest};

use crate::client::{read_limited, registry_error, Repo};
use crate::error::DistributionError;

/// What a manifest request accepts, most wanted first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest accepted (the distribution registry's own limit is 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;
/// Layers per image accepted (far above what any storage driver stacks).
pub(crate) const MAX_LAYERS: usize = 1000;

/// A fetched manifest or index.
#[derive(Debug)]
pub(crate) enum Fetched {
    Image(Manifest),
    Index(Index),
}

/// What a manifest request names for `reference`: its digest, else its tag (`latest` if none).
pub(crate) fn tag_or_digest(reference: &wharf_image::Reference) -> String {
    match reference.digest() {
        Some(d) => d.to_string(),
        None => reference
            .tag()
            .unwrap_or(wharf_imageref::DEFAULT_TAG)
            .to_string(),
    }
}

/// GETs the manifest `reference` (a tag or a digest) and checks it against its digest.
/// Returns it with its digest and raw bytes.
pub(crate) async fn fetch(
    repo: &Repo,
    reference: &str,
) -> Result<(Fetched, Digest, Bytes), DistributionError> {
    let url = repo.url(&format!("manifests/{reference}"));
    let resp = repo
        .send(Method::GET, &url, &[(header::ACCEPT, ACCEPT.to_string())])
        .await?;
    if !resp.status().is_success() {
        return Err(registry_error(resp, &url).await);
    }
    let header_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = read_limited(resp.into_body(), MAX_MANIFEST).await?;
    let digest = wharf_image::digest_of(&bytes);
    if let Ok(want) = Digest::parse(reference) {
        if want != digest {
            return Err(DistributionError::DigestMismatch {
                expected: want.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    Ok((parse(&bytes, &header_type)?, digest, bytes))
}

/// Tells an index from an image manifest by media type, then by shape.
pub(crate) fn parse(bytes: &[u8], header_type: &str) -> Result<Fetched, DistributionError> {
    let bad = |e: String| DistributionError::InvalidManifest(format!("invalid manifest: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(DistributionError::InvalidManifest(
            "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed".into(),
        ));
    }
    let mt = value
        .get("mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or(header_type)
        .to_string();
    if wharf_image::is_index_type(&mt) || value.get("manifests").is_some() {
        let index: Index = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        return Ok(Fetched::Index(index));
    }
    let m: Manifest = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    if m.layers.len() > MAX_LAYERS {
        return Err(bad(format!(
            "{} layers (at most {MAX_LAYERS})",
            m.layers.len()
        )));
    }
    Ok(Fetched::Image(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart() {
        let d = format!("sha256:{}", "a".repeat(64));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[{{"mediaType":"y","digest":"{d}","size":2}}]}}"#
        );
        assert!(matches!(parse(m.as_bytes(), ""), Ok(Fetched::Image(_))));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        assert!(matches!(parse(i.as_bytes(), ""), Ok(Fetched::Index(_))));
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, "").is_err());
        assert!(parse(b"not json", "").is_err());
    }
}
