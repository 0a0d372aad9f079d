//! A pull: resolve the reference to one platform's manifest and config, then download the
//! missing layers in parallel (bounded) while applying finished ones bottom up, and register
//! the image and its names only when every layer is in place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use wharf_errdefs::ErrorKind;
use wharf_image::{Digest, ImageConfig, Manifest, Reference};

use crate::blob;
use crate::client::{read_limited, registry_error, Repo};
use crate::error::DistributionError;
use crate::manifest::{self, Fetched};
use crate::platform::{self, Platform};
use crate::progress::Reporter;
use crate::{LayerStore, Registry};

/// Largest image config accepted.
const MAX_CONFIG: usize = 8 << 20;
/// Index levels followed (an index of indexes is legal but rare).
const MAX_INDEX_DEPTH: usize = 4;

/// A reference resolved to one image: what [`Registry::pull`] needs, and what it learnt on
/// the way (the digest recorded in `RepoDigests`).
#[derive(Debug)]
pub struct Resolved {
    repo: Repo,
    /// The reference as asked for, normalised, with `:latest` added when it had neither.
    pub reference: Reference,
    /// Digest of the manifest (or index) the reference names.
    pub digest: Digest,
    manifest: Manifest,
    config: Bytes,
    diff_ids: Vec<Digest>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({}/{})", self.endpoint.base, self.path)
    }
}

/// What a finished pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The image ID (config digest).
    pub id: Digest,
    /// Whether a name now points at an image it did not point at before.
    pub changed: bool,
}

