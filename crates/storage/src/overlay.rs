//! The overlay2 driver, laid out like Docker's:
//!
//! ```text
//! <home>/l/<LINK>            -> ../<id>/diff     26-char short names keep mount options small
//! <home>/<id>/diff           the layer's own files (the upper dir for containers)
//! <home>/<id>/link           the layer's LINK
//! <home>/<id>/lower          "l/PARENT:l/GRANDPARENT:..." (absent for a base layer)
//! <home>/<id>/{work,merged}  overlay workdir and mount point
//! ```
//!
//! Mounts use paths relative to `<home>`, so about 140 layers fit in the one-page limit of
//! mount(2) options. The relative paths are resolved in a helper thread that unshares its
//! filesystem context (CLONE_FS) and chdirs there, leaving the daemon's cwd alone.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use wharf_archive::{ApplyOptions, Change, WhiteoutFormat};

use crate::error::io_err;
use crate::fsutil::{self, Staging};
use crate::{StorageError, UnpackedLayer};

const LINK_DIR: &str = "l";
/// Options that keep the upper dir a plain tree our diff code understands.
const PREFERRED_OPTS: &str = "index=off,redirect_dir=off,metacopy=off";
/// mount(2) copies at most one page of options.
const MAX_MOUNT_DATA: usize = 4095;

pub(crate) struct Overlay {
    home: PathBuf,
    extra_opts: &'static str,
    backing_fs: String,
    /// Mount refcounts. Lost on restart, which is fine: a layer's mounted state is read back
    /// from the kernel (merged on a different device than its layer dir).
    mounts: Mutex<HashMap<String, u32>>,
    /// Teardowns of unmounted layers still running in the background (see [`detach`]).
    teardowns: Mutex<HashMap<String, Teardown>>,
}

impl Overlay {
    pub(crate) fn new(home: &Path) -> Result<Overlay, StorageError> {
        let unsupported = |reason: String| StorageError::Unsupported {
            driver: "overlay2",
            reason,
        };
        fs::create_dir_all(home.join(LINK_DIR)).map_err(io_err("create", home))?;
        let backing_fs = crate::backing_fs_name(home)?;
        if backing_fs == "overlayfs" {
            return Err(unsupported(format!(
                "{} is itself on overlayfs; use vfs",
                home.display()
            )));
        }
        if !crate::supports_d_type(home)? {
            return Err(unsupported(format!(
                "{} does not report d_type; overlay needs it",
                home.display()
            )));
        }
        let mut driver = Overlay {
            home: home.to_path_buf(),
            extra_opts: PREFERRED_OPTS,
            backing_fs,
            mounts: Mutex::new(HashMap::new()),
            teardowns: Mutex::new(HashMap::new()),
        };
        // Older kernels reject some of our preferred options; fall back to the defaults.
        if let Err(first) = driver.probe() {
            driver.extra_opts = "";
            driver.probe().map_err(|_| {
                unsupported(format!(
                    "test overlay mount on {} failed: {first}",
                    home.display()
                ))
            })?;
        }
        Ok(driver)
    }

