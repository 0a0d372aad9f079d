//! The `local` driver: `<root>/<name>/_data` (plus `opts.json` when created with options), the
//! layout dockerd uses, so a data root moves between the two engines.
//!
//! Crash safety: a volume is made in `<root>/.tmp-<name>` and renamed into place (the rename
//! is the commit); removal renames it to `.trash-…` first. Leftovers of either are removed at
//! open, after making sure nothing is still mounted inside them.

pub mod opts;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::driver::{Volume, VolumeDriver};
use crate::error::{Result, VolumeError};
use crate::sys::Mounter;

pub use opts::MountOpts;

const OPTS_FILE: &str = "opts.json";
const DATA_DIR: &str = "_data";
const TMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";

/// Docker's `RestrictedNamePattern`: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
struct Active {
    ids: BTreeSet<String>,
    mounted: bool,
}

/// One local volume.
pub struct LocalVolume {
    name: String,
    dir: PathBuf,
    opts: Option<MountOpts>,
    mounter: Arc<dyn Mounter>,
    active: Mutex<Active>,
}

impl LocalVolume {
    fn data(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    fn needs_mount(&self) -> bool {
        self.opts.as_ref().is_some_and(MountOpts::needs_mount)
    }

    /// Unmounts `_data` if we mounted it, whoever still uses it (removal, shutdown).
    fn force_unmount(&self) -> Result<()> {
        let mut a = lock(&self.active);
        let data = self.data();
        if self.mounter.is_mounted(&data).unwrap_or(a.mounted) {
            self.mounter
                .unmount(&data)
                .map_err(|source| VolumeError::Mount {
                    what: "unmounting volume",
                    path: data.display().to_string(),
                    source,
                })?;
        }
        a.mounted = false;
        a.ids.clear();
        Ok(())
    }
}

impl Volume for LocalVolume {
    fn name(&self) -> &str {
        &self.name
    }

    fn driver_name(&self) -> &str {
        "local"
    }

    fn path(&self) -> PathBuf {
        self.data()
    }

    fn mount(&self, id: &str) -> Result<PathBuf> {
        let mut a = lock(&self.active);
        if let (Some(o), false) = (self.opts.as_ref().filter(|o| o.needs_mount()), a.mounted) {
            if o.mount_device.is_empty() {
                return Err(VolumeError::Invalid(
                    "missing device in volume options".into(),
                ));
            }
            self.mounter
                .mount(&o.mount_device, &self.data(), &o.mount_type, &o.mount_opts)
                .map_err(|source| VolumeError::Mount {
                    what: "failed to mount local volume: mount",
                    path: format!("{}:{}", o.mount_device, self.data().display()),
                    source,
                })?;
            a.mounted = true;
        }
        a.ids.insert(id.to_string());
        Ok(self.data())
    }

    fn unmount(&self, id: &str) -> Result<bool> {
        let mut a = lock(&self.active);
        let was = a.ids.remove(id);
        if a.ids.is_empty() && a.mounted && self.needs_mount() {
            self.mounter
                .unmount(&self.data())
                .map_err(|source| VolumeError::Mount {
                    what: "unmounting volume",
                    path: self.data().display().to_string(),
                    source,
                })?;
            a.mounted = false;
        }
        Ok(was)
    }