impl Registry {
    /// Resolves `reference` (tag or digest; `:latest` when neither) to the manifest for
    /// `platform` (the host's when `None`), trying the endpoints in policy order.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
        creds: Option<&crate::Credentials>,
    ) -> Result<Resolved, DistributionError> {
        let reference = reference.clone().with_default_tag();
        let want = platform.cloned().unwrap_or_else(Platform::host);
        self.on_pull_endpoints(&reference, creds, |repo| {
            resolve_on(repo, &reference, &want)
        })
        .await
        .map_err(|e| docker_words(e, &reference))
    }

    /// Runs `f` on `reference`'s repository at each endpoint in policy order until one
    /// answers. Mirrors may lack anything, and an unreachable endpoint (https on a plain-http
    /// registry) gives way to the next one; the last such error is returned.
    pub(crate) async fn on_pull_endpoints<T, F, Fut>(
        &self,
        reference: &Reference,
        creds: Option<&crate::Credentials>,
        mut f: F,
    ) -> Result<T, DistributionError>
    where
        F: FnMut(Repo) -> Fut,
        Fut: std::future::Future<Output = Result<T, DistributionError>>,
    {
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
            match f(repo).await {
                Ok(v) => return Ok(v),
                Err(e) if mirror || matches!(e, DistributionError::Transport(_)) => {
                    tracing::debug!(error = %e, "registry endpoint failed, trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| self.config.no_endpoint(reference.domain())))
    }

    /// Pulls a resolved image into `store`, reporting Docker's progress messages.
    pub async fn pull(
        &self,
        store: Arc<dyn LayerStore>,
        r: Resolved,
        report: &Reporter,
    ) -> Result<Pulled, DistributionError> {
        let name = r.reference.familiar();
        let pulled = self.fetch(store, r, report).await?;
        final_status(report, &name, pulled.changed).await;
        Ok(pulled)
    }

    /// Pulls every tag in `tags` of `reference`'s repository one after the other, as dockerd
    /// does for `--all-tags`: each tag's progress and digest, then one status line.
    pub async fn pull_all_tags(
        &self,
        store: Arc<dyn LayerStore>,
        reference: &Reference,
        tags: &[String],
        platform: Option<&Platform>,
        creds: Option<&crate::Credentials>,
        report: &Reporter,
    ) -> Result<Vec<Pulled>, DistributionError> {
        let mut out = Vec::new();
        for tag in tags {
            let r = Reference::with_repo_tag(&reference.name(), Some(tag))
                .map_err(|e| DistributionError::InvalidManifest(format!("tag {tag}: {e}")))?;
            let resolved = self.resolve(&r, platform, creds).await?;
            out.push(self.fetch(store.clone(), resolved, report).await?);
        }
        let changed = out.iter().any(|p| p.changed);
        final_status(report, &reference.familiar_name(), changed).await;
        Ok(out)
    }

    /// A pull without its closing status line.
    async fn fetch(
        &self,
        store: Arc<dyn LayerStore>,
        r: Resolved,
        report: &Reporter,
    ) -> Result<Pulled, DistributionError> {
        let shown = r
            .reference
            .tag()
            .map(str::to_string)
            .unwrap_or_else(|| r.digest.to_string());
        report
            .status(Some(&shown), format!("Pulling from {}", r.reference.path()))
            .await;
        let chains = wharf_image::chain_ids(&r.diff_ids);
        let dir = self.downloads.clone();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(DistributionError::io(format!("create {}", dir.display())))?;
        let sem = Arc::new(Semaphore::new(self.config.max_concurrent_downloads.max(1)));
        let mut tasks: HashMap<Digest, JoinHandle<Result<Download, DistributionError>>> =
            HashMap::new();
        for (layer, chain) in r.manifest.layers.iter().zip(&chains) {
            let id = short(&layer.digest);
            if store.has_layer(chain) {
                report.status(Some(&id), "Already exists").await;
                continue;
            }
            if tasks.contains_key(&layer.digest) {
                continue;
            }
            report.status(Some(&id), "Pulling fs layer").await;
            let (repo, desc, dir, sem, report) = (
                r.repo.clone(),
                layer.clone(),
                dir.clone(),
                sem.clone(),
                report.clone(),
            );
            let attempts = self.config.max_download_attempts;
            let (lock, store2, chain) =
                (self.blob_lock(&layer.digest), store.clone(), chain.clone());
            tasks.insert(
                layer.digest.clone(),
                tokio::spawn(async move {
                    // One writer per blob file: a concurrent pull of the same layer waits,
                    // then finds it registered or the file complete. The lock covers the
                    // download only, so pulls never wait on each other's extraction.
                    let _guard = lock.lock_owned().await;
                    if store2.has_layer(&chain) {
                        return Ok(None);
                    }
                    let _permit = sem.acquire_owned().await;
                    let path = blob::download(&repo, &desc, &dir, attempts, &report, &id).await?;
                    report.status(Some(&id), "Verifying Checksum").await;
                    report.status(Some(&id), "Download complete").await;
                    Ok(Some(path))
                }),
            );
        }
        let applied = self
            .apply_layers(&store, &r, &chains, &mut tasks, report)
            .await;
        for t in tasks.values() {
            t.abort();
        }
        applied?;
        let refs = names(&r);
        let config = r.config.clone();
        let (id, changed) = tokio::task::spawn_blocking(move || store.register(&config, &refs))
            .await
            .map_err(|e| DistributionError::InvalidManifest(format!("registering: {e}")))??;
        let blobs: Vec<Digest> = r
            .manifest
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .chain([r.manifest.config.digest.clone()])
            .collect();
        // gzip layers can be pushed again by the digest they came with.
        let gzip: Vec<(Digest, Digest, u64)> = r
            .manifest
            .layers
            .iter()
            .zip(&r.diff_ids)
            .filter(|(l, _)| l.media_type.ends_with("gzip"))
            .map(|(l, diff)| (diff.clone(), l.digest.clone(), l.size))
            .collect();
        let (sources, key) = (self.sources.clone(), r.repo.key());
        // An fsync'd file write: off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            sources.add(&key, &blobs);
            sources.add_compressed(&gzip);
        })
        .await;
        report.status(None, format!("Digest: {}", r.digest)).await;
        Ok(Pulled { id, changed })
    }

    /// Makes sure `reference` is in `store`, pulling it silently when it is not (the
    /// builder's `FROM`, `run --pull missing`). Returns the image ID.
    pub async fn ensure_image(
        &self,
        store: Arc<dyn LayerStore>,
        reference: &Reference,
        platform: Option<&Platform>,
        creds: Option<&crate::Credentials>,
    ) -> Result<Digest, DistributionError> {
        if let Some(id) = store.lookup(&reference.clone().with_default_tag()) {
            return Ok(id);
        }
        let r = self.resolve(reference, platform, creds).await?;
        Ok(self.pull(store, r, &Reporter::silent()).await?.id)
    }
}

