//! COPY and ADD: resolve sources (context, another stage, an image; wildcards; heredocs),
//! hash their content the way the cache needs (tarsum-like: header fields without times,
//! plus content), and write them into a build container's root through a confined tar
//! extraction so symlinks in the image cannot redirect the writes.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wharf_api_types::dockerignore::{glob_match, Patterns};
use wharf_archive::ApplyOptions;

use super::{FsOp, StageRun};
use crate::context::confine;
use crate::dockerfile::{expand, CopyArgs};
use crate::BuildError;

/// One source after resolution.
enum Source {
    /// A file, directory or symlink under a root.
    Path { abs: PathBuf, name: String },
    /// A heredoc body.
    Bytes { name: String, data: Vec<u8> },
    /// ADD of a local archive: extracted into the destination.
    Archive { abs: PathBuf },
}

/// A COPY/ADD ready to apply.
pub(crate) struct Prepared {
    sources: Vec<Source>,
    dest: String,
    /// The destination is a directory (ends in `/`, or several sources).
    dest_dir: bool,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    chown_spec: Option<String>,
    /// `--parents`: each source keeps its path (after a `/./` pivot) under the destination.
    parents: bool,
    /// `--exclude` patterns, matched below each source directory.
    exclude: Patterns,
}

fn is_archive(path: &Path) -> bool {
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    let Ok(r) = wharf_archive::decompress(Box::new(f)) else {
        return false;
    };
    let mut a = tar::Archive::new(r);
    let ok = a
        .entries()
        .ok()
        .and_then(|mut e| e.next())
        .is_some_and(|e| e.is_ok());
    ok
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Expands a (cleaned, relative) source path with wildcards under `root`.
fn glob(root: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in rel.components() {
        let seg = comp.as_os_str().to_string_lossy().to_string();
        let wild = seg.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &found {
            if !wild {
                next.push(base.join(&seg));
                continue;
            }
            let Ok(rd) = fs::read_dir(root.join(base)) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| glob_match(&seg, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found
        .into_iter()
        .filter(|p| fs::symlink_metadata(root.join(p)).is_ok())
        .collect()
}

/// Every path under `abs` (itself first), sorted, as (relative name, path), less what
/// `exclude` (`COPY --exclude`) matches; an excluded directory is still searched when an
/// exception may bring something under it back.
fn walk(abs: &Path, exclude: &Patterns) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut queue = vec![(String::new(), abs.to_path_buf())];
    while let Some((rel, p)) = queue.pop() {
        let excluded = !rel.is_empty() && exclude.excluded(&rel);
        if !excluded {
            out.push((rel.clone(), p.clone()));
        }
        let is_dir = fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        if !is_dir || (excluded && !exclude.has_exceptions()) {
            continue;
        }
        let Ok(rd) = fs::read_dir(&p) else { continue };
        let mut kids: Vec<(String, PathBuf)> = rd
            .flatten()
            .map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                let r = if rel.is_empty() {
                    n
                } else {
                    format!("{rel}/{n}")
                };
                (r, e.path())
            })
            .collect();
        kids.sort();
        queue.extend(kids.into_iter().rev());
    }
    out
}

/// Copies `src` (a file or a tree; modes, owners and symlinks kept) to `dest`, which must
/// not exist. Sockets, fifos and devices are left out.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), BuildError> {
    for (rel, p) in walk(src, &Patterns::default()) {
        let to = if rel.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&rel)
        };
        let io = BuildError::io(format!("copy {}", p.display()));
        let m = fs::symlink_metadata(&p).map_err(BuildError::io("stat copy source"))?;
        if m.is_dir() {
            fs::create_dir(&to)
                .and_then(|_| fs::set_permissions(&to, m.permissions()))
                .map_err(io)?;
        } else if m.file_type().is_symlink() {
            fs::read_link(&p)
                .and_then(|l| std::os::unix::fs::symlink(l, &to))
                .map_err(io)?;
        } else if m.is_file() {
            fs::copy(&p, &to).map_err(io)?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()))
            .map_err(BuildError::io("chown copy"))?;
    }
    Ok(())
}

