//! Image metadata: which images, layers, tags and container layers exist, persisted as one
//! atomic JSON file per object (plus one for all tags) under the store root.
//!
//! Commit order makes crashes harmless: layer data first, then the layer record, then the
//! config blob and the image record, then tags. An object without its record is garbage that
//! [`crate::ImageService::open`] removes; a record never points at missing data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wharf_imageref::{Digest, Reference};

use crate::error::ImageError;
use crate::fsutil::{clean_tmp_files, read_json, remove_file, write_json_atomic};
use crate::model::{chain_ids, ImageConfig};

/// A registered image; its config blob is in the content store under `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: Digest,
    /// Local parent (set by commit), as `docker inspect` shows in `Parent`.
    #[serde(default)]
    pub parent: Option<Digest>,
    #[serde(default)]
    pub last_tag_time: Option<String>,
}

/// A read-only layer: identified by chain ID, stored in the driver under `cache_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub cache_id: String,
    /// Bytes of content the layer holds (as the driver reported on creation).
    pub size: u64,
}

/// A container's read-write layer (driver id = container id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RwRecord {
    pub container_id: String,
    pub image_id: Digest,
    /// Top read-only layer under it; `None` for images without layers.
    pub parent_chain: Option<Digest>,
    /// Whether an init layer (driver id [`RwRecord::init_id`]) sits between the image and the
    /// read-write layer; records written before init layers existed have none.
    #[serde(default)]
    pub has_init: bool,
}

impl RwRecord {
    /// Driver id of the init layer that holds the container's mount points, as Docker's `-init`.
    pub fn init_id(&self) -> Option<String> {
        self.has_init.then(|| format!("{}-init", self.container_id))
    }
}

/// An image with its parsed config, cached in memory.
#[derive(Debug, Clone)]
pub(crate) struct ImageEntry {
    pub record: ImageRecord,
    pub config: ImageConfig,
    pub chain: Vec<Digest>,
}

/// The in-memory view of all metadata; pure logic, no I/O.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub images: BTreeMap<Digest, ImageEntry>,
    pub layers: HashMap<Digest, LayerRecord>,
    pub rw: HashMap<String, RwRecord>,
    /// Full reference string (`docker.io/library/busybox:latest`) -> image id.
    pub refs: BTreeMap<String, Digest>,
}

/// What a lookup string turned out to mean.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Digest),
    Ambiguous(usize),
    Missing,
}