/// dockerd's last line of a pull of `name`.
async fn final_status(report: &Reporter, name: &str, changed: bool) {
    report
        .status(
            None,
            if changed {
                format!("Status: Downloaded newer image for {name}")
            } else {
                format!("Status: Image is up to date for {name}")
            },
        )
        .await;
}

/// A finished download, `None` when another pull registered the layer meanwhile.
type Download = Option<PathBuf>;

impl Registry {
    /// Applies layers bottom up as their downloads finish; present layers are skipped. On
    /// success the downloaded files are removed; after a failure they stay for a resume.
    async fn apply_layers(
        &self,
        store: &Arc<dyn LayerStore>,
        r: &Resolved,
        chains: &[Digest],
        tasks: &mut HashMap<Digest, JoinHandle<Result<Download, DistributionError>>>,
        report: &Reporter,
    ) -> Result<(), DistributionError> {
        let mut done: HashMap<Digest, Download> = HashMap::new();
        let mut parent: Option<Digest> = None;
        for ((layer, chain), diff_id) in r.manifest.layers.iter().zip(chains).zip(&r.diff_ids) {
            if store.has_layer(chain) {
                parent = Some(chain.clone());
                continue;
            }
            let id = short(&layer.digest);
            if !done.contains_key(&layer.digest) {
                let task = tasks.remove(&layer.digest).ok_or_else(|| {
                    DistributionError::InvalidManifest(format!("layer {} vanished", layer.digest))
                })?;
                let got = task.await.map_err(|e| {
                    DistributionError::InvalidManifest(format!("download of {}: {e}", layer.digest))
                })??;
                done.insert(layer.digest.clone(), got);
            }
            let mut path = done.get(&layer.digest).cloned().flatten();
            // Registered meanwhile by a concurrent pull: nothing to do.
            if store.has_layer(chain) {
                parent = Some(chain.clone());
                continue;
            }
            // A concurrent pull that used the same blob elsewhere removed the file: fetch it
            // again (under the blob's lock).
            if path.as_ref().is_none_or(|p| !p.exists()) {
                let _guard = self.blob_lock(&layer.digest).lock_owned().await;
                let p = blob::download(
                    &r.repo,
                    layer,
                    &self.downloads,
                    self.config.max_download_attempts,
                    report,
                    &id,
                )
                .await?;
                done.insert(layer.digest.clone(), Some(p.clone()));
                path = Some(p);
            }
            let Some(path) = path else { continue };
            report.status(Some(&id), "Extracting").await;
            let (s, parent2, diff) = (store.clone(), parent.clone(), diff_id.clone());
            let got =
                tokio::task::spawn_blocking(move || s.add_layer(parent2.as_ref(), &path, &diff))
                    .await
                    .map_err(|e| {
                        DistributionError::InvalidManifest(format!("extracting: {e}"))
                    })??;
            if &got != chain {
                return Err(DistributionError::InvalidManifest(format!(
                    "layer {} registered as chain {got}, expected {chain}",
                    layer.digest
                )));
            }
            report.status(Some(&id), "Pull complete").await;
            parent = Some(chain.clone());
        }
        // The layers are in the store: the downloads are done with.
        for path in done.into_values().flatten() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(())
    }
}