/// Hash of one path's tree: per entry its name, type, mode, ids, size, link target and
/// content; never times.
pub(super) fn hash_tree(
    abs: &Path,
    exclude: &Patterns,
    hasher: &mut Sha256,
) -> Result<(), BuildError> {
    for (rel, p) in walk(abs, exclude) {
        let m =
            fs::symlink_metadata(&p).map_err(BuildError::io(format!("stat {}", p.display())))?;
        let kind = if m.is_dir() {
            '5'
        } else if m.file_type().is_symlink() {
            '2'
        } else {
            '0'
        };
        let link = if kind == '2' {
            fs::read_link(&p)
                .map(|l| l.to_string_lossy().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let size = if kind == '0' { m.len() } else { 0 };
        hasher.update(format!(
            "name{rel}\0type{kind}\0mode{:o}\0uid{}\0gid{}\0size{size}\0link{link}\0",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ));
        if kind == '0' {
            let mut f =
                fs::File::open(&p).map_err(BuildError::io(format!("open {}", p.display())))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(BuildError::io("read source"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
    }
    Ok(())
}

/// Owner for `--chown` from the container's /etc/passwd and /etc/group.
fn resolve_owner(root: &Path, spec: &str) -> Result<(u32, u32), BuildError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, what: &str| -> Result<(u32, Option<u32>), BuildError> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok((n, None));
        }
        let text = fs::read_to_string(root.join(file)).unwrap_or_default();
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name))
            .and_then(|f| {
                let id = f.get(2)?.parse().ok()?;
                Some((id, f.get(3).and_then(|g| g.parse().ok())))
            })
            .ok_or_else(|| {
                BuildError::InvalidArgument(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} for {what} {name}: no such {what} in /{file}"
                ))
            })
    };
    let (uid, primary) = lookup("etc/passwd", user, "uid")?;
    let gid = match group {
        Some(g) => lookup("etc/group", g, "gid")?.0,
        None if user.parse::<u32>().is_ok() => uid,
        None => primary.unwrap_or(uid),
    };
    Ok((uid, gid))
}

/// `mkdir -p dir` inside `root`, confined (WORKDIR).
pub(crate) fn mkdir_in(root: &Path, dir: &str) -> Result<(), BuildError> {
    let tar = dir_tar(root, &[], dir)?;
    extract(root, tar, None)
}

/// A tar of directory entries for the missing ancestors of `dest` (and `dest` itself).
fn dir_tar(
    root: &Path,
    extra: &[PathBuf],
    dest: &str,
) -> Result<tempfile::SpooledTempFile, BuildError> {
    let mut b = tar::Builder::new(tempfile::SpooledTempFile::new(1 << 20));
    let rel = confine(dest).unwrap_or_default();
    let mut acc = PathBuf::new();
    for c in rel.components() {
        acc.push(c);
        if fs::symlink_metadata(root.join(&acc)).is_err() && !extra.contains(&acc) {
            append_dir(&mut b, &acc, 0o755)?;
        }
    }
    b.into_inner().map_err(BuildError::io("write tar"))
}

fn append_dir<W: Write>(b: &mut tar::Builder<W>, name: &Path, mode: u32) -> Result<(), BuildError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    b.append_data(&mut h, name, std::io::empty())
        .map_err(BuildError::io("write tar"))
}

fn extract(
    root: &Path,
    mut tar: tempfile::SpooledTempFile,
    owner: Option<(u32, u32)>,
) -> Result<(), BuildError> {
    tar.rewind().map_err(BuildError::io("rewind tar"))?;
    let opts = ApplyOptions {
        preserve_ownership: true,
        chown: Some(owner.unwrap_or((0, 0))),
        allow_type_changes: true,
        ..ApplyOptions::default()
    };
    wharf_archive::extract_confined(root, "/", &mut tar, &opts)?;
    Ok(())
}