    fn created_at(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let t = fs::metadata(&self.dir)
            .ok()
            .and_then(|m| chrono::DateTime::from_timestamp(m.ctime(), m.ctime_nsec() as u32))
            .unwrap_or_default();
        t.with_timezone(&chrono::Local)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn options(&self) -> BTreeMap<String, String> {
        self.opts
            .as_ref()
            .map(MountOpts::to_map)
            .unwrap_or_default()
    }

    fn status(&self) -> Option<BTreeMap<String, serde_json::Value>> {
        None
    }
}

/// The local driver.
pub struct LocalDriver {
    root: PathBuf,
    mounter: Arc<dyn Mounter>,
    vols: Mutex<BTreeMap<String, Arc<LocalVolume>>>,
}

fn fsync_dir(p: &Path) -> Result<()> {
    fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(VolumeError::io("syncing", p))
}

impl LocalDriver {
    /// Opens (creating) `root`, drops crash leftovers and loads every volume, noting which are
    /// still mounted from before a restart.
    pub fn open(root: &Path, mounter: Arc<dyn Mounter>) -> Result<LocalDriver> {
        fs::create_dir_all(root).map_err(VolumeError::io("creating", root))?;
        let d = LocalDriver {
            root: root.to_path_buf(),
            mounter,
            vols: Mutex::new(BTreeMap::new()),
        };
        let entries = fs::read_dir(root).map_err(VolumeError::io("reading", root))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            if name.starts_with(TMP_PREFIX) || name.starts_with(TRASH_PREFIX) {
                if let Err(err) = d.discard(&path) {
                    tracing::warn!("leaving volume leftover {}: {err}", path.display());
                }
                continue;
            }
            if !valid_name(&name) {
                continue;
            }
            let opts = match fs::read(path.join(OPTS_FILE)) {
                Ok(b) => match serde_json::from_slice::<MountOpts>(&b) {
                    Ok(o) => Some(o),
                    Err(err) => {
                        tracing::warn!("volume {name}: unreadable {OPTS_FILE}: {err}");
                        continue;
                    }
                },
                Err(_) => None,
            };
            let v = d.volume(&name, opts);
            if v.needs_mount() && d.mounter.is_mounted(&v.data()).unwrap_or(false) {
                lock(&v.active).mounted = true;
            }
            lock(&d.vols).insert(name, Arc::new(v));
        }
        Ok(d)
    }

    fn volume(&self, name: &str, opts: Option<MountOpts>) -> LocalVolume {
        LocalVolume {
            name: name.to_string(),
            dir: self.root.join(name),
            opts,
            mounter: self.mounter.clone(),
            active: Mutex::new(Active::default()),
        }
    }

    /// Deletes a directory of ours after unmounting anything on its `_data`: never follow a
    /// leftover mount into a host directory.
    fn discard(&self, dir: &Path) -> Result<()> {
        if !dir.starts_with(&self.root) || dir == self.root {
            return Err(VolumeError::Invalid(format!(
                "refusing to remove {}: outside the volumes root",
                dir.display()
            )));
        }
        let data = dir.join(DATA_DIR);
        if self.mounter.is_mounted(&data).unwrap_or(true) {
            let _ = self.mounter.unmount(&data);
            if self.mounter.is_mounted(&data).unwrap_or(true) {
                return Err(VolumeError::Invalid(format!(
                    "{} is still mounted",
                    data.display()
                )));
            }
        }
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(VolumeError::io("removing", dir)(e)),
        }
    }

    fn make(&self, name: &str, opts: Option<&MountOpts>) -> Result<()> {
        let tmp = self.root.join(format!("{TMP_PREFIX}{name}"));
        self.discard(&tmp)?;
        let data = tmp.join(DATA_DIR);
        fs::create_dir_all(&data).map_err(VolumeError::io("creating", &data))?;
        if let Some(o) = opts {
            let p = tmp.join(OPTS_FILE);
            let bytes = serde_json::to_vec(o).map_err(|e| VolumeError::Invalid(e.to_string()))?;
            let mut f = fs::File::create(&p).map_err(VolumeError::io("writing", &p))?;
            f.write_all(&bytes)
                .and_then(|()| f.sync_all())
                .map_err(VolumeError::io("writing", &p))?;
        }
        fsync_dir(&tmp)?;
        let dst = self.root.join(name);
        fs::rename(&tmp, &dst).map_err(VolumeError::io("creating", &dst))?;
        fsync_dir(&self.root)
    }
}

impl VolumeDriver for LocalDriver {
    fn name(&self) -> &str {
        "local"
    }

    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<Arc<dyn Volume>> {
        if !valid_name(name) {
            return Err(VolumeError::InvalidName(name.to_string()));
        }
        let mo = MountOpts::from_map(opts)?;
        let mut vols = lock(&self.vols);
        if let Some(v) = vols.get(name) {
            return Ok(v.clone());
        }
        self.make(name, mo.as_ref())?;
        let v = Arc::new(self.volume(name, mo));
        vols.insert(name.to_string(), v.clone());
        Ok(v)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let mut vols = lock(&self.vols);
        let v = vols
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        v.force_unmount()?;
        let trash = self.root.join(format!(
            "{TRASH_PREFIX}{name}-{:08x}",
            rand::random::<u32>()
        ));
        fs::rename(&v.dir, &trash).map_err(VolumeError::io("removing", &v.dir))?;
        vols.remove(name);
        drop(vols);
        fsync_dir(&self.root)?;
        self.discard(&trash)
    }

