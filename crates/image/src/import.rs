//! `docker import`, `docker commit` and `docker export`.

use std::io::{BufReader, Read, Write};

use wharf_imageref::{Digest, Reference};

use crate::changes::apply_changes;
use crate::error::ImageError;
use crate::model::{host_arch, now_rfc3339, HistoryItem, ImageConfig};
use crate::service::{CommitOptions, Image, ImageService};

impl ImageService {
    /// Imports a root filesystem tar (plain, gzip or zstd) as a one-layer image, applying
    /// `changes` (Dockerfile instructions) to its config and tagging it `repo_tag` if given.
    pub fn import(
        &self,
        src: &mut dyn Read,
        repo_tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
        platform: Option<&str>,
    ) -> Result<Image, ImageError> {
        self.import_from(src, "-", repo_tag, changes, message, platform)
    }

    /// Downloads a root filesystem tar from an http(s) `url` (following redirects) and imports
    /// it as [`import`](Self::import) does, streaming: the download is never held whole. Blocks;
    /// call it from a blocking thread, not from async code.
    pub fn import_url(
        &self,
        url: &str,
        repo_tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
        platform: Option<&str>,
    ) -> Result<Image, ImageError> {
        // Bad input fails before the network is touched.
        repo_tag.map(parse_new_tag).transpose()?;
        apply_changes(&mut Default::default(), changes)?;
        platform.map(parse_platform).transpose()?;
        let mut download = wharf_fetch::get(url)?;
        self.import_from(&mut download, url, repo_tag, changes, message, platform)
    }

    /// `source` names the input in the default history comment (`-` for a stream).
    fn import_from(
        &self,
        src: &mut dyn Read,
        source: &str,
        repo_tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
        platform: Option<&str>,
    ) -> Result<Image, ImageError> {
        // Validate everything the user typed before the expensive part.
        let tag = repo_tag.map(parse_new_tag).transpose()?.flatten();
        let mut cc = Default::default();
        apply_changes(&mut cc, changes)?;
        let platform = platform
            .filter(|p| !p.is_empty())
            .map(parse_platform)
            .transpose()?;

        let _w = self.lock_writer();
        let layer = self.add_layer_from_stream(
            None,
            Box::new(BufReader::with_capacity(1 << 20, src)),
            None,
        )?;
        let created = now_rfc3339();
        let mut config = ImageConfig::new_for_host(vec![layer.diff_id.clone()], created.clone());
        config.config = Some(cc);
        if let Some((arch, variant)) = platform {
            config.architecture = arch;
            config.variant = variant;
        }
        config.comment = message.filter(|m| !m.is_empty()).map(str::to_string);
        config.history = vec![HistoryItem {
            created: Some(created),
            created_by: None,
            comment: Some(
                message
                    .filter(|m| !m.is_empty())
                    .map_or_else(|| format!("Imported from {source}"), str::to_string),
            ),
            ..Default::default()
        }];
        let bytes = serde_json::to_vec(&config).map_err(ImageError::json("image config"))?;
        let id = self.register_image(&bytes, None)?;
        if let Some(t) = tag {
            self.set_ref(&t, &id)?;
        }
        drop(_w);
        self.resolve(id.as_str())
    }

    /// Makes a new image from the container's image plus everything the container changed.
    pub fn commit(&self, container_id: &str, opts: CommitOptions) -> Result<Image, ImageError> {
        let tag = opts
            .repo_tag
            .as_deref()
            .map(parse_new_tag)
            .transpose()?
            .flatten();
        let _w = self.lock_writer();
        let rw = self.rw_record(container_id)?;
        let (base, parent_layer) = {
            let st = self.read_state();
            let base = st.images.get(&rw.image_id).map(|e| e.config.clone());
            (
                base,
                rw.parent_chain
                    .as_ref()
                    .and_then(|c| st.layers.get(c))
                    .cloned(),
            )
        };
        // The parent image may have been force-removed; its layers live on under the container.
        let base = match base {
            Some(b) => b,
            None => {
                let st = self.read_state();
                let diffs = st
                    .layer_chain(rw.parent_chain.as_ref())
                    .iter()
                    .filter_map(|c| st.layers.get(c))
                    .map(|l| l.diff_id.clone())
                    .collect();
                ImageConfig::new_for_host(diffs, now_rfc3339())
            }
        };

        let mut ingest = self.content.ingest()?;
        self.driver
            .diff(container_id, self.rw_parent_id(&rw).as_deref(), &mut ingest)?;
        ingest.flush().map_err(ImageError::io("write layer diff"))?;
        let (diff_id, _) = ingest.commit(None)?;
        let layer = self.add_layer_from_blob(parent_layer.as_ref(), &diff_id)?;

        let created = now_rfc3339();
        let mut config = base;
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        if let Some(c) = opts.config {
            config.config = Some(c);
        }
        let mut cc = config.config.take().unwrap_or_default();
        apply_changes(&mut cc, &opts.changes)?;
        config.config = Some(cc);
        config.created = Some(created.clone());
        config.author = opts.author.clone().filter(|a| !a.is_empty());
        config.comment = opts.comment.clone().filter(|c| !c.is_empty());
        config.container = Some(container_id.to_string());
        config.container_config = None;
        config.history.push(HistoryItem {
            created: Some(created),
            created_by: opts.created_by.clone(),
            author: config.author.clone(),
            comment: config.comment.clone(),
            empty_layer: false,
        });
        let bytes = serde_json::to_vec(&config).map_err(ImageError::json("image config"))?;
        let parent: Option<Digest> = self
            .read_state()
            .images
            .contains_key(&rw.image_id)
            .then(|| rw.image_id.clone());
        let id = self.register_image(&bytes, parent)?;
        if let Some(t) = tag {
            self.set_ref(&t, &id)?;
        }
        drop(_w);
        self.resolve(id.as_str())
    }