    fn probe(&self) -> Result<(), StorageError> {
        let staging = Staging::new(&self.home, "probe")?;
        let name = staging
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir(staging.path().join(d)).map_err(io_err("create", staging.path()))?;
        }
        let data = self.options(
            &format!("{name}/lower"),
            &format!("{name}/upper"),
            &format!("{name}/work"),
        );
        let merged = format!("{name}/merged");
        mount_relative(&self.home, &merged, &data)
            .map_err(io_err("mount overlay", staging.path()))?;
        rustix::mount::unmount(staging.path().join("merged"), UnmountFlags::DETACH)
            .map_err(|e| StorageError::io("unmount", staging.path().display(), e))
    }

    fn options(&self, lower: &str, upper: &str, work: &str) -> String {
        let mut data = format!("lowerdir={lower},upperdir={upper},workdir={work}");
        if !self.extra_opts.is_empty() {
            data.push(',');
            data.push_str(self.extra_opts);
        }
        data
    }

    pub(crate) fn backing_fs(&self) -> &str {
        &self.backing_fs
    }

    fn dir(&self, id: &str) -> Result<PathBuf, StorageError> {
        fsutil::layer_dir(&self.home, id)
    }

    fn existing(&self, id: &str) -> Result<PathBuf, StorageError> {
        fsutil::existing_layer_dir(&self.home, id)
    }

    pub(crate) fn exists(&self, id: &str) -> bool {
        self.existing(id).is_ok()
    }

    /// Builds the layer in a staging dir, applies `diff` (if any) and renames it into place.
    pub(crate) fn create(
        &self,
        id: &str,
        parent: Option<&str>,
        diff: Option<&mut dyn Read>,
    ) -> Result<u64, StorageError> {
        // A missing parent fails before the expensive part.
        let lower = self.lower_for(parent)?;
        let unpacked = self.unpack(id, diff)?;
        self.finish(unpacked, lower)
    }

    /// Builds layer `id`'s staging dir with its diff applied. An overlay layer's files do not
    /// depend on its parent (only its `lower` file does), so this can run for several layers
    /// of one chain at once.
    pub(crate) fn unpack(
        &self,
        id: &str,
        diff: Option<&mut dyn Read>,
    ) -> Result<UnpackedLayer, StorageError> {
        if self.dir(id)?.exists() {
            return Err(StorageError::AlreadyExists(id.to_string()));
        }
        let staging = Staging::new(&self.home, id)?;
        let s = staging.path();
        for d in ["diff", "work", "merged"] {
            fs::create_dir(s.join(d)).map_err(io_err("create", s))?;
        }
        let size = match diff {
            Some(diff) => {
                let opts = ApplyOptions {
                    whiteouts: WhiteoutFormat::Overlay,
                    allow_devices: true,
                    ..ApplyOptions::default()
                };
                wharf_archive::apply_layer(&s.join("diff"), diff, &opts)
                    .map_err(StorageError::archive(id))?
            }
            None => 0,
        };
        Ok(UnpackedLayer {
            id: id.to_string(),
            staging,
            size,
        })
    }

    /// Puts an unpacked layer in place on `parent`.
    pub(crate) fn commit_unpacked(
        &self,
        layer: UnpackedLayer,
        parent: Option<&str>,
    ) -> Result<u64, StorageError> {
        let lower = self.lower_for(parent)?;
        self.finish(layer, lower)
    }

    /// The `lower` file of a layer on `parent`: the parent's link, then its own lowers.
    fn lower_for(&self, parent: Option<&str>) -> Result<Option<String>, StorageError> {
        let Some(p) = parent else { return Ok(None) };
        let pdir = self.existing(p)?;
        let plink = read_trimmed(&pdir.join("link"))?;
        let mut lower = format!("{LINK_DIR}/{plink}");
        if let Some(pl) = read_optional(&pdir.join("lower"))? {
            lower.push(':');
            lower.push_str(pl.trim());
        }
        Ok(Some(lower))
    }

    fn finish(&self, layer: UnpackedLayer, lower: Option<String>) -> Result<u64, StorageError> {
        let UnpackedLayer { id, staging, size } = layer;
        let dest = self.dir(&id)?;
        let s = staging.path();
        let link = short_link();
        fs::write(s.join("link"), &link).map_err(io_err("write", s))?;
        if let Some(lower) = &lower {
            fs::write(s.join("lower"), lower).map_err(io_err("write", s))?;
        }
        // The link dangles until the rename; reconcile removes it if we crash in between.
        let link_path = self.home.join(LINK_DIR).join(&link);
        std::os::unix::fs::symlink(format!("../{id}/diff"), &link_path)
            .map_err(io_err("link", &link_path))?;
        if let Err(e) = staging.commit(&dest, &id) {
            let _ = fs::remove_file(&link_path);
            return Err(e);
        }
        Ok(size)
    }

    pub(crate) fn mount(&self, id: &str) -> Result<PathBuf, StorageError> {
        let dir = self.existing(id)?;
        let Some(lower) = read_optional(&dir.join("lower"))? else {
            // A base layer has nothing to stack: its diff is the view.
            return Ok(dir.join("diff"));
        };
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        let count = mounts.entry(id.to_string()).or_insert(0);
        if *count == 0 && !is_mounted(&dir)? {
            // The kernel warns when an upper dir is mounted again while its previous overlay is
            // still being torn down.
            self.finish_teardown(id);
            let data = self.options(lower.trim(), &format!("{id}/diff"), &format!("{id}/work"));
            if data.len() > MAX_MOUNT_DATA {
                mounts.remove(id);
                return Err(StorageError::TooManyLayers {
                    id: id.to_string(),
                    len: data.len(),
                });
            }
            if let Err(e) = mount_relative(&self.home, &format!("{id}/merged"), &data) {
                mounts.remove(id);
                return Err(StorageError::io("mount overlay", dir.display(), e));
            }
        }
        *count += 1;
        Ok(dir.join("merged"))
    }

    pub(crate) fn rw_view(&self, id: &str) -> Result<crate::RwView, StorageError> {
        let dir = self.existing(id)?;
        Ok(crate::RwView::new(dir.join("diff"), self.lower_dirs(&dir)?))
    }

    /// The diff dirs under the layer in `dir`, top-most first.
    fn lower_dirs(&self, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
        Ok(match read_optional(&dir.join("lower"))? {
            Some(l) => l
                .trim()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(|s| self.home.join(s))
                .collect(),
            None => Vec::new(),
        })
    }

    pub(crate) fn unmount(&self, id: &str) -> Result<(), StorageError> {
        let dir = self.existing(id)?;
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = mounts.get_mut(id) {
            if *count > 1 {
                *count -= 1;
                return Ok(());
            }
        }
        mounts.remove(id);
        self.detach_layer(id, &dir)
    }

    /// [`detach`], remembering the teardown so a new mount of `id` can wait for it.
    fn detach_layer(&self, id: &str, dir: &Path) -> Result<(), StorageError> {
        if let Some(t) = detach(dir)? {
            let mut teardowns = self.teardowns.lock().unwrap_or_else(|e| e.into_inner());
            teardowns.retain(|_, t| !t.is_finished());
            teardowns.insert(id.to_string(), t);
        }
        Ok(())
    }

    fn finish_teardown(&self, id: &str) {
        let pending = self
            .teardowns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(t) = pending {
            let _ = t.join();
        }
    }

    pub(crate) fn remove(&self, id: &str) -> Result<(), StorageError> {
        let dir = self.dir(id)?;
        if !dir.is_dir() {
            return Ok(());
        }
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        // The layer is going away: its teardown need not be waited for.
        self.detach_layer(id, &dir)?;
        if let Some(link) = read_optional(&dir.join("link"))? {
            match fs::remove_file(self.home.join(LINK_DIR).join(link.trim())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove link", dir.display(), e)),
            }
        }
        fsutil::remove_tree(&dir, id)
    }

    pub(crate) fn changes(&self, id: &str) -> Result<Vec<Change>, StorageError> {
        let dir = self.existing(id)?;
        let lowers = self.lower_dirs(&dir)?;
        wharf_archive::changes_overlay(&dir.join("diff"), &lowers)
            .map_err(StorageError::archive(id))
    }

    /// The tree holding the layer's own added and modified files.
    pub(crate) fn diff_root(&self, id: &str) -> Result<PathBuf, StorageError> {
        Ok(self.existing(id)?.join("diff"))
    }

    pub(crate) fn diff_size(&self, id: &str) -> Result<u64, StorageError> {
        fsutil::dir_size(&self.existing(id)?.join("diff"))
    }

    pub(crate) fn cleanup(&self) -> Result<(), StorageError> {
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for id in self.layer_ids()? {
            self.detach_layer(&id, &self.home.join(&id))?;
        }
        Ok(())
    }

    /// Every directory name under home except the link dir (ids and leftovers alike).
    pub(crate) fn layer_ids(&self) -> Result<Vec<String>, StorageError> {
        let mut ids = Vec::new();
        for ent in fs::read_dir(&self.home).map_err(io_err("list", &self.home))? {
            let ent = ent.map_err(io_err("list", &self.home))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name != LINK_DIR {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub(crate) fn reconcile(&self, known: &[String]) -> Result<Vec<String>, StorageError> {
        let mut removed = Vec::new();
        for name in self.layer_ids()? {
            let path = self.home.join(&name);
            if fsutil::check_id(&name).is_err() {
                // Staging, trash and probe leftovers of a crash: never a live layer.
                let _ = detach(&path);
                let _ = rustix::mount::unmount(path.join("merged"), UnmountFlags::DETACH);
                fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                removed.push(name);
            } else if !known.contains(&name) {
                self.remove(&name)?;
                removed.push(name);
            }
        }
        let links = self.home.join(LINK_DIR);
        for ent in fs::read_dir(&links).map_err(io_err("list", &links))? {
            let ent = ent.map_err(io_err("list", &links))?;
            if fs::metadata(ent.path()).is_err() {
                fs::remove_file(ent.path()).map_err(io_err("remove", &links))?;
            }
        }
        Ok(removed)
    }
}

/// A 26-character name from 128 random bits, in Docker's alphabet (base32, upper case).
fn short_link() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits: u128 = rand::random();
    (0..26)
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

fn read_optional(p: &Path) -> Result<Option<String>, StorageError> {
    match fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", p.display(), e)),
    }
}

fn read_trimmed(p: &Path) -> Result<String, StorageError> {
    Ok(fs::read_to_string(p)
        .map_err(io_err("read", p))?
        .trim()
        .to_string())
}

/// Whether `<dir>/merged` is a mount point: a mounted overlay has its own device number.
fn is_mounted(dir: &Path) -> Result<bool, StorageError> {
    let merged = dir.join("merged");
    let m = match fs::symlink_metadata(&merged) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StorageError::io("stat", merged.display(), e)),
    };
    let d = fs::symlink_metadata(dir).map_err(io_err("stat", dir))?;
    Ok(m.dev() != d.dev())
}

