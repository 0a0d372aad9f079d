//! Storage drivers for Wharf: where image layers and container layers live on disk.
//!
//! A [`Driver`] stores *layers* by id. A read-only layer is created from a tar diff on top of an
//! optional parent layer ([`Driver::create_layer`]); a container's read-write layer is created
//! empty on top of its image's top layer ([`Driver::create_rw`]). [`Driver::mount`] yields the
//! merged view (refcounted: every `mount` needs one `unmount`), [`Driver::changes`] and
//! [`Driver::diff`] describe what a layer changed relative to its parent (for `docker diff` and
//! `commit`).
//!
//! Creation is atomic: a layer is built under a `.tmp-` name and renamed into place, so a crash
//! never leaves a layer that looks complete; [`Driver::reconcile`] removes leftovers at startup.
//! The set of drivers is closed, so this is an enum dispatch, picked by [`DriverKind`].
#![forbid(unsafe_code)]

mod error;
mod fsutil;
mod overlay;
mod vfs;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::StorageError;
use wharf_archive::Change;

/// The drivers Wharf ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// overlayfs, Docker's default.
    Overlay2,
    /// Full copies; works everywhere.
    Vfs,
}

impl FromStr for DriverKind {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, StorageError> {
        match s {
            "overlay2" => Ok(DriverKind::Overlay2),
            "vfs" => Ok(DriverKind::Vfs),
            other => Err(StorageError::UnknownDriver(other.to_string())),
        }
    }
}

/// A read-only layer whose files are unpacked but which is not in place yet (see
/// [`Driver::unpack_layer`]). Dropping it removes its files.
pub struct UnpackedLayer {
    id: String,
    staging: fsutil::Staging,
    size: u64,
}

impl UnpackedLayer {
    /// The layer id it will be committed under.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A storage driver rooted at its home directory (e.g. `<data-root>/overlay2`).
pub struct Driver {
    inner: Inner,
}

enum Inner {
    Overlay2(overlay::Overlay),
    Vfs(vfs::Vfs),
}

/// Dispatches a method call to whichever driver is inside.
macro_rules! dispatch {
    ($self:expr, $d:ident => $e:expr) => {
        match &$self.inner {
            Inner::Overlay2($d) => $e,
            Inner::Vfs($d) => $e,
        }
    };
}

impl Driver {
    /// Opens (creating if needed) a driver at `home`. overlay2 probes that an overlay mount with
    /// its upper dir on `home` works and fails with an `Unavailable` error naming the reason
    /// otherwise (the daemon may then fall back to vfs). Storage options other than the ignored
    /// `overlay2.override_kernel_check` are refused with `InvalidArgument`.
    pub fn new(kind: DriverKind, home: &Path, opts: &[String]) -> Result<Driver, StorageError> {
        // Docker accepts and ignores the kernel-check override; nothing else is implemented.
        if let Some(opt) = opts
            .iter()
            .find(|o| !o.starts_with("overlay2.override_kernel_check"))
        {
            return Err(StorageError::InvalidOption(opt.clone()));
        }
        let inner = match kind {
            DriverKind::Overlay2 => Inner::Overlay2(overlay::Overlay::new(home)?),
            DriverKind::Vfs => Inner::Vfs(vfs::Vfs::new(home)?),
        };
        Ok(Driver { inner })
    }

    /// `"overlay2"` or `"vfs"`.
    pub fn name(&self) -> &'static str {
        match self.inner {
            Inner::Overlay2(_) => "overlay2",
            Inner::Vfs(_) => "vfs",
        }
    }

    /// Key/value pairs for `docker info`'s DriverStatus.
    pub fn status(&self) -> Vec<(String, String)> {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        match &self.inner {
            Inner::Overlay2(o) => vec![
                pair("Backing Filesystem", o.backing_fs()),
                pair("Supports d_type", "true"),
                pair("Using metacopy", "false"),
                pair("Native Overlay Diff", "true"),
                pair("userxattr", "false"),
            ],
            Inner::Vfs(v) => vec![pair("Backing Filesystem", v.backing_fs())],
        }
    }