impl Prepared {
    /// Writes the sources into the container root `root`.
    pub(crate) fn apply(&self, root: &Path) -> Result<(), BuildError> {
        let owner = match &self.chown_spec {
            Some(s) => Some(resolve_owner(root, s)?),
            None => self.owner,
        };
        let dest_rel = confine(&self.dest).unwrap_or_default();
        let dest_is_dir =
            self.dest_dir || fs::symlink_metadata(root.join(&dest_rel)).is_ok_and(|m| m.is_dir());
        let dir_of_dest = if dest_is_dir {
            self.dest.clone()
        } else {
            dest_rel
                .parent()
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_default()
        };
        extract(root, dir_tar(root, &[], &dir_of_dest)?, owner)?;
        let mut b = tar::Builder::new(tempfile::SpooledTempFile::new(8 << 20));
        b.follow_symlinks(false);
        for s in &self.sources {
            match s {
                Source::Bytes { name, data } => {
                    let target = if dest_is_dir {
                        dest_rel.join(name)
                    } else {
                        dest_rel.clone()
                    };
                    let mut h = tar::Header::new_gnu();
                    h.set_size(data.len() as u64);
                    h.set_mode(self.chmod.unwrap_or(0o644));
                    b.append_data(&mut h, &target, &data[..])
                        .map_err(BuildError::io("write tar"))?;
                }
                Source::Path { abs, name } => {
                    let top = fs::metadata(abs).map_err(BuildError::io(format!("stat {name}")))?;
                    if top.is_dir() {
                        // --parents keeps the directory's own path under the destination.
                        let base = if self.parents {
                            dest_rel.join(name)
                        } else {
                            dest_rel.clone()
                        };
                        if self.parents {
                            extract(
                                root,
                                dir_tar(root, &[], &format!("/{}", base.display()))?,
                                owner,
                            )?;
                        }
                        for (rel, p) in walk(abs, &self.exclude) {
                            let target = if rel.is_empty() {
                                base.clone()
                            } else {
                                base.join(&rel)
                            };
                            self.append_path(&mut b, &p, &target, rel.is_empty())?;
                        }
                    } else {
                        let target = if dest_is_dir {
                            dest_rel.join(name)
                        } else {
                            dest_rel.clone()
                        };
                        if let Some(dir) = target.parent().filter(|_| self.parents) {
                            extract(
                                root,
                                dir_tar(root, &[], &format!("/{}", dir.display()))?,
                                owner,
                            )?;
                        }
                        self.append_path(&mut b, abs, &target, true)?;
                    }
                }
                Source::Archive { abs } => {
                    let mut f = fs::File::open(abs).map_err(BuildError::io("open archive"))?;
                    let opts = ApplyOptions {
                        preserve_ownership: true,
                        chown: owner,
                        allow_type_changes: true,
                        ..ApplyOptions::default()
                    };
                    let dir = if dest_is_dir {
                        self.dest.clone()
                    } else {
                        format!("/{}", dest_rel.display())
                    };
                    extract(root, dir_tar(root, &[], &dir)?, owner)?;
                    wharf_archive::extract_confined(root, &dir, &mut f, &opts)?;
                }
            }
        }
        let tar = b.into_inner().map_err(BuildError::io("write tar"))?;
        extract(root, tar, owner)
    }

    /// Appends one path; `top` follows a symlink (the named source itself).
    fn append_path<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        p: &Path,
        target: &Path,
        top: bool,
    ) -> Result<(), BuildError> {
        let m = if top {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        }
        .map_err(BuildError::io(format!("stat {}", p.display())))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&m);
        h.set_mtime(m.mtime().max(0) as u64);
        if let Some(mode) = self.chmod {
            h.set_mode(mode);
        } else {
            h.set_mode(m.permissions().mode() & 0o7777);
        }
        if m.file_type().is_symlink() {
            let link = fs::read_link(p).map_err(BuildError::io("readlink"))?;
            h.set_size(0);
            b.append_link(&mut h, target, link)
                .map_err(BuildError::io("write tar"))
        } else if m.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, target, std::io::empty())
                .map_err(BuildError::io("write tar"))
        } else if m.is_file() {
            let f = fs::File::open(p).map_err(BuildError::io(format!("open {}", p.display())))?;
            b.append_data(&mut h, target, f)
                .map_err(BuildError::io("write tar"))
        } else {
            Ok(()) // sockets, fifos and devices are not copied
        }
    }
}