    /// A build step taken from a `--cache-from` image, as dockerd's image cache restores it:
    /// `parent` (none: an empty image) plus history row `index` of `source` and, when that
    /// row made a layer, the layer (already in the store, `source`'s own), with `config`.
    pub fn restore_step(
        &self,
        parent: Option<&str>,
        source: &str,
        index: usize,
        config: crate::model::ContainerConfig,
    ) -> Result<Image, ImageError> {
        let _w = self.lock_writer();
        let config_of = |r: &str| -> Result<(ImageConfig, Digest), ImageError> {
            let id = self.lookup_id(r)?;
            let cfg = self
                .read_state()
                .images
                .get(&id)
                .map(|e| e.config.clone())
                .ok_or_else(|| ImageError::NotFound(r.to_string()))?;
            Ok((cfg, id))
        };
        let (src, _) = config_of(source)?;
        let (mut base, parent_id) = match parent {
            Some(p) => {
                let (cfg, id) = config_of(p)?;
                (cfg, Some(id))
            }
            None => (ImageConfig::new_for_host(Vec::new(), now_rfc3339()), None),
        };
        let bad = || ImageError::InvalidArgument(format!("{source} has no history row {index}"));
        let row = src.history.get(index).cloned().ok_or_else(bad)?;
        if !row.empty_layer {
            let below = src.history[..index]
                .iter()
                .filter(|h| !h.empty_layer)
                .count();
            let diff = src.rootfs.diff_ids.get(below).cloned().ok_or_else(bad)?;
            base.rootfs.diff_ids.push(diff);
        }
        base.config = Some(config);
        base.created = row.created.clone();
        base.author = row.author.clone();
        base.container = None;
        base.container_config = None;
        base.history.push(row);
        let bytes = serde_json::to_vec(&base).map_err(ImageError::json("image config"))?;
        let id = self.register_image(&bytes, parent_id)?;
        drop(_w);
        self.resolve(id.as_str())
    }

    /// A new image that is `parent` (none: an empty image) with `config` and one more history
    /// row without a layer: what a metadata-only build step (ENV, CMD, LABEL…) makes. With an
    /// empty `created_by` no row is added. `author` replaces the parent's, as Docker's
    /// builder sets it from MAINTAINER on every step.
    pub fn commit_config(
        &self,
        parent: Option<&str>,
        config: crate::model::ContainerConfig,
        created_by: &str,
        author: Option<&str>,
    ) -> Result<Image, ImageError> {
        let _w = self.lock_writer();
        let created = now_rfc3339();
        let (mut base, parent_id) = match parent {
            Some(p) => {
                let id = self.lookup_id(p)?;
                let cfg = self
                    .read_state()
                    .images
                    .get(&id)
                    .map(|e| e.config.clone())
                    .ok_or_else(|| ImageError::NotFound(p.to_string()))?;
                (cfg, Some(id))
            }
            None => (ImageConfig::new_for_host(Vec::new(), created.clone()), None),
        };
        base.config = Some(config);
        base.author = author.map(str::to_string);
        base.created = Some(created.clone());
        base.container = None;
        base.container_config = None;
        // An empty `created_by` makes the bare base a FROM scratch build starts from.
        if !created_by.is_empty() {
            base.history.push(HistoryItem {
                created: Some(created),
                created_by: Some(created_by.to_string()),
                author: author.map(str::to_string),
                comment: None,
                empty_layer: true,
            });
        }
        let bytes = serde_json::to_vec(&base).map_err(ImageError::json("image config"))?;
        let id = self.register_image(&bytes, parent_id)?;
        drop(_w);
        self.resolve(id.as_str())
    }