    fn list(&self) -> Vec<Arc<dyn Volume>> {
        lock(&self.vols)
            .values()
            .map(|v| v.clone() as Arc<dyn Volume>)
            .collect()
    }

    fn get(&self, name: &str) -> Result<Arc<dyn Volume>> {
        lock(&self.vols)
            .get(name)
            .map(|v| v.clone() as Arc<dyn Volume>)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    fn scope(&self) -> &'static str {
        "local"
    }
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

    #[test]
    fn names_follow_dockers_pattern() {
        for ok in ["ab", "a1", "my_vol.2-x", "0a"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["a", "", "-a", "_a", "a/b", "a b", "é1", ".a"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn layout_and_reopen() {
        let root = tempfile::tempdir().expect("tmp");
        let m = Arc::new(FakeMounter::default());
        let d = LocalDriver::open(root.path(), m.clone()).expect("open");
        let v = d.create("data1", &BTreeMap::new()).expect("create");
        assert_eq!(v.path(), root.path().join("data1/_data"));
        assert!(v.path().is_dir());
        assert!(!root.path().join("data1/opts.json").exists());
        let t = d
            .create(
                "t1",
                &map(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]),
            )
            .expect("tmpfs");
        let j: serde_json::Value =
            serde_json::from_slice(&fs::read(root.path().join("t1/opts.json")).expect("opts"))
                .expect("json");
        assert_eq!(j["MountType"], "tmpfs");
        assert!(matches!(
            d.create("x/y", &BTreeMap::new()),
            Err(VolumeError::InvalidName(_))
        ));
        // Mounted once for two users, unmounted after the last.
        t.mount("c1").expect("m1");
        t.mount("c2").expect("m2");
        t.unmount("c1").expect("u1");
        assert_eq!(m.calls().len(), 1);
        t.unmount("c2").expect("u2");
        assert_eq!(m.calls()[1], format!("unmount {}", t.path().display()));
        // Leftovers of a crash disappear; a still-mounted tmpfs volume is known as mounted.
        fs::create_dir_all(root.path().join(".tmp-half/_data")).expect("half");
        fs::create_dir_all(root.path().join(".trash-gone-1/_data")).expect("trash");
        m.preset(&t.path());
        drop(d);
        let d = LocalDriver::open(root.path(), m.clone()).expect("reopen");
        let names: Vec<String> = d.list().iter().map(|v| v.name().to_string()).collect();
        assert_eq!(names, ["data1", "t1"]);
        assert!(!root.path().join(".tmp-half").exists());
        assert!(!root.path().join(".trash-gone-1").exists());
        let t = d.get("t1").expect("t1");
        assert_eq!(t.options().get("o").map(String::as_str), Some("size=1m"));
        let before = m.calls().len();
        t.mount("c3").expect("remount");
        assert_eq!(
            m.calls().len(),
            before,
            "already mounted: not mounted twice"
        );
    }

    #[test]
    fn remove_unmounts_first_and_deletes() {
        let root = tempfile::tempdir().expect("tmp");
        let m = Arc::new(FakeMounter::default());
        let d = LocalDriver::open(root.path(), m.clone()).expect("open");
        let v = d
            .create(
                "b1",
                &map(&[("type", "none"), ("device", "/srv"), ("o", "bind")]),
            )
            .expect("bind");
        v.mount("c").expect("mount");
        fs::write(v.path().join("f"), b"x").expect("w");
        d.remove("b1").expect("rm");
        assert!(m.calls().iter().any(|c| c.starts_with("unmount")));
        assert!(!root.path().join("b1").exists());
        assert_eq!(fs::read_dir(root.path()).expect("ls").count(), 0);
        assert!(matches!(d.remove("b1"), Err(VolumeError::NotFound(_))));
    }
}