impl StageRun<'_, '_> {
    pub(super) fn copy_step(&mut self, a: &CopyArgs, add: bool) -> Result<(), BuildError> {
        let cmd = if add { "ADD" } else { "COPY" };
        // --link only changes how BuildKit rebases the layer; the files are the same.
        if a.checksum.is_some() && !a.sources.iter().all(|s| is_url(s)) {
            return Err(BuildError::InvalidArgument(
                "checksum can't be specified for non-HTTP(S) sources".into(),
            ));
        }
        // A source container for --from (removed when the step is done).
        let mut from_container: Option<String> = None;
        let res = self.copy_inner(a, add, cmd, &mut from_container);
        if let Some(cid) = from_container {
            let _ = self.sh.worker.unmount(&cid);
            self.sh.worker.remove(&cid)?;
        }
        res
    }

    fn copy_inner(
        &mut self,
        a: &CopyArgs,
        add: bool,
        cmd: &str,
        from_container: &mut Option<String>,
    ) -> Result<(), BuildError> {
        let root: PathBuf = match &a.from {
            None => self.sh.ctx.root().to_path_buf(),
            Some(from) => {
                let image = self.source_image(from)?;
                self.open_image(&image, from_container)?
            }
        };
        let excludes = a
            .exclude
            .iter()
            .map(|e| self.expand_word(e))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = Patterns::parse(&excludes.join("\n"));
        let mut sources = Vec::new();
        let mut hasher = Sha256::new();
        let mut kinds = Vec::new();
        for src in &a.sources {
            if let Some(name) = src
                .strip_prefix("<<")
                .map(|n| n.trim_start_matches('-').trim_matches(['"', '\'']))
            {
                if let Some(h) = a.heredocs.iter().find(|h| h.name == name) {
                    let body = if h.expand {
                        expand::heredoc(&h.content, &self.vars(), self.sh.df.escape)
                            .map_err(|e| self.err(e.to_string()))?
                    } else {
                        h.content.clone()
                    };
                    hasher.update(format!("heredoc{name}\0{}\0", body.len()));
                    hasher.update(body.as_bytes());
                    kinds.push("file");
                    sources.push(Source::Bytes {
                        name: name.to_string(),
                        data: body.into_bytes(),
                    });
                    continue;
                }
            }
            let src = self.expand_word(src)?;
            if add && crate::context::is_git_url(&src) {
                // The checkout's files (and .git with --keep-git-dir) go into the destination.
                let dir = self.scratch_dir("git")?;
                let root = crate::context::clone_git(&src, &dir)?;
                if !a.keep_git_dir {
                    fs::remove_dir_all(dir.join(".git")).map_err(BuildError::io("remove .git"))?;
                }
                kinds.push("dir");
                hasher.update(format!("git{src}\0"));
                hash_tree(&root, &exclude, &mut hasher)?;
                sources.push(Source::Path {
                    abs: root,
                    name: String::new(),
                });
                continue;
            }
            if add && is_url(&src) {
                let (abs, name, mtime) = self.download(&src, a.checksum.as_deref())?;
                kinds.push("file");
                hasher.update(format!("source{name}\0mtime{mtime}\0"));
                hash_tree(&abs, &Patterns::default(), &mut hasher)?;
                sources.push(Source::Path { abs, name });
                continue;
            }
            // `--parents` keeps the path after a `./` pivot (BuildKit's rule), else all of it.
            let pivot = match src.split_once("/./") {
                Some((before, _)) if a.parents => confine(before).unwrap_or_default(),
                _ => PathBuf::new(),
            };
            let rel = confine(&src).ok_or_else(|| {
                BuildError::InvalidArgument(format!(
                    "{cmd} failed: forbidden path outside the build context: {src} ()"
                ))
            })?;
            let matches = if src.contains(['*', '?', '[']) {
                let m = glob(&root, &rel);
                if m.is_empty() {
                    return Err(BuildError::NotFound(format!(
                        "{cmd} failed: no source files were specified"
                    )));
                }
                m
            } else {
                if fs::metadata(root.join(&rel)).is_err() {
                    return Err(BuildError::NotFound(format!(
                        "{cmd} failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
                    )));
                }
                vec![rel]
            };
            for m in matches {
                let file_name = m.file_name().map(|n| n.to_string_lossy().to_string());
                if file_name.is_some_and(|n| exclude.excluded(&n)) {
                    continue;
                }
                let abs = root.join(&m);
                let is_dir = fs::metadata(&abs).is_ok_and(|x| x.is_dir());
                kinds.push(if is_dir { "dir" } else { "file" });
                let name = if a.parents {
                    m.strip_prefix(&pivot)
                        .unwrap_or(&m)
                        .to_string_lossy()
                        .to_string()
                } else {
                    m.file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default()
                };
                // The name decides where the source lands, so it is part of the key.
                hasher.update(format!("source{name}\0"));
                hash_tree(&abs, &exclude, &mut hasher)?;
                if add && !is_dir && a.from.is_none() && is_archive(&abs) {
                    sources.push(Source::Archive { abs });
                } else {
                    sources.push(Source::Path { abs, name });
                }
            }
        }
        let dest_raw = self.expand_word(&a.dest)?;
        let dest_dir =
            dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == "." || a.parents;
        if sources.len() > 1 && !dest_dir {
            return Err(BuildError::InvalidArgument(format!(
                "When using {cmd} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let workdir = if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        };
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_raw)
        };
        let digest = hex::encode(hasher.finalize());
        let hash = match kinds.as_slice() {
            [k] => format!("{k}:{digest}"),
            _ => format!("multi:{digest}"),
        };
        let chmod = a
            .chmod
            .as_deref()
            .map(|m| {
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| self.err(format!("invalid chmod parameter: {m}")))
            })
            .transpose()?;
        let chown_spec = a
            .chown
            .as_deref()
            .map(|c| self.expand_word(c))
            .transpose()?;
        let prepared = Prepared {
            sources,
            dest: dest.clone(),
            dest_dir,
            owner: None,
            chmod,
            chown_spec: chown_spec.clone(),
            parents: a.parents,
            exclude,
        };
        let created_by = self.nop(&format!("{cmd} {hash} in {dest_raw} "));
        let extra = format!(
            "chown={chown_spec:?} chmod={chmod:?} dest={dest} parents={} exclude={excludes:?}",
            a.parents
        );
        self.commit_step(&created_by, &extra, Some(FsOp::Copy(&prepared)))
    }

    /// A copy of `src` (file or tree, modes and owners kept) in the build's scratch space.
    pub(super) fn scratch_copy(&self, src: &Path) -> Result<PathBuf, BuildError> {
        let dest = self.scratch_dir("bind")?.join("src");
        copy_tree(src, &dest)?;
        Ok(dest)
    }

    /// A fresh directory in the build's scratch space (removed with the context).
    fn scratch_dir(&self, prefix: &str) -> Result<PathBuf, BuildError> {
        Ok(tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.sh.ctx.scratch()?)
            .map_err(BuildError::io("create scratch directory"))?
            .keep())
    }