    /// Writes the container's whole merged filesystem as a tar (`docker export`).
    pub fn export(&self, container_id: &str, out: &mut dyn Write) -> Result<(), ImageError> {
        let root = self.mount_rw_layer(container_id)?;
        let res = wharf_archive::tar_path(&root, "/", out, &wharf_archive::TarOptions::default());
        let unmounted = self.unmount_rw_layer(container_id);
        res?;
        unmounted
    }
}

/// The `repo[:tag]` a new image gets (`:latest` by default; empty means untagged). A digest
/// cannot be a tag: it names content, which a new image's config cannot match.
fn parse_new_tag(s: &str) -> Result<Option<Reference>, ImageError> {
    if s.is_empty() {
        return Ok(None);
    }
    let r = Reference::parse(s)?;
    if r.digest().is_some() {
        return Err(ImageError::InvalidArgument(format!(
            "refusing to create a tag with a digest reference: {s}"
        )));
    }
    Ok(Some(r.with_default_tag()))
}

/// The architecture and variant an import's `platform` asks for: `os[/arch[/variant]]`, or a
/// lone OS or architecture, with containerd's aliases (`x86_64`, `aarch64`, ...). Linux is the
/// only OS (Docker's message otherwise).
fn parse_platform(s: &str) -> Result<(String, Option<String>), ImageError> {
    let invalid = || {
        ImageError::InvalidArgument(format!(
            "\"{s}\": unknown operating system or architecture: invalid argument"
        ))
    };
    let parts: Vec<String> = s.split('/').map(str::to_ascii_lowercase).collect();
    if parts.len() > 3
        || parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    {
        return Err(invalid());
    }
    let (os, arch, variant) = match parts.as_slice() {
        [one] if one == "linux" => (one.as_str(), host_arch(), None),
        [one] if KNOWN_OSES.contains(&one.as_str()) => (one.as_str(), "", None),
        [one] => ("linux", one.as_str(), None),
        [os, arch] => (os.as_str(), arch.as_str(), None),
        [os, arch, variant] => (os.as_str(), arch.as_str(), Some(variant.clone())),
        _ => return Err(invalid()),
    };
    if os != "linux" {
        return Err(ImageError::InvalidArgument(
            "operating system is not supported".into(),
        ));
    }
    Ok(match (arch, variant.as_deref()) {
        ("x86_64" | "x86-64" | "amd64", _) => ("amd64".into(), None),
        ("aarch64" | "arm64", None | Some("8" | "v8")) => ("arm64".into(), None),
        ("armhf", _) => ("arm".into(), Some("v7".into())),
        ("armel", _) => ("arm".into(), Some("v6".into())),
        ("i386", _) => ("386".into(), None),
        (arch, _) => (arch.to_string(), variant),
    })
}

/// OS names containerd knows, so that a lone `windows` is read as an OS, not an architecture.
const KNOWN_OSES: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = |s: &str| parse_platform(s).map_err(|e| e.to_string());
        assert_eq!(p("linux/arm64").unwrap(), ("arm64".into(), None));
        assert_eq!(
            p("linux/arm/v7").unwrap(),
            ("arm".into(), Some("v7".into()))
        );
        assert_eq!(p("aarch64").unwrap(), ("arm64".into(), None));
        assert_eq!(p("linux/x86_64").unwrap(), ("amd64".into(), None));
        assert_eq!(p("linux").unwrap(), (host_arch().into(), None));
        assert_eq!(
            p("windows").unwrap_err(),
            "operating system is not supported"
        );
        assert_eq!(
            p("windows/amd64").unwrap_err(),
            "operating system is not supported"
        );
        for bad in ["", "linux//", "a/b/c/d", "linux/am d64"] {
            assert!(
                matches!(parse_platform(bad), Err(ImageError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_tags() {
        assert_eq!(
            parse_new_tag("app").unwrap().unwrap().familiar(),
            "app:latest"
        );
        assert_eq!(
            parse_new_tag("reg:5000/app:v2").unwrap().unwrap().full(),
            "reg:5000/app:v2"
        );
        assert!(parse_new_tag("").unwrap().is_none());
        let digest = format!("app@sha256:{}", "a".repeat(64));
        assert!(matches!(
            parse_new_tag(&digest),
            Err(ImageError::InvalidArgument(_))
        ));
        assert!(parse_new_tag("Bad:tag").is_err());
    }
}