/// The names a pull points at the image: the tag (if pulled by tag) and `name@digest`.
fn names(r: &Resolved) -> Vec<Reference> {
    let mut out = Vec::new();
    if r.reference.digest().is_none() {
        out.push(r.reference.clone());
    }
    if let Ok(d) = Reference::parse(&format!("{}@{}", r.reference.name(), r.digest)) {
        out.push(d);
    }
    out
}

/// The 12-character id Docker shows for a layer.
fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

async fn resolve_on(
    repo: Repo,
    reference: &Reference,
    want: &Platform,
) -> Result<Resolved, DistributionError> {
    let tag_or_digest = manifest::tag_or_digest(reference);
    let (mut fetched, top_digest, _) = manifest::fetch(&repo, &tag_or_digest).await?;
    let mut depth = 0;
    let manifest = loop {
        match fetched {
            Fetched::Image(m) => break m,
            Fetched::Index(index) => {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(DistributionError::InvalidManifest(
                        "indexes nested too deeply".into(),
                    ));
                }
                let chosen = platform::choose(&index.manifests, want).ok_or_else(|| {
                    DistributionError::NoMatchingPlatform(format!(
                        "no matching manifest for {want} in the manifest list entries"
                    ))
                })?;
                fetched = manifest::fetch(&repo, chosen.digest.as_str()).await?.0;
            }
        }
    };
    let config = fetch_config(&repo, &manifest).await?;
    let parsed: ImageConfig = serde_json::from_slice(&config)
        .map_err(|e| DistributionError::InvalidManifest(format!("invalid image config: {e}")))?;
    if parsed.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(DistributionError::InvalidManifest(format!(
            "image config lists {} layers but the manifest has {}",
            parsed.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    // A single-platform image for another platform: Docker 28 refuses it unless asked.
    let got = Platform::normalised(
        &parsed.os,
        &parsed.architecture,
        parsed.variant.as_deref().unwrap_or(""),
    );
    if !parsed.os.is_empty() && !want.matches(&got) && depth == 0 {
        tracing::warn!(image = %reference, platform = %got, "image platform does not match the requested one");
    }
    Ok(Resolved {
        repo,
        reference: reference.clone(),
        digest: top_digest,
        diff_ids: parsed.rootfs.diff_ids,
        manifest,
        config,
    })
}

/// GETs and verifies the config blob.
pub(crate) async fn fetch_config(repo: &Repo, m: &Manifest) -> Result<Bytes, DistributionError> {
    let url = repo.url(&format!("blobs/{}", m.config.digest));
    let resp = repo.send(Method::GET, &url, &[]).await?;
    if !resp.status().is_success() {
        return Err(registry_error(resp, &url).await);
    }
    let bytes = read_limited(resp.into_body(), MAX_CONFIG).await?;
    let actual = wharf_image::digest_of(&bytes);
    if actual != m.config.digest {
        return Err(DistributionError::DigestMismatch {
            expected: m.config.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(bytes)
}

/// Rewords registry errors the way dockerd does for pulls.
pub(crate) fn docker_words(e: DistributionError, r: &Reference) -> DistributionError {
    match e {
        DistributionError::Registry {
            status,
            code,
            message,
            kind,
        } => {
            let message = match code.as_str() {
                "MANIFEST_UNKNOWN" => format!("manifest for {} not found: {message}", r.familiar()),
                "NAME_UNKNOWN" | "DENIED" | "UNAUTHORIZED" => format!(
                    "pull access denied for {}, repository does not exist or may require 'docker login': {message}",
                    r.familiar_name()
                ),
                _ => message,
            };
            let kind = match code.as_str() {
                "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "DENIED" | "UNAUTHORIZED" => {
                    ErrorKind::NotFound
                }
                _ => kind,
            };
            DistributionError::Registry {
                status,
                code,
                message,
                kind,
            }
        }
        other => other,
    }
}
