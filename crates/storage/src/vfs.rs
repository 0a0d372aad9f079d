//! The vfs driver: every layer is a full copy of its parent with its diff applied. Slow and
//! space-hungry, but works on any filesystem and serves as the oracle for overlay2.
//!
//! ```text
//! <home>/dir/<id>      the layer's complete tree (its "mount" is this path)
//! <home>/parent/<id>   the parent id (empty for a base layer), for diffs without a parent argument
//! ```

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use wharf_archive::{ApplyOptions, Change, ChangeKind, WhiteoutFormat};

use crate::error::io_err;
use crate::fsutil::{self, Staging};
use crate::StorageError;

pub(crate) struct Vfs {
    dirs: PathBuf,
    parents: PathBuf,
    backing_fs: String,
}

impl Vfs {
    pub(crate) fn new(home: &Path) -> Result<Vfs, StorageError> {
        let dirs = home.join("dir");
        let parents = home.join("parent");
        for d in [&dirs, &parents] {
            fs::create_dir_all(d).map_err(io_err("create", d))?;
        }
        Ok(Vfs {
            backing_fs: crate::backing_fs_name(home)?,
            dirs,
            parents,
        })
    }

    pub(crate) fn backing_fs(&self) -> &str {
        &self.backing_fs
    }

    fn dir(&self, id: &str) -> Result<PathBuf, StorageError> {
        fsutil::layer_dir(&self.dirs, id)
    }

    fn existing(&self, id: &str) -> Result<PathBuf, StorageError> {
        fsutil::existing_layer_dir(&self.dirs, id)
    }

    pub(crate) fn exists(&self, id: &str) -> bool {
        self.existing(id).is_ok()
    }

    pub(crate) fn create(
        &self,
        id: &str,
        parent: Option<&str>,
        diff: Option<&mut dyn Read>,
    ) -> Result<u64, StorageError> {
        let dest = self.dir(id)?;
        if dest.exists() {
            return Err(StorageError::AlreadyExists(id.to_string()));
        }
        let pdir = parent.map(|p| self.existing(p)).transpose()?;
        let staging = Staging::new(&self.dirs, id)?;
        if let Some(pdir) = &pdir {
            wharf_archive::copy_tree(pdir, staging.path()).map_err(StorageError::archive(id))?;
        }
        let size = match diff {
            Some(diff) => {
                let opts = ApplyOptions {
                    whiteouts: WhiteoutFormat::Remove,
                    allow_devices: true,
                    ..ApplyOptions::default()
                };
                wharf_archive::apply_layer(staging.path(), diff, &opts)
                    .map_err(StorageError::archive(id))?
            }
            None => 0,
        };
        // Written before the commit; an orphan (crash before the rename) is removed by reconcile.
        let pfile = self.parents.join(id);
        fs::write(&pfile, parent.unwrap_or("")).map_err(io_err("write", &pfile))?;
        staging.commit(&dest, id)?;
        Ok(size)
    }

    pub(crate) fn mount(&self, id: &str) -> Result<PathBuf, StorageError> {
        self.existing(id)
    }

    pub(crate) fn rw_view(&self, id: &str) -> Result<crate::RwView, StorageError> {
        Ok(crate::RwView::new(self.existing(id)?, Vec::new()))
    }

    pub(crate) fn unmount(&self, id: &str) -> Result<(), StorageError> {
        self.existing(id).map(drop)
    }

    pub(crate) fn remove(&self, id: &str) -> Result<(), StorageError> {
        let dir = self.dir(id)?;
        fsutil::remove_tree(&dir, id)?;
        match fs::remove_file(self.parents.join(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(
                "remove",
                self.parents.join(id).display(),
                e,
            )),
        }
    }

    fn stored_parent(&self, id: &str) -> Result<Option<String>, StorageError> {
        match fs::read_to_string(self.parents.join(id)) {
            Ok(p) if p.trim().is_empty() => Ok(None),
            Ok(p) => Ok(Some(p.trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("read", self.parents.join(id).display(), e)),
        }
    }

    /// Changes of `id` against `parent`, or against the parent it was created on.
    pub(crate) fn changes(
        &self,
        id: &str,
        parent: Option<&str>,
    ) -> Result<Vec<Change>, StorageError> {
        let dir = self.existing(id)?;
        let parent = match parent {
            Some(p) => Some(p.to_string()),
            None => self.stored_parent(id)?,
        };
        let pdir = match &parent {
            Some(p) => self.existing(p)?,
            // No parent: compare with an empty tree (a path that does not exist).
            None => self
                .dirs
                .join(fsutil::unique_name(fsutil::STAGING_PREFIX, "none")),
        };
        wharf_archive::changes_between(&dir, &pdir).map_err(StorageError::archive(id))
    }

    pub(crate) fn diff_root(&self, id: &str) -> Result<PathBuf, StorageError> {
        self.existing(id)
    }

    /// Bytes of the regular files this layer added or changed.
    pub(crate) fn diff_size(&self, id: &str) -> Result<u64, StorageError> {
        let dir = self.existing(id)?;
        if self.stored_parent(id)?.is_none() {
            return fsutil::dir_size(&dir);
        }
        let mut total = 0;
        for c in self.changes(id, None)? {
            if c.kind == ChangeKind::Deleted {
                continue;
            }
            let p = dir.join(c.path.trim_start_matches('/'));
            if let Ok(md) = fs::symlink_metadata(&p) {
                if md.is_file() {
                    total += md.len();
                }
            }
        }
        Ok(total)
    }

    pub(crate) fn layer_ids(&self) -> Result<Vec<String>, StorageError> {
        let mut ids = Vec::new();
        for ent in fs::read_dir(&self.dirs).map_err(io_err("list", &self.dirs))? {
            ids.push(
                ent.map_err(io_err("list", &self.dirs))?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        ids.sort();
        Ok(ids)
    }

    pub(crate) fn reconcile(&self, known: &[String]) -> Result<Vec<String>, StorageError> {
        let mut removed = Vec::new();
        for name in self.layer_ids()? {
            if fsutil::check_id(&name).is_err() {
                let p = self.dirs.join(&name);
                fs::remove_dir_all(&p).map_err(io_err("remove", &p))?;
                removed.push(name);
            } else if !known.contains(&name) {
                self.remove(&name)?;
                removed.push(name);
            }
        }
        for ent in fs::read_dir(&self.parents).map_err(io_err("list", &self.parents))? {
            let ent = ent.map_err(io_err("list", &self.parents))?;
            if !self.dirs.join(ent.file_name()).is_dir() {
                fs::remove_file(ent.path()).map_err(io_err("remove", &self.parents))?;
            }
        }
        Ok(removed)
    }
}
