//! `docker save`: writes what Docker 25+ writes — an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/*`) that is also a docker-save archive (`manifest.json` with
//! `blobs/sha256/…` paths, `repositories`), so old and new tools read it.
//!
//! Layers are the stored uncompressed tars, byte for byte, so their digests equal the diff IDs
//! and a save → load round trip keeps the image ID. Headers are fixed (mtime 0, root, 0644),
//! so the same images always produce the same bytes.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};

use wharf_imageref::{Digest, Reference};

use crate::error::ImageError;
use crate::model::{
    Descriptor, Index, Manifest, SaveManifestEntry, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER,
    MT_OCI_MANIFEST,
};
use crate::service::ImageService;

/// One image to write, with the tags it is saved under.
struct SaveItem {
    id: Digest,
    tags: Vec<Reference>,
}

impl ImageService {
    /// Writes the images named by `references` (tags, ids, or a bare repository name meaning
    /// all its tags) to `out` as one archive.
    pub fn save(&self, references: &[String], out: &mut dyn Write) -> Result<(), ImageError> {
        if references.is_empty() {
            return Err(ImageError::InvalidArgument("no images to save".into()));
        }
        let items = self.save_items(references)?;
        let mut tar = tar::Builder::new(out);
        for dir in ["blobs/", "blobs/sha256/"] {
            append_dir(&mut tar, dir)?;
        }
        let mut written: HashSet<Digest> = HashSet::new();
        let mut index = Index {
            schema_version: 2,
            media_type: MT_OCI_INDEX.into(),
            manifests: Vec::new(),
        };
        let mut docker_manifest: Vec<SaveManifestEntry> = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

        for item in &items {
            let config = self.content.read(&item.id)?;
            let diff_ids = self
                .read_state()
                .images
                .get(&item.id)
                .map(|e| e.config.rootfs.diff_ids.clone())
                .ok_or_else(|| ImageError::NotFound(item.id.to_string()))?;
            let mut layer_descs = Vec::with_capacity(diff_ids.len());
            for d in &diff_ids {
                // Open before writing so a concurrent rmi cannot pull the file away mid-copy.
                let mut f = self.content.open_blob(d)?;
                let size = f
                    .metadata()
                    .map_err(ImageError::io(format!("stat blob {d}")))?
                    .len();
                if written.insert(d.clone()) {
                    append_file(&mut tar, &blob_path(d), size, &mut f)?;
                }
                layer_descs.push(Descriptor {
                    media_type: MT_OCI_LAYER.into(),
                    digest: d.clone(),
                    size,
                    platform: None,
                    annotations: None,
                });
            }
            if written.insert(item.id.clone()) {
                append_bytes(&mut tar, &blob_path(&item.id), &config)?;
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: MT_OCI_MANIFEST.into(),
                config: Descriptor {
                    media_type: MT_OCI_CONFIG.into(),
                    digest: item.id.clone(),
                    size: config.len() as u64,
                    platform: None,
                    annotations: None,
                },
                layers: layer_descs,
                annotations: None,
            };
            let mbytes = serde_json::to_vec(&manifest).map_err(ImageError::json("manifest"))?;
            let mdigest = crate::content::digest_of(&mbytes);
            if written.insert(mdigest.clone()) {
                append_bytes(&mut tar, &blob_path(&mdigest), &mbytes)?;
            }
            let desc = |annotations| Descriptor {
                media_type: MT_OCI_MANIFEST.into(),
                digest: mdigest.clone(),
                size: mbytes.len() as u64,
                platform: None,
                annotations,
            };
            if item.tags.is_empty() {
                index.manifests.push(desc(None));
            }
            for t in &item.tags {
                let mut a = BTreeMap::new();
                a.insert("io.containerd.image.name".to_string(), t.full());
                if let Some(tag) = t.tag() {
                    a.insert(
                        "org.opencontainers.image.ref.name".to_string(),
                        tag.to_string(),
                    );
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), item.id.hex().to_string());
                }
                index.manifests.push(desc(Some(a)));
            }
            docker_manifest.push(SaveManifestEntry {
                config: blob_path(&item.id),
                repo_tags: (!item.tags.is_empty())
                    .then(|| item.tags.iter().map(Reference::familiar).collect()),
                layers: diff_ids.iter().map(blob_path).collect(),
            });
        }
        append_bytes(&mut tar, "index.json", &json(&index, "index.json")?)?;
        append_bytes(
            &mut tar,
            "manifest.json",
            &json(&docker_manifest, "manifest.json")?,
        )?;
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        if !repositories.is_empty() {
            append_bytes(
                &mut tar,
                "repositories",
                &json(&repositories, "repositories")?,
            )?;
        }
        tar.into_inner()
            .and_then(|w| w.flush())
            .map_err(ImageError::io("write archive"))
    }

    fn save_items(&self, references: &[String]) -> Result<Vec<SaveItem>, ImageError> {
        let mut items: Vec<SaveItem> = Vec::new();
        let mut add =
            |id: Digest, tag: Option<Reference>| match items.iter_mut().find(|i| i.id == id) {
                Some(i) => {
                    if let Some(t) = tag {
                        if !i.tags.contains(&t) {
                            i.tags.push(t);
                        }
                    }
                }
                None => items.push(SaveItem {
                    id,
                    tags: tag.into_iter().collect(),
                }),
            };
        for r in references {
            let parsed = Reference::parse(r).ok();
            let bare_repo = parsed
                .as_ref()
                .filter(|p| p.tag().is_none() && p.digest().is_none());
            if let Some(repo) = bare_repo {
                // `docker save busybox` saves every tag of the repository.
                let name = repo.name();
                let tagged: Vec<(Reference, Digest)> = self
                    .read_state()
                    .refs
                    .iter()
                    .filter_map(|(k, id)| {
                        Reference::parse(k)
                            .ok()
                            .filter(|x| x.name() == name && x.tag().is_some())
                            .map(|x| (x, id.clone()))
                    })
                    .collect();
                if !tagged.is_empty() {
                    for (t, id) in tagged {
                        add(id, Some(t));
                    }
                    continue;
                }
            }
            let id = self.lookup_id(r)?;
            let tag = parsed.filter(|p| {
                p.tag().is_some() && self.read_state().refs.get(&p.full()) == Some(&id)
            });
            add(id, tag);
        }
        Ok(items)
    }
}

fn json<T: serde::Serialize>(v: &T, what: &str) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(v).map_err(ImageError::json(what))
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<(), ImageError> {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    tar.append_data(&mut h, path, std::io::empty())
        .map_err(ImageError::io("write archive"))
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    f: &mut File,
) -> Result<(), ImageError> {
    let mut h = header(tar::EntryType::Regular, size, 0o644);
    // `take` guards against a blob growing under us; a short file makes tar fail loudly.
    tar.append_data(&mut h, path, f.take(size))
        .map_err(ImageError::io(format!("write {path} to archive")))
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), ImageError> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
    tar.append_data(&mut h, path, bytes)
        .map_err(ImageError::io(format!("write {path} to archive")))
}