/// The background end of an overlay after [`detach`].
type Teardown = std::thread::JoinHandle<()>;

/// Lazily unmounts `<dir>/merged` if mounted (MNT_DETACH: a process still inside must not block
/// layer removal).
///
/// When its last reference goes, an overlay syncs its whole upper filesystem (`ovl_sync_fs`),
/// which takes tens of milliseconds on a busy disk and buys nothing here: nothing relies on it
/// (container writes were never synced, and our own records are fsynced). The thread dropping
/// that reference pays, so a pin (`O_PATH` fd) is held across the unmount and dropped on a
/// background thread, returned for callers that must wait for it. The mount point is free again
/// as soon as this returns.
fn detach(dir: &Path) -> Result<Option<Teardown>, StorageError> {
    if !is_mounted(dir)? {
        return Ok(None);
    }
    let merged = dir.join("merged");
    let pin = rustix::fs::open(
        &merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok();
    rustix::mount::unmount(&merged, UnmountFlags::DETACH)
        .map_err(|e| StorageError::io("unmount", dir.display(), e))?;
    // Without a thread (spawn failed) the pin is dropped here, and this call pays the sync.
    Ok(pin.and_then(|fd| {
        std::thread::Builder::new()
            .name("overlay-teardown".into())
            .spawn(move || drop(fd))
            .ok()
    }))
}

/// mount(2) of overlay with `data` and `target` relative to `home`.
fn mount_relative(home: &Path, target: &str, data: &str) -> io::Result<()> {
    let data = CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // This thread gets its own cwd; the rest of the process keeps its own.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(io::Error::from)?;
            std::env::set_current_dir(home)?;
            rustix::mount::mount(
                "overlay",
                target,
                "overlay",
                MountFlags::empty(),
                data.as_c_str(),
            )?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("mount helper thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_links_are_26_base32_chars_and_distinct() {
        let a = short_link();
        assert_eq!(a.len(), 26);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_ne!(a, short_link());
    }

    #[test]
    fn deep_chains_fit_one_page() {
        // 125 layers (Docker's limit is 128) must fit with short links.
        let lower: Vec<String> = (0..125)
            .map(|_| format!("{LINK_DIR}/{}", short_link()))
            .collect();
        let data = format!(
            "lowerdir={},upperdir={id}/diff,workdir={id}/work,{PREFERRED_OPTS}",
            lower.join(":"),
            id = "a".repeat(64)
        );
        assert!(data.len() <= MAX_MOUNT_DATA, "{}", data.len());
    }
}