impl State {
    /// Resolves a user's reference by Docker's rules: full id, tag/digest reference, id prefix.
    pub fn lookup(&self, reference: &str) -> Lookup {
        let found = |id: &Digest| {
            if self.images.contains_key(id) {
                Lookup::Found(id.clone())
            } else {
                Lookup::Missing
            }
        };
        if let Ok(d) = Digest::parse(reference) {
            return found(&d);
        }
        if let Ok(d) = Digest::from_hex(reference) {
            return found(&d);
        }
        if let Ok(r) = Reference::parse(reference) {
            if let Some(id) = self.refs.get(&r.with_default_tag().full()) {
                return found(id);
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        let hexish = !prefix.is_empty()
            && prefix.len() < 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hexish {
            return Lookup::Missing;
        }
        let matches: Vec<&Digest> = self
            .images
            .keys()
            .filter(|id| id.hex().starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [] => Lookup::Missing,
            [one] => Lookup::Found((*one).clone()),
            many => Lookup::Ambiguous(many.len()),
        }
    }

    /// Tags (full reference strings) pointing at `id`.
    pub fn refs_of(&self, id: &Digest) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Images whose local parent is `id`.
    pub fn children_of(&self, id: &Digest) -> Vec<Digest> {
        self.images
            .values()
            .filter(|e| e.record.parent.as_ref() == Some(id))
            .map(|e| e.record.id.clone())
            .collect()
    }

    /// The chain of layers below and including `top`, bottom first.
    pub fn layer_chain(&self, top: Option<&Digest>) -> Vec<Digest> {
        let mut out = Vec::new();
        let mut cur = top.cloned();
        while let Some(c) = cur {
            cur = self.layers.get(&c).and_then(|l| l.parent.clone());
            out.push(c);
        }
        out.reverse();
        out
    }

    /// How many images and container layers use each layer (directly or as a parent).
    pub fn layer_users(&self) -> HashMap<Digest, usize> {
        let mut users: HashMap<Digest, usize> = HashMap::new();
        for e in self.images.values() {
            for c in &e.chain {
                *users.entry(c.clone()).or_default() += 1;
            }
        }
        for rw in self.rw.values() {
            for c in self.layer_chain(rw.parent_chain.as_ref()) {
                *users.entry(c).or_default() += 1;
            }
        }
        users
    }

    /// Layers no image or container uses.
    pub fn unused_layers(&self) -> Vec<Digest> {
        let users = self.layer_users();
        self.layers
            .keys()
            .filter(|c| !users.contains_key(*c))
            .cloned()
            .collect()
    }

    /// Blobs that must be kept: image configs and the stored tar of every layer.
    pub fn live_blobs(&self) -> HashSet<Digest> {
        self.images
            .keys()
            .cloned()
            .chain(self.layers.values().map(|l| l.diff_id.clone()))
            .collect()
    }

    /// Sum of the sizes of an image's layers.
    pub fn image_size(&self, e: &ImageEntry) -> u64 {
        e.chain
            .iter()
            .filter_map(|c| self.layers.get(c))
            .map(|l| l.size)
            .sum()
    }
}

/// Builds the cache entry for an image from its config.
pub(crate) fn image_entry(record: ImageRecord, config: ImageConfig) -> ImageEntry {
    let chain = chain_ids(&config.rootfs.diff_ids);
    ImageEntry {
        record,
        config,
        chain,
    }
}

/// The files behind [`State`].
#[derive(Debug)]
pub(crate) struct MetaStore {
    root: PathBuf,
}

/// Everything read back from disk at open.
pub(crate) struct Loaded {
    pub images: Vec<ImageRecord>,
    pub layers: Vec<LayerRecord>,
    pub rw: Vec<RwRecord>,
    pub refs: BTreeMap<String, Digest>,
}

impl MetaStore {
    /// Opens (creating) the metadata directories and removes half-written temp files.
    pub fn open(root: &Path) -> Result<MetaStore, ImageError> {
        let s = MetaStore {
            root: root.to_path_buf(),
        };
        for dir in [
            s.images_dir(),
            s.layers_dir(),
            s.rw_dir(),
            root.to_path_buf(),
        ] {
            fs::create_dir_all(&dir)
                .map_err(ImageError::io(format!("create {}", dir.display())))?;
            clean_tmp_files(&dir)?;
        }
        Ok(s)
    }

    fn images_dir(&self) -> PathBuf {
        self.root.join("imagedb")
    }
    fn layers_dir(&self) -> PathBuf {
        self.root.join("layerdb")
    }
    fn rw_dir(&self) -> PathBuf {
        self.root.join("rwlayers")
    }
    fn refs_file(&self) -> PathBuf {
        self.root.join("repositories.json")
    }

    /// Reads every record; unreadable records are reported, not skipped silently.
    pub fn load(&self) -> Result<Loaded, ImageError> {
        let refs = if self.refs_file().exists() {
            read_json(&self.refs_file())?
        } else {
            BTreeMap::new()
        };
        Ok(Loaded {
            images: read_all(&self.images_dir())?,
            layers: read_all(&self.layers_dir())?,
            rw: read_all(&self.rw_dir())?,
            refs,
        })
    }

    pub fn put_image(&self, r: &ImageRecord) -> Result<(), ImageError> {
        write_json_atomic(&self.images_dir().join(format!("{}.json", r.id.hex())), r)
    }
    pub fn delete_image(&self, id: &Digest) -> Result<(), ImageError> {
        remove_file(&self.images_dir().join(format!("{}.json", id.hex())))
    }
    pub fn put_layer(&self, r: &LayerRecord) -> Result<(), ImageError> {
        write_json_atomic(
            &self.layers_dir().join(format!("{}.json", r.chain_id.hex())),
            r,
        )
    }
    pub fn delete_layer(&self, chain: &Digest) -> Result<(), ImageError> {
        remove_file(&self.layers_dir().join(format!("{}.json", chain.hex())))
    }
    pub fn put_rw(&self, r: &RwRecord) -> Result<(), ImageError> {
        write_json_atomic(&self.rw_dir().join(format!("{}.json", r.container_id)), r)
    }
    pub fn delete_rw(&self, container_id: &str) -> Result<(), ImageError> {
        remove_file(&self.rw_dir().join(format!("{container_id}.json")))
    }
    pub fn put_refs(&self, refs: &BTreeMap<String, Digest>) -> Result<(), ImageError> {
        write_json_atomic(&self.refs_file(), refs)
    }
}

fn read_all<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>, ImageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(ImageError::io(format!("list {}", dir.display())))? {
        let path = entry
            .map_err(ImageError::io(format!("list {}", dir.display())))?
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push(read_json(&path)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RootFs;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn config(diffs: Vec<Digest>) -> ImageConfig {
        let mut c = ImageConfig::new_for_host(diffs, "2024-01-01T00:00:00Z".into());
        c.rootfs = RootFs {
            kind: "layers".into(),
            diff_ids: c.rootfs.diff_ids.clone(),
        };
        c
    }

    fn add_image(s: &mut State, id: Digest, diffs: Vec<Digest>) {
        let e = image_entry(
            ImageRecord {
                id: id.clone(),
                parent: None,
                last_tag_time: None,
            },
            config(diffs),
        );
        let mut parent = None;
        for (c, diff) in e.chain.iter().zip(&e.config.rootfs.diff_ids) {
            s.layers.insert(
                c.clone(),
                LayerRecord {
                    chain_id: c.clone(),
                    diff_id: diff.clone(),
                    parent: parent.clone(),
                    cache_id: c.hex().into(),
                    size: 10,
                },
            );
            parent = Some(c.clone());
        }
        s.images.insert(id, e);
    }

    #[test]
    fn lookup_by_id_prefix_tag_and_ambiguity() {
        let mut s = State::default();
        let a = Digest::from_hex(&format!("abc1{}", "0".repeat(60))).unwrap();
        let b = Digest::from_hex(&format!("abc2{}", "0".repeat(60))).unwrap();
        add_image(&mut s, a.clone(), vec![]);
        add_image(&mut s, b.clone(), vec![]);
        s.refs
            .insert("docker.io/library/busybox:latest".into(), a.clone());
        assert!(matches!(s.lookup("busybox"), Lookup::Found(ref x) if *x == a));
        assert!(
            matches!(s.lookup("docker.io/library/busybox:latest"), Lookup::Found(ref x) if *x == a)
        );
        assert!(matches!(s.lookup("busybox:other"), Lookup::Missing));
        assert!(matches!(s.lookup("abc2"), Lookup::Found(ref x) if *x == b));
        assert!(matches!(s.lookup("sha256:abc1"), Lookup::Found(ref x) if *x == a));
        assert!(matches!(s.lookup("abc"), Lookup::Ambiguous(2)));
        assert!(matches!(s.lookup(a.as_str()), Lookup::Found(_)));
        assert!(matches!(s.lookup(a.hex()), Lookup::Found(_)));
        assert!(matches!(s.lookup("abz"), Lookup::Missing));
        assert!(matches!(
            s.lookup(&format!("sha256:{}", "f".repeat(64))),
            Lookup::Missing
        ));
    }

    #[test]
    fn a_tag_wins_over_an_id_prefix() {
        let mut s = State::default();
        let a = Digest::from_hex(&format!("beef{}", "0".repeat(60))).unwrap();
        let b = d('1');
        add_image(&mut s, a, vec![]);
        add_image(&mut s, b.clone(), vec![]);
        s.refs
            .insert("docker.io/library/beef:latest".into(), b.clone());
        assert!(matches!(s.lookup("beef"), Lookup::Found(ref x) if *x == b));
    }

    #[test]
    fn shared_layers_are_counted_per_user() {
        let mut s = State::default();
        add_image(&mut s, d('1'), vec![d('a'), d('b')]);
        add_image(&mut s, d('2'), vec![d('a')]);
        let base = d('a');
        let users = s.layer_users();
        assert_eq!(users[&base], 2);
        assert!(s.unused_layers().is_empty());
        // Removing image 1 frees only its top layer.
        s.images.remove(&d('1'));
        assert_eq!(s.unused_layers().len(), 1);
        assert_ne!(s.unused_layers()[0], base);
        // A container keeps its image's layers alive.
        s.rw.insert(
            "c1".into(),
            RwRecord {
                container_id: "c1".into(),
                image_id: d('2'),
                parent_chain: Some(base.clone()),
                has_init: true,
            },
        );
        s.images.remove(&d('2'));
        assert!(!s.unused_layers().contains(&base));
    }

    #[test]
    fn metastore_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path()).unwrap();
        let rec = ImageRecord {
            id: d('1'),
            parent: Some(d('2')),
            last_tag_time: None,
        };
        m.put_image(&rec).unwrap();
        let lay = LayerRecord {
            chain_id: d('a'),
            diff_id: d('a'),
            parent: None,
            cache_id: "x".into(),
            size: 3,
        };
        m.put_layer(&lay).unwrap();
        let mut refs = BTreeMap::new();
        refs.insert("docker.io/library/a:latest".to_string(), d('1'));
        m.put_refs(&refs).unwrap();
        let loaded = MetaStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(loaded.images, vec![rec]);
        assert_eq!(loaded.layers, vec![lay]);
        assert_eq!(loaded.refs, refs);
        m.delete_image(&d('1')).unwrap();
        assert!(m.load().unwrap().images.is_empty());
    }
}
