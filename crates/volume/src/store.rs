//! The volume store: metadata (driver, labels, options) by name, persisted atomically in
//! `<root>/metadata.json`, and references by container id.
//!
//! Order for crash safety: create writes the metadata (intent) before the driver makes the
//! volume; remove deletes the volume before its metadata. At open, metadata without a volume
//! is dropped and a volume without metadata (made by dockerd, or by hand) is adopted, so the
//! list always matches the disk.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::driver::{Volume, VolumeDriver};
use crate::error::{Result, VolumeError};
use crate::local::LocalDriver;
use crate::refs::Refs;
use crate::sys::Mounter;
use crate::ANONYMOUS_LABEL;

const META_FILE: &str = "metadata.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Meta {
    driver: String,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
}

/// A volume as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeView {
    /// Name.
    pub name: String,
    /// Driver name.
    pub driver: String,
    /// Host path.
    pub mountpoint: PathBuf,
    /// RFC 3339.
    pub created_at: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// `local`.
    pub scope: String,
    /// Driver status.
    pub status: Option<BTreeMap<String, serde_json::Value>>,
    /// Containers using it.
    pub users: Vec<String>,
}

impl VolumeView {
    /// Whether it carries Docker's anonymous label.
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

struct Inner {
    meta: BTreeMap<String, Meta>,
    refs: Refs,
}

/// The store.
pub struct VolumeStore {
    root: PathBuf,
    local: Arc<LocalDriver>,
    inner: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new anonymous volume name (64 hex, like a container id).
pub fn anonymous_name() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl VolumeStore {
    /// Opens the store under `root` (`<data-root>/volumes`) and reconciles it with the disk.
    pub fn open(root: &Path, mounter: Arc<dyn Mounter>) -> Result<VolumeStore> {
        let local = Arc::new(LocalDriver::open(root, mounter)?);
        let p = root.join(META_FILE);
        let mut meta: BTreeMap<String, Meta> = match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("unreadable {}: {e}; rebuilding from disk", p.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        let on_disk: BTreeMap<String, Arc<dyn Volume>> = local
            .list()
            .into_iter()
            .map(|v| (v.name().to_string(), v))
            .collect();
        meta.retain(|name, _| on_disk.contains_key(name));
        for (name, v) in &on_disk {
            meta.entry(name.clone()).or_insert_with(|| Meta {
                driver: "local".into(),
                labels: BTreeMap::new(),
                options: v.options(),
            });
        }
        let s = VolumeStore {
            root: root.to_path_buf(),
            local,
            inner: Mutex::new(Inner {
                meta,
                refs: Refs::default(),
            }),
        };
        s.persist(&lock(&s.inner).meta)?;
        Ok(s)
    }

    fn persist(&self, meta: &BTreeMap<String, Meta>) -> Result<()> {
        let p = self.root.join(META_FILE);
        let tmp = self.root.join(format!("{META_FILE}.tmp"));
        let bytes = serde_json::to_vec(meta).map_err(|e| VolumeError::Invalid(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(VolumeError::io("writing", &tmp))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(VolumeError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(VolumeError::io("writing", &p))?;
        std::fs::File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(VolumeError::io("syncing", &self.root))
    }

    fn driver(&self, name: &str, driver: &str) -> Result<Arc<dyn VolumeDriver>> {
        match driver {
            "" | "local" => Ok(self.local.clone()),
            other => Err(VolumeError::UnknownDriver {
                name: name.to_string(),
                driver: other.to_string(),
            }),
        }
    }

    fn view(&self, inner: &Inner, name: &str) -> Result<VolumeView> {
        let m = inner
            .meta
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        let d = self.driver(name, &m.driver)?;
        let v = d.get(name)?;
        Ok(VolumeView {
            name: name.to_string(),
            driver: d.name().to_string(),
            mountpoint: v.path(),
            created_at: v.created_at(),
            labels: m.labels.clone(),
            options: m.options.clone(),
            scope: d.scope().to_string(),
            status: v.status(),
            users: inner.refs.users(name),
        })
    }

    /// Creates a volume (anonymous when `name` is `None`), or returns the existing one of that
    /// name. `user`, when given, is recorded as a reference in the same step.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
        user: Option<&str>,
    ) -> Result<(VolumeView, bool)> {
        let (name, labels) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (n.to_string(), labels.clone()),
            None => {
                let mut l = labels.clone();
                l.insert(ANONYMOUS_LABEL.to_string(), String::new());
                (anonymous_name(), l)
            }
        };
        let d = self.driver(&name, driver)?;
        let mut inner = lock(&self.inner);
        if let Some(m) = inner.meta.get(&name) {
            if !driver.is_empty() && m.driver != driver {
                return Err(VolumeError::DriverConflict { name });
            }
            if let Some(u) = user {
                inner.refs.add(&name, u);
            }
            return Ok((self.view(&inner, &name)?, false));
        }
        // Checked before the intent is written, so bad input changes nothing.
        if d.name() == "local" {
            if !crate::local::valid_name(&name) {
                return Err(VolumeError::InvalidName(name));
            }
            crate::local::MountOpts::from_map(opts)?;
        }
        let mut next = inner.meta.clone();
        next.insert(
            name.clone(),
            Meta {
                driver: d.name().to_string(),
                labels,
                options: opts.clone(),
            },
        );
        self.persist(&next)?;
        inner.meta = next;
        if let Err(e) = d.create(&name, opts) {
            inner.meta.remove(&name);
            let _ = self.persist(&inner.meta);
            return Err(e);
        }
        if let Some(u) = user {
            inner.refs.add(&name, u);
        }
        Ok((self.view(&inner, &name)?, true))
    }

    /// One volume.
    pub fn get(&self, name: &str) -> Result<VolumeView> {
        self.view(&lock(&self.inner), name)
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<VolumeView> {
        let inner = lock(&self.inner);
        inner
            .meta
            .keys()
            .filter_map(|n| self.view(&inner, n).ok())
            .collect()
    }

    /// Removes an unused volume. `force` makes a missing volume a success (dockerd's
    /// `PurgeOnError`); it never removes a volume in use.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let mut inner = lock(&self.inner);
        let Some(m) = inner.meta.get(name).cloned() else {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound(name.to_string()))
            };
        };
        let users = inner.refs.users(name);
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                ids: users,
            });
        }
        self.driver(name, &m.driver)?.remove(name)?;
        inner.meta.remove(name);
        inner.refs.forget(name);
        self.persist(&inner.meta)
    }

    /// Removes every unused volume `pick` selects; returns the names and bytes freed.
    pub fn prune(&self, pick: impl Fn(&VolumeView) -> bool) -> Result<(Vec<String>, u64)> {
        let candidates: Vec<VolumeView> = self
            .list()
            .into_iter()
            .filter(|v| v.users.is_empty() && pick(v))
            .collect();
        let (mut names, mut bytes) = (Vec::new(), 0);
        for v in candidates {
            let size = dir_size(&v.mountpoint);
            match self.remove(&v.name, false) {
                Ok(()) => {
                    bytes += size;
                    names.push(v.name);
                }
                // Taken by a container meanwhile: not ours to prune.
                Err(VolumeError::InUse { .. }) | Err(VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((names, bytes))
    }

    /// Records that container `id` uses `name`.
    pub fn add_ref(&self, name: &str, id: &str) -> Result<()> {
        let mut inner = lock(&self.inner);
        if !inner.meta.contains_key(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        inner.refs.add(name, id);
        Ok(())
    }

    /// Drops container `id`'s reference to `name`.
    pub fn release(&self, name: &str, id: &str) {
        lock(&self.inner).refs.release(name, id);
    }

    /// Makes `name` usable by `id`; returns its host path.
    pub fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let driver = self.driver_of(name)?;
        driver.get(name)?.mount(id)
    }

    /// Ends `id`'s use of `name`'s mount; returns whether `id` had it mounted.
    pub fn unmount(&self, name: &str, id: &str) -> Result<bool> {
        let driver = self.driver_of(name)?;
        driver.get(name)?.unmount(id)
    }

    fn driver_of(&self, name: &str) -> Result<Arc<dyn VolumeDriver>> {
        let d = lock(&self.inner)
            .meta
            .get(name)
            .map(|m| m.driver.clone())
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        self.driver(name, &d)
    }
}

/// Bytes in the regular files under `p` (hard links counted once), as `system df` reports.
pub fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::FakeMounter;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn open(root: &Path) -> VolumeStore {
        VolumeStore::open(root, Arc::new(FakeMounter::default())).expect("open")
    }

    #[test]
    fn create_refs_remove_and_prune() {
        let t = tempfile::tempdir().expect("tmp");
        let s = open(t.path());
        let none = BTreeMap::new();
        let (v, created) = s
            .create(Some("named"), "", &none, &map(&[("a", "1")]), None)
            .expect("create");
        assert!(created && !v.anonymous());
        assert_eq!(v.mountpoint, t.path().join("named/_data"));
        let (again, created) = s
            .create(Some("named"), "local", &none, &none, Some("c1"))
            .expect("again");
        assert!(!created);
        assert_eq!(again.labels, map(&[("a", "1")]));
        let (anon, _) = s.create(None, "", &none, &none, Some("c1")).expect("anon");
        assert!(anon.anonymous() && anon.name.len() == 64);
        let err = s.remove("named", true).expect_err("in use");
        assert_eq!(err.to_string(), "remove named: volume is in use - [c1]");
        assert!(matches!(
            s.create(Some("x"), "nope", &none, &none, None),
            Err(VolumeError::UnknownDriver { .. })
        ));
        assert!(matches!(
            s.create(Some("bad/name"), "", &none, &none, None),
            Err(VolumeError::InvalidName(_))
        ));
        assert_eq!(s.list().len(), 2, "bad input changed nothing");
        s.release("named", "c1");
        s.release(&anon.name, "c1");
        s.create(Some("other"), "", &none, &none, None)
            .expect("other");
        // Without `all`, prune takes anonymous volumes only.
        let (gone, _) = s.prune(|v| v.anonymous()).expect("prune");
        assert_eq!(gone, std::slice::from_ref(&anon.name));
        s.add_ref("other", "c2").expect("ref");
        let (gone, _) = s.prune(|_| true).expect("prune all");
        assert_eq!(gone, ["named"]);
        s.remove("nope", true).expect("force ignores missing");
        assert!(matches!(
            s.remove("nope", false),
            Err(VolumeError::NotFound(_))
        ));
    }

    #[test]
    fn reopen_matches_disk() {
        let t = tempfile::tempdir().expect("tmp");
        let s = open(t.path());
        let none = BTreeMap::new();
        s.create(Some("keep"), "", &none, &map(&[("l", "v")]), None)
            .expect("keep");
        s.create(Some("lost"), "", &none, &none, None)
            .expect("lost");
        drop(s);
        // A crash after the intent was written, and a volume made behind our back.
        std::fs::remove_dir_all(t.path().join("lost")).expect("rm");
        std::fs::create_dir_all(t.path().join("adopted/_data")).expect("mk");
        let s = open(t.path());
        let names: Vec<String> = s.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["adopted", "keep"]);
        assert_eq!(s.get("keep").expect("keep").labels, map(&[("l", "v")]));
    }
}