    /// Creates read-only layer `id` on `parent` from a (maybe gzip/zstd compressed) tar diff.
    /// Returns the bytes of file content unpacked. Errors: `AlreadyExists` if `id` exists,
    /// `NotFound` if `parent` does not, `InvalidArgument` for a bad id or a hostile archive (then
    /// nothing of the layer remains).
    pub fn create_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        diff: &mut dyn Read,
    ) -> Result<u64, StorageError> {
        dispatch!(self, d => d.create(id, parent, Some(diff)))
    }

    /// Starts read-only layer `id` by unpacking its diff before its parent is known, where the
    /// driver keeps each layer's files apart from its parent's (overlay2): the layers of one
    /// chain can then unpack concurrently. `None` where a layer is a full copy of its parent
    /// (vfs); use [`create_layer`](Self::create_layer) there. Finish with
    /// [`commit_unpacked`](Self::commit_unpacked); dropping the result removes the files.
    pub fn unpack_layer(
        &self,
        id: &str,
        diff: &mut dyn Read,
    ) -> Option<Result<UnpackedLayer, StorageError>> {
        match &self.inner {
            Inner::Overlay2(o) => Some(o.unpack(id, Some(diff))),
            Inner::Vfs(_) => None,
        }
    }

    /// Puts a layer from [`unpack_layer`](Self::unpack_layer) in place on `parent`, as
    /// [`create_layer`](Self::create_layer) would have; returns its content bytes.
    pub fn commit_unpacked(
        &self,
        layer: UnpackedLayer,
        parent: Option<&str>,
    ) -> Result<u64, StorageError> {
        match &self.inner {
            Inner::Overlay2(o) => o.commit_unpacked(layer, parent),
            // unpack_layer never yields one for vfs.
            Inner::Vfs(_) => Err(StorageError::InvalidOption(format!(
                "layer {} was unpacked for another driver",
                layer.id
            ))),
        }
    }

    /// Creates an empty read-write (container) layer `id` on `parent`.
    pub fn create_rw(&self, id: &str, parent: Option<&str>) -> Result<(), StorageError> {
        dispatch!(self, d => d.create(id, parent, None).map(drop))
    }

    /// The merged view of layer `id` and its ancestors. Each call must be paired with an
    /// [`unmount`](Self::unmount); the overlay is mounted on the first and unmounted on the last.
    pub fn mount(&self, id: &str) -> Result<PathBuf, StorageError> {
        dispatch!(self, d => d.mount(id))
    }

    /// Releases one [`mount`](Self::mount) of `id`.
    /// The read-write layer `id` as [`RwView`]: filled through it, a new layer needs no mount.
    pub fn rw_view(&self, id: &str) -> Result<RwView, StorageError> {
        dispatch!(self, d => d.rw_view(id))
    }

    pub fn unmount(&self, id: &str) -> Result<(), StorageError> {
        dispatch!(self, d => d.unmount(id))
    }

    /// Deletes layer `id`, unmounting it if needed. Succeeds if it does not exist. The caller
    /// makes sure no child layer still needs it.
    pub fn remove(&self, id: &str) -> Result<(), StorageError> {
        dispatch!(self, d => d.remove(id))
    }

    /// Whether a complete layer `id` exists.
    pub fn exists(&self, id: &str) -> bool {
        dispatch!(self, d => d.exists(id))
    }

    /// What layer `id` changed relative to its parent, sorted by path, as `docker diff` shows.
    /// overlay2 always diffs against the parent chain the layer was created on and ignores
    /// `parent`; vfs compares with `parent`, or the creation parent when `None`.
    pub fn changes(&self, id: &str, parent: Option<&str>) -> Result<Vec<Change>, StorageError> {
        match &self.inner {
            Inner::Overlay2(o) => o.changes(id),
            Inner::Vfs(v) => v.changes(id, parent),
        }
    }

    /// Writes the tar of layer `id`'s changes (whiteouts for deletions) to `out`; identical
    /// trees give byte-identical tars, so the diff's digest is stable.
    pub fn diff(
        &self,
        id: &str,
        parent: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<(), StorageError> {
        let changes = self.changes(id, parent)?;
        let root = dispatch!(self, d => d.diff_root(id))?;
        wharf_archive::write_changes(&root, &changes, out).map_err(StorageError::archive(id))
    }

    /// Bytes of regular files the layer itself adds or changes.
    pub fn diff_size(&self, id: &str) -> Result<u64, StorageError> {
        dispatch!(self, d => d.diff_size(id))
    }

    /// Unmounts every layer this driver has mounted (daemon shutdown without live-restore).
    pub fn cleanup(&self) -> Result<(), StorageError> {
        match &self.inner {
            Inner::Overlay2(o) => o.cleanup(),
            Inner::Vfs(_) => Ok(()),
        }
    }

    /// Removes crash leftovers (half-built or half-removed layers) and every layer whose id is
    /// not in `known_ids`; returns the names removed. Call at startup, before creating layers.
    pub fn reconcile(&self, known_ids: &[String]) -> Result<Vec<String>, StorageError> {
        dispatch!(self, d => d.reconcile(known_ids))
    }
}