    /// Downloads ADD's `url` into the build's scratch space as Docker's classic builder does:
    /// mode 0600, mtime from `Last-Modified`, checked against `--checksum`. Returns the file,
    /// its name (the URL's last path segment) and its mtime.
    fn download(
        &self,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<(PathBuf, String, i64), BuildError> {
        let path_part = url.split(['?', '#']).next().unwrap_or(url);
        let name = path_part
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(_, p)| p.rsplit('/').next())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| {
                BuildError::InvalidArgument(format!("cannot determine filename from url: {url}"))
            })?
            .to_string();
        let mut dl = wharf_fetch::get(url)?;
        let dir = self.scratch_dir("add")?;
        let path = dir.join(&name);
        let mut f = fs::File::create(&path).map_err(BuildError::io(format!("create {name}")))?;
        let mut digest = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = dl
                .read(&mut buf)
                .map_err(BuildError::io(format!("download {url}")))?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
            f.write_all(&buf[..n])
                .map_err(BuildError::io(format!("write {name}")))?;
        }
        let got = format!("sha256:{}", hex::encode(digest.finalize()));
        if let Some(want) = checksum {
            if !want.starts_with("sha256:") {
                return Err(BuildError::InvalidArgument(format!(
                    "unsupported digest algorithm in checksum {want}"
                )));
            }
            if got != want {
                return Err(BuildError::InvalidArgument(format!(
                    "digest mismatch {got}: {want}"
                )));
            }
        }
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(BuildError::io(format!("chmod {name}")))?;
        let modified = dl
            .last_modified()
            .and_then(|lm| chrono::DateTime::parse_from_rfc2822(lm).ok());
        let mtime = match modified {
            Some(t) => {
                f.set_modified(t.into())
                    .map_err(BuildError::io(format!("set mtime of {name}")))?;
                t.timestamp()
            }
            None => 0,
        };
        Ok((path, name, mtime))
    }

    /// The image behind `--from`: an earlier stage's result, else an image reference.
    pub(super) fn source_image(&self, from: &str) -> Result<String, BuildError> {
        if let Some(j) = self.sh.df.stage_index(from).filter(|j| *j < self.index) {
            let done = self.sh.done.lock().unwrap_or_else(|e| e.into_inner());
            return done.get(&j).and_then(|r| r.image.clone()).ok_or_else(|| {
                BuildError::NotSupported(format!("stage {from} has no filesystem to copy from"))
            });
        }
        match self.sh.worker.image(from)? {
            Some(i) => Ok(i.id),
            None => Ok(self.sh.worker.pull(from)?.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_mtime_not_content() {
        let t = tempfile::tempdir().expect("tmp");
        let f = t.path().join("f");
        fs::write(&f, "one").expect("write");
        let h = || {
            let mut s = Sha256::new();
            hash_tree(t.path(), &Patterns::default(), &mut s).expect("hash");
            hex::encode(s.finalize())
        };
        let a = h();
        let file = fs::File::options().write(true).open(&f).expect("open");
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("touch");
        assert_eq!(a, h());
        fs::write(&f, "two").expect("write");
        assert_ne!(a, h());
    }

    #[test]
    fn walk_leaves_out_excluded_paths() {
        let t = tempfile::tempdir().expect("tmp");
        for f in ["a.txt", "b.md", "sub/c.txt", "sub/keep.txt", "skip/d.md"] {
            let p = t.path().join(f);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, "x").expect("write");
        }
        let names = |ex: &str| {
            walk(t.path(), &Patterns::parse(ex))
                .into_iter()
                .map(|(r, _)| r)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("**/*.txt\nskip\n!sub/keep.txt"),
            ["", "b.md", "sub", "sub/keep.txt"]
        );
        assert_eq!(names("").len(), 8);
    }

    #[test]
    fn owners_from_passwd() {
        let t = tempfile::tempdir().expect("tmp");
        fs::create_dir(t.path().join("etc")).expect("etc");
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .expect("passwd");
        fs::write(t.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        assert_eq!(resolve_owner(t.path(), "app").expect("app"), (1000, 1001));
        assert_eq!(
            resolve_owner(t.path(), "app:staff").expect("app"),
            (1000, 50)
        );
        assert_eq!(resolve_owner(t.path(), "7").expect("7"), (7, 7));
        assert!(resolve_owner(t.path(), "nobody").is_err());
    }
}
