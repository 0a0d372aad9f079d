//! Writing tars: layer diffs with whiteouts (`commit`) and tree exports (`docker export`, `cp`).
//!
//! Headers are deterministic so the same tree always hashes to the same digest: entries sorted
//! bytewise, GNU headers with only mode, ids, size and whole-second mtime, no user/group names,
//! no atime/ctime, and whiteouts dated 0.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::node::NodeKind;
use crate::walk::{Source, SourceEntry, Xattrs};
use crate::{ArchiveError, Change, ChangeKind};

/// Selection and naming for [`tar_path`].
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// Paths relative to the tarred directory to include (each with its subtree); empty means the
    /// whole directory, named after its base name (or unprefixed for the root).
    pub include: Vec<String>,
    /// Rename entries whose name is `from` or starts with `from/` to start with `to` instead
    /// (`docker cp` uses this to name the copy after the destination). An empty `from` prefixes
    /// every name with `to`.
    pub rebase: Option<(String, String)>,
    /// Follow the requested path when it is itself a symlink (resolved inside the root) instead
    /// of archiving the link.
    pub follow_root_symlink: bool,
}

struct TarWriter<'w> {
    builder: tar::Builder<&'w mut dyn Write>,
}

fn tar_err(name: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |e| ArchiveError::io("write tar entry", name.display(), e)
}

impl<'w> TarWriter<'w> {
    fn new(out: &'w mut dyn Write) -> Self {
        let mut builder = tar::Builder::new(out);
        // Names are cleaned relative paths unless a rebase asks for `/` (a `docker cp` of the
        // container's root, whose entries the docker CLI expects as `/bin`, `/etc`, ...).
        builder.preserve_absolute(true);
        TarWriter { builder }
    }

    fn append(
        &mut self,
        name: &Path,
        entry: SourceEntry,
        link_name: impl Fn(&Path) -> PathBuf,
    ) -> Result<(), ArchiveError> {
        let node = entry.node;
        let mut h = tar::Header::new_gnu();
        h.set_mode(node.mode);
        h.set_uid(node.uid.into());
        h.set_gid(node.gid.into());
        h.set_mtime(u64::try_from(node.mtime.tv_sec).unwrap_or(0));
        h.set_size(0);
        let mut pax: Vec<(String, &[u8])> = node
            .xattrs
            .iter()
            .map(|(k, v)| {
                (
                    format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                    v.as_slice(),
                )
            })
            .collect();
        // The tar crate drops a leading `./` from names, but the docker CLI renames the entries
        // of a `dir/.` copy by that prefix: keep it in a PAX path record, which readers prefer.
        let raw = name.as_os_str().as_bytes();
        let dot_name = [raw, b"/"].concat();
        if raw == b"." || raw.starts_with(b"./") {
            let is_dir = matches!(node.kind, NodeKind::Dir) && !raw.ends_with(b"/");
            pax.push(("path".into(), if is_dir { &dot_name } else { raw }));
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(tar_err(name))?;
        }
        match node.kind {
            NodeKind::File => {
                let mut file = entry.file.ok_or_else(|| {
                    ArchiveError::io("read", name.display(), io::Error::other("file not open"))
                })?;
                let len = file.metadata().map_err(tar_err(name))?.len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                // A file that shrinks while being read would desynchronise the tar: cap and pad.
                let data = (&mut file).take(len).chain(io::repeat(0).take(len));
                self.builder
                    .append_data(&mut h, name, data.take(len))
                    .map_err(tar_err(name))
            }
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                let mut dname = name.as_os_str().to_os_string();
                dname.push("/");
                self.builder
                    .append_data(&mut h, dname, io::empty())
                    .map_err(tar_err(name))
            }
            NodeKind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                self.builder
                    .append_link(&mut h, name, target)
                    .map_err(tar_err(name))
            }
            NodeKind::Hardlink(first) => {
                h.set_entry_type(tar::EntryType::Link);
                self.builder
                    .append_link(&mut h, name, link_name(&first))
                    .map_err(tar_err(name))
            }
            NodeKind::Char(maj, min) | NodeKind::Block(maj, min) => {
                let t = if matches!(node.kind, NodeKind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                h.set_entry_type(t);
                h.set_device_major(maj).map_err(tar_err(name))?;
                h.set_device_minor(min).map_err(tar_err(name))?;
                self.builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(tar_err(name))
            }
            NodeKind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                self.builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(tar_err(name))
            }
        }
    }

    fn whiteout(&mut self, rel: &Path) -> Result<(), ArchiveError> {
        let Some((parent, name)) = crate::path::split(rel) else {
            return Err(crate::path::invalid(rel, "cannot delete the root"));
        };
        let mut wname = std::ffi::OsString::from(".wh.");
        wname.push(name);
        let path = parent.join(wname);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(0);
        h.set_mtime(0);
        self.builder
            .append_data(&mut h, &path, io::empty())
            .map_err(tar_err(&path))
    }

    fn finish(mut self) -> Result<(), ArchiveError> {
        self.builder
            .finish()
            .map_err(|e| ArchiveError::io("finish tar", "", e))
    }
}