/// Docker's name for the filesystem under `path` (shown as "Backing Filesystem").
/// A layer's merged view read straight from its directories, and the directory its writes go
/// to. Writing there directly behaves like writing through a mount as long as what is written
/// is new (no copy-up of files is emulated), which is all an init layer needs.
#[derive(Debug, Clone)]
pub struct RwView {
    upper: PathBuf,
    layers: Vec<PathBuf>,
}

impl RwView {
    /// `upper` (writable) over `lower` (top-most first).
    pub fn new(upper: PathBuf, lower: Vec<PathBuf>) -> RwView {
        let mut layers = vec![upper.clone()];
        layers.extend(lower);
        RwView { upper, layers }
    }

    /// Where writes go.
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// `rel` (lstat) in the merged view: whiteouts and opaque directories honoured, no symlink
    /// followed on the way.
    pub fn lstat(&self, rel: &Path) -> Result<Option<ViewEntry>, StorageError> {
        let layer = self.upper.display().to_string();
        let st = wharf_archive::overlay_lstat(&self.layers, rel)
            .map_err(StorageError::archive(&layer))?;
        Ok(st.map(|st| ViewEntry {
            kind: match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::Directory => ViewKind::Dir,
                rustix::fs::FileType::Symlink => ViewKind::Symlink,
                _ => ViewKind::Other,
            },
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }))
    }
}

/// An entry of an [`RwView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewEntry {
    pub kind: ViewKind,
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The kinds of entry [`RwView`] users tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Dir,
    Symlink,
    Other,
}

fn backing_fs_name(path: &Path) -> Result<String, StorageError> {
    let st = rustix::fs::statfs(path).map_err(|e| StorageError::io("statfs", path.display(), e))?;
    // Magic numbers from linux/magic.h.
    #[allow(clippy::unnecessary_cast)]
    let name = match st.f_type as i64 {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        _ => "<unknown>",
    };
    Ok(name.to_string())
}

/// Whether directory listings under `home` carry file types; overlay misbehaves without.
fn supports_d_type(home: &Path) -> Result<bool, StorageError> {
    let err = |e: std::io::Error| StorageError::io("check d_type", home.display(), e);
    let probe = tempfile_dir(home).map_err(err)?;
    std::fs::write(probe.join("f"), b"").map_err(err)?;
    let mut known = true;
    // std hides DT_UNKNOWN behind an lstat fallback; read the raw d_type.
    let fd = rustix::fs::open(
        &probe,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let mut dir = rustix::fs::Dir::read_from(&fd).map_err(|e| err(e.into()))?;
    while let Some(ent) = dir.read() {
        let ent = ent.map_err(|e| err(e.into()))?;
        if ent.file_name().to_bytes() == b"f" {
            known = ent.file_type() != rustix::fs::FileType::Unknown;
        }
    }
    std::fs::remove_dir_all(&probe).map_err(err)?;
    Ok(known)
}

fn tempfile_dir(home: &Path) -> std::io::Result<PathBuf> {
    let p = home.join(fsutil::unique_name(fsutil::STAGING_PREFIX, "dtype"));
    std::fs::create_dir(&p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_errdefs::{Classify, ErrorKind};

    #[test]
    fn driver_kinds_parse() {
        assert_eq!(
            "overlay2".parse::<DriverKind>().unwrap(),
            DriverKind::Overlay2
        );
        assert_eq!("vfs".parse::<DriverKind>().unwrap(), DriverKind::Vfs);
        let err = "aufs".parse::<DriverKind>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn vfs_reports_backing_fs_and_refuses_options() {
        let d = tempfile::tempdir().unwrap();
        let err = Driver::new(DriverKind::Vfs, d.path(), &["size=1G".into()])
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let drv = Driver::new(
            DriverKind::Vfs,
            d.path(),
            &["overlay2.override_kernel_check=true".into()],
        )
        .unwrap();
        assert_eq!(drv.name(), "vfs");
        assert_ne!(drv.status()[0].1, "");
        assert!(supports_d_type(d.path()).unwrap());
    }
}
