//! `GET /v2/<name>/tags/list`: the tags of a repository, for `pull --all-tags`.

use http::{header, Method};
use serde::Deserialize;
use wharf_image::Reference;

use crate::client::{read_limited, registry_error, Repo};
use crate::error::DistributionError;
use crate::Registry;

/// Largest page of a tag list accepted.
const MAX_PAGE: usize = 8 << 20;
/// Pages followed at most (a registry pages by 100 or 1000 tags).
const MAX_PAGES: usize = 1000;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Registry {
    /// Every tag of `reference`'s repository, in the registry's order, following the
    /// `Link: <…>; rel="next"` pages.
    pub async fn tags(
        &self,
        reference: &Reference,
        creds: Option<&crate::Credentials>,
    ) -> Result<Vec<String>, DistributionError> {
        self.on_pull_endpoints(reference, creds, |repo| async move { list(&repo).await })
            .await
            .map_err(|e| crate::pull::docker_words(e, reference))
    }
}

async fn list(repo: &Repo) -> Result<Vec<String>, DistributionError> {
    let mut url = repo.url("tags/list");
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let resp = repo.send(Method::GET, &url, &[]).await?;
        if !resp.status().is_success() {
            return Err(registry_error(resp, &url).await);
        }
        let next = resp
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = read_limited(resp.into_body(), MAX_PAGE).await?;
        let page: TagList = serde_json::from_slice(&body)
            .map_err(|e| DistributionError::InvalidManifest(format!("{url}: bad tag list: {e}")))?;
        out.extend(page.tags.unwrap_or_default());
        match next {
            Some(n) if n.starts_with('/') => url = format!("{}{n}", repo.endpoint.base),
            Some(n) => url = n,
            None => return Ok(out),
        }
    }
    Ok(out)
}

/// The target of a `Link` header's `rel="next"` entry.
fn next_link(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .contains("rel=\"next\"")
            .then(|| target.trim().trim_matches(['<', '>']).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=100>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=100")
        );
        assert_eq!(next_link(r#"<x>; rel="prev""#), None);
    }
}