/// Writes the tar of `changes` taken from the tree at `root`: Added and Modified paths as they
/// are in `root` (no recursion: a changed directory's changed children are their own entries),
/// Deleted paths as `.wh.<name>` whiteouts. Sorted and deterministic.
pub fn write_changes(
    root: &Path,
    changes: &[Change],
    out: &mut dyn Write,
) -> Result<(), ArchiveError> {
    let mut sorted: Vec<&Change> = changes.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut source = Source::open(root, Xattrs::Capability)?;
    let mut w = TarWriter::new(out);
    for c in sorted {
        let rel = crate::path::clean(Path::new(&c.path))?;
        if c.kind == ChangeKind::Deleted {
            w.whiteout(&rel)?;
            continue;
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let entry = source
            .entry(&rel)?
            .ok_or_else(|| ArchiveError::NotFound(c.path.clone()))?;
        w.append(&rel, entry, Path::to_path_buf)?;
    }
    w.finish()
}

/// Tars `path_in_root` (resolved inside `root`) to `out`: `/` exports the whole tree with
/// unprefixed names (`docker export`); any other path is archived under its base name
/// (`docker cp` download). Symlinks inside are archived as links, never followed.
pub fn tar_path(
    root: &Path,
    path_in_root: &str,
    out: &mut dyn Write,
    opts: &TarOptions,
) -> Result<(), ArchiveError> {
    let mut source = Source::open(root, Xattrs::Capability)?;
    let rel = crate::path::clean(Path::new(path_in_root))?;
    let rel = match crate::path::split(&rel) {
        None => rel,
        Some(_) if opts.follow_root_symlink => source.resolve(&rel)?,
        Some((parent, name)) => source.resolve(parent)?.join(name),
    };
    let starts: Vec<(PathBuf, PathBuf)> = if opts.include.is_empty() {
        let name = rel.file_name().map(PathBuf::from).unwrap_or_default();
        vec![(rel.clone(), name)]
    } else {
        let mut v = Vec::new();
        for inc in &opts.include {
            let inc = crate::path::clean(Path::new(inc))?;
            v.push((rel.join(&inc), inc));
        }
        v.sort();
        v
    };
    let rebase = |name: &Path| -> PathBuf {
        match &opts.rebase {
            Some((from, to)) => match name.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from(to),
                Ok(rest) => Path::new(to).join(rest),
                Err(_) => name.to_path_buf(),
            },
            None => name.to_path_buf(),
        }
    };
    if opts.include.is_empty() && !source.exists(&rel)? {
        return Err(ArchiveError::NotFound(path_in_root.to_string()));
    }
    let mut w = TarWriter::new(out);
    for (src, name) in &starts {
        // Hard links are named by their first source path; map it to its tar name.
        let link_name = |first: &Path| -> PathBuf {
            let sub = first.strip_prefix(src).unwrap_or(first);
            rebase(&name.join(sub))
        };
        tar_rec(&mut source, &mut w, src, name, &rebase, &link_name)?;
    }
    w.finish()
}

fn tar_rec(
    source: &mut Source,
    w: &mut TarWriter<'_>,
    rel: &Path,
    name: &Path,
    rebase: &dyn Fn(&Path) -> PathBuf,
    link_name: &dyn Fn(&Path) -> PathBuf,
) -> Result<(), ArchiveError> {
    let Some(entry) = source.entry(rel)? else {
        return Ok(());
    };
    let is_dir = matches!(entry.node.kind, NodeKind::Dir);
    // The root of an export has no entry of its own, as with `docker export`.
    if !name.as_os_str().is_empty() {
        w.append(&rebase(name), entry, link_name)?;
    }
    if is_dir {
        for child in source.children(rel)? {
            tar_rec(
                source,
                w,
                &rel.join(&child),
                &name.join(&child),
                rebase,
                link_name,
            )?;
        }
    }
    Ok(())
}
