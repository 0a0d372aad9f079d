//! `docker cp`: stat, download and upload paths of a container's filesystem
//! (`HEAD/GET/PUT /containers/{id}/archive`), for running and stopped containers alike.
//!
//! The container's root is mounted for the operation; the storage driver counts mounts, so a
//! running container's root stays mounted afterwards. A path at or under a bind mount, or one of
//! the generated files (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`), is served from the
//! mount's source as Docker does. Every lookup goes through `wharf_archive`, which resolves
//! symlinks inside the container's root (or the mount source), never on the host.
//!
//! Mounts are matched lexically on the requested path: a symlink in the root filesystem that
//! leads into a mount resolves to the directory under the mount point, not the mount (the docker
//! CLI follows a destination symlink itself, so its uploads still land in the mount). tmpfs
//! mounts live only in the container's mount namespace and are not reachable.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use wharf_archive::{ApplyOptions, ArchiveError, PathStat, TarOptions};
use wharf_errdefs::ErrorKind;
use wharf_image::ImageService;

use super::lifecycle::read_rootfs_file;
use super::spec::resolve_user;
use super::{blocking, ContainerService};
use crate::server::error::ApiError;
use crate::state::Container;
use wharf_volume::MountKind;

/// What `PUT /containers/{id}/archive` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// Directory in the container to extract into.
    pub path: String,
    /// Refuse to replace a directory by a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Own the files by the container's configured user (`docker cp -a`).
    pub copy_uid_gid: bool,
}

/// A filesystem mounted into the container that `cp` reaches through its host source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountView {
    /// Clean absolute path in the container.
    dest: PathBuf,
    source: PathBuf,
    read_only: bool,
}

/// Where a container path lives on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Located {
    /// The directory every lookup is confined to.
    root: PathBuf,
    /// The path inside `root`.
    path: String,
    /// Where `root` sits in the container (`/` for its root filesystem), to report link targets.
    prefix: PathBuf,
    /// The name the user asked for: the tar root entry and the stat's name.
    name: String,
    /// A trailing `/` or `/.` asks to follow a final symlink, as Docker does.
    follow: bool,
    /// `Some(read_only)` when the path is on a mount rather than the container's root.
    mount: Option<bool>,
}

/// The container's root filesystem, mounted until dropped.
struct Mounted {
    images: Arc<ImageService>,
    id: String,
    path: PathBuf,
}

impl Mounted {
    fn new(images: Arc<ImageService>, id: &str) -> Result<Mounted, ApiError> {
        let path = images
            .mount_rw_layer(id)
            .map_err(|e| ApiError::from_err(&e))?;
        Ok(Mounted {
            images,
            id: id.to_string(),
            path,
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.images.unmount_rw_layer(&self.id) {
            tracing::warn!(id = self.id, "unmounting after cp: {e}");
        }
    }
}

/// The request's `path`, which Docker requires.
pub fn required_path(path: Option<&str>) -> Result<&str, ApiError> {
    path.filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("bad parameter: path cannot be empty"))
}

impl ContainerService {
    /// Stats `path` in the container (`HEAD .../archive`).
    pub async fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat, ApiError> {
        let c = self.snapshot(key)?;
        let (images, files, key, path) = (
            self.images.clone(),
            self.store.dir(&c.id),
            key.to_string(),
            path.to_string(),
        );
        blocking(move || {
            let fs = Mounted::new(images, &c.id)?;
            let loc = locate(&fs.path, &mounts(&c, &files), &path);
            stat(&loc)
                .map(|(st, _)| st)
                .map_err(|e| not_found(e, &path, &key))
        })
        .await
    }

    /// Stats `path` and then streams its tar into `out` (`GET .../archive`); errors before the
    /// stream starts are returned, later ones only end the stream early.
    pub async fn archive_get<W: Write + Send + 'static>(
        &self,
        key: &str,
        path: &str,
        mut out: W,
    ) -> Result<PathStat, ApiError> {
        let c = self.snapshot(key)?;
        let (images, files, key, path) = (
            self.images.clone(),
            self.store.dir(&c.id),
            key.to_string(),
            path.to_string(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let prepared = Mounted::new(images, &c.id).and_then(|fs| {
                let loc = locate(&fs.path, &mounts(&c, &files), &path);
                let (st, resolved) = stat(&loc).map_err(|e| not_found(e, &path, &key))?;
                Ok((fs, loc, st, resolved))
            });
            let (fs, loc, st, resolved) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let opts = tar_options(&loc, &resolved);
            if tx.send(Ok(st)).is_ok() {
                if let Err(e) = wharf_archive::tar_path(&loc.root, &loc.path, &mut out, &opts) {
                    tracing::warn!(id = c.id, path, "cp from container failed: {e}");
                }
            }
            drop(fs);
        });
        rx.await
            .map_err(|_| ApiError::internal("cp from container: background task failed"))?
    }

    /// Extracts the (maybe compressed) tar `body` into a directory of the container
    /// (`PUT .../archive`).
    pub async fn archive_put<R: Read + Send + 'static>(
        &self,
        key: &str,
        opts: PutOptions,
        mut body: R,
    ) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        let (images, files, key) = (self.images.clone(), self.store.dir(&c.id), key.to_string());
        blocking(move || {
            let res = put(&images, &c, &files, &key, &opts, &mut body);
            // Like Go's server, read a little of what is left so a client still sending a small
            // upload gets our answer instead of a broken pipe.
            let _ = std::io::copy(&mut body.take(DRAIN_LIMIT), &mut std::io::sink());
            res
        })
        .await
    }
}

/// How much of an unread upload is drained before answering.
const DRAIN_LIMIT: u64 = 256 << 10;

/// [`ContainerService::archive_put`] on the blocking pool.
fn put(
    images: &Arc<ImageService>,
    c: &Container,
    files: &Path,
    key: &str,
    opts: &PutOptions,
    body: &mut dyn Read,
) -> Result<(), ApiError> {
    let fs = Mounted::new(images.clone(), &c.id)?;
    // Docker follows a final symlink here: extracting "into" a link to a directory works.
    let mut loc = locate(&fs.path, &mounts(c, files), &opts.path);
    loc.follow = true;
    let (st, dest) = stat(&loc).map_err(|e| not_found(e, &opts.path, key))?;
    if st.go_mode() & (1 << 31) == 0 {
        return Err(ApiError::invalid("extraction point is not a directory"));
    }
    match loc.mount {
        Some(true) => {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "mounted volume is marked read-only",
            ))
        }
        None if c.host_config.readonly_rootfs => {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "container rootfs is marked read-only",
            ))
        }
        _ => {}
    }
    let chown = match (opts.copy_uid_gid, c.config.user.as_str()) {
        (true, user) if !user.is_empty() => {
            let (passwd, group) = (
                read_rootfs_file(&fs.path, "etc/passwd"),
                read_rootfs_file(&fs.path, "etc/group"),
            );
            let (uid, gid, _) =
                resolve_user(user, &passwd, &group, &[]).map_err(|e| ApiError::from_err(&e))?;
            Some((uid, gid))
        }
        _ => None,
    };
    let apply = ApplyOptions {
        chown,
        allow_type_changes: !opts.no_overwrite_dir_non_dir,
        ..ApplyOptions::default()
    };
    wharf_archive::extract_confined(&loc.root, &dest, body, &apply)
        .map_err(|e| ApiError::from_err(&e))
}

/// Docker's 404 for a path missing in the container.
fn not_found(e: ArchiveError, path: &str, container: &str) -> ApiError {
    match e {
        ArchiveError::NotFound(_) => ApiError::not_found(format!(
            "Could not find the file {path} in container {container}"
        )),
        e => ApiError::from_err(&e),
    }
}

/// Stats the located path, following a final symlink when asked, and returns the stat to report
/// (named as requested, link target as the container sees it) with the in-root path the request
/// ends up naming.
fn stat(loc: &Located) -> Result<(PathStat, String), ArchiveError> {
    let mut st = wharf_archive::stat_path(&loc.root, &loc.path)?;
    let mut resolved = loc.path.clone();
    if loc.follow && !st.link_target.is_empty() {
        resolved.clone_from(&st.link_target);
        st = PathStat {
            link_target: st.link_target,
            ..wharf_archive::stat_path(&loc.root, &resolved)?
        };
    }
    st.name.clone_from(&loc.name);
    if st.link_target.starts_with('/') {
        st.link_target = loc
            .prefix
            .join(st.link_target.trim_start_matches('/'))
            .display()
            .to_string();
    }
    Ok((st, resolved))
}

/// Names the tar's root entry after the requested path (Docker rebases a followed symlink or a
/// mount source to the name asked for; entries of the container's root get a `/` or `./`
/// prefix, which the docker CLI relies on to name the copy). `resolved` is what [`stat`] returned.
fn tar_options(loc: &Located, resolved: &str) -> TarOptions {
    let base = Path::new(resolved)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    let rebase = match base {
        None => Some((String::new(), loc.name.clone())),
        Some(f) if f != loc.name && loc.name != "/" => Some((f, loc.name.clone())),
        _ => None,
    };
    TarOptions {
        include: Vec::new(),
        rebase,
        follow_root_symlink: resolved != loc.path,
    }
}

/// The binds, volumes, tmpfs mounts and generated files of `c`; `files` is the container's
/// state directory. A tmpfs exists only in the container's mount namespace, so it is reached
/// through its init's root while it runs.
fn mounts(c: &Container, files: &Path) -> Vec<MountView> {
    let hc = &c.host_config;
    let init_root = (c.state.status.is_alive() && c.state.pid > 0)
        .then(|| PathBuf::from(format!("/proc/{}/root", c.state.pid)));
    let mut v: Vec<MountView> = Vec::new();
    for m in &c.mount_points {
        let source = match m.kind {
            MountKind::Bind => PathBuf::from(&m.source),
            MountKind::Volume => Path::new(&m.source).join(&m.subpath),
            MountKind::Tmpfs => match &init_root {
                Some(r) => r.join(m.destination.trim_start_matches('/')),
                None => continue,
            },
        };
        v.push(MountView {
            dest: clean_abs(&m.destination),
            source,
            read_only: !m.rw,
        });
    }
    for dest in hc.tmpfs.iter().flat_map(|t| t.keys()) {
        if let Some(r) = &init_root {
            v.push(MountView {
                dest: clean_abs(dest),
                source: r.join(dest.trim_start_matches('/')),
                read_only: false,
            });
        }
    }
    for name in ["hostname", "hosts", "resolv.conf"] {
        let dest = Path::new("/etc").join(name);
        let source = files.join(name);
        if source.is_file() && !v.iter().any(|m| m.dest == dest) {
            v.push(MountView {
                dest,
                source,
                read_only: hc.readonly_rootfs,
            });
        }
    }
    v.retain(|m| m.source.is_absolute());
    v
}

/// `/` joined with `p`, lexically cleaned (`..` stops at the root, as Go's `filepath.Join`).
fn clean_abs(p: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in Path::new(p).components() {
        match comp {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Finds the host directory and in-root path for the container path `path`: the innermost
/// mount whose destination is a lexical prefix of it, else the root filesystem at `rootfs`.
fn locate(rootfs: &Path, mounts: &[MountView], path: &str) -> Located {
    let abs = clean_abs(path);
    let dot = path == "." || path.ends_with("/.");
    let name = match abs.file_name() {
        _ if dot => ".".to_string(),
        Some(n) => n.to_string_lossy().into_owned(),
        None => "/".to_string(),
    };
    let follow = dot || path.ends_with('/');
    let here = |root: PathBuf, path: PathBuf, prefix: PathBuf, mount: Option<bool>| Located {
        root,
        path: path.display().to_string(),
        prefix,
        name: name.clone(),
        follow,
        mount,
    };
    let best = mounts
        .iter()
        .filter(|m| abs.starts_with(&m.dest))
        .max_by_key(|m| m.dest.components().count());
    let Some(m) = best else {
        return here(rootfs.to_path_buf(), abs.clone(), PathBuf::from("/"), None);
    };
    let rest = abs.strip_prefix(&m.dest).unwrap_or(Path::new(""));
    // `join("")` would add a trailing slash, and in-root paths are compared as strings later.
    let under = |base: PathBuf| {
        if rest.as_os_str().is_empty() {
            base
        } else {
            base.join(rest)
        }
    };
    match (m.source.is_dir(), m.source.parent(), m.source.file_name()) {
        // A file mount: confine to its directory and look up only the file itself.
        (false, Some(dir), Some(file)) => {
            let prefix = m.dest.parent().unwrap_or(Path::new("/")).to_path_buf();
            here(
                dir.to_path_buf(),
                under(Path::new("/").join(file)),
                prefix,
                Some(m.read_only),
            )
        }
        _ => here(
            m.source.clone(),
            under(PathBuf::from("/")),
            m.dest.clone(),
            Some(m.read_only),
        ),
    }
}

/// Docker's `X-Docker-Container-Path-Stat` value: base64 of the stat as JSON, with Go's
/// `os.FileMode` bits and an RFC 3339 mtime.
pub fn stat_header(st: &PathStat) -> String {
    let mtime = chrono::DateTime::from_timestamp(st.mtime.0, st.mtime.1).unwrap_or_default();
    let json = serde_json::json!({
        "name": st.name,
        "size": st.size,
        "mode": st.go_mode(),
        "mtime": mtime.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "linkTarget": st.link_target,
    });
    wharf_api_types::base64::encode(json.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_required() {
        assert_eq!(required_path(Some("/x")), Ok("/x"));
        for missing in [None, Some("")] {
            assert_eq!(
                required_path(missing).map_err(|e| e.kind),
                Err(ErrorKind::InvalidArgument)
            );
        }
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean_abs("etc/../../x/./y/"), PathBuf::from("/x/y"));
        assert_eq!(clean_abs("/"), PathBuf::from("/"));
        assert_eq!(clean_abs(".."), PathBuf::from("/"));
    }

    #[test]
    fn paths_land_on_the_innermost_mount() {
        let d = tempfile::tempdir().expect("tempdir");
        let (data, file) = (d.path().join("data"), d.path().join("hostname"));
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(&file, "h\n").expect("write");
        let mounts = vec![
            MountView {
                dest: "/srv".into(),
                source: d.path().to_path_buf(),
                read_only: false,
            },
            MountView {
                dest: "/srv/data".into(),
                source: data.clone(),
                read_only: true,
            },
            MountView {
                dest: "/etc/hostname".into(),
                source: file,
                read_only: false,
            },
        ];
        let rootfs = Path::new("/rootfs");
        let l = locate(rootfs, &mounts, "/srv/data/a/b");
        assert_eq!(
            (l.root.as_path(), l.path.as_str(), l.name.as_str(), l.mount),
            (data.as_path(), "/a/b", "b", Some(true))
        );
        let l = locate(rootfs, &mounts, "/srv/database");
        assert_eq!((l.root.as_path(), l.path.as_str()), (d.path(), "/database"));
        let l = locate(rootfs, &mounts, "etc/hostname");
        assert_eq!(
            (
                l.root.as_path(),
                l.path.as_str(),
                l.prefix.as_path(),
                l.follow
            ),
            (d.path(), "/hostname", Path::new("/etc"), false)
        );
        let l = locate(rootfs, &mounts, "/etc/");
        assert_eq!(
            (
                l.root.as_path(),
                l.path.as_str(),
                l.name.as_str(),
                l.mount,
                l.follow
            ),
            (rootfs, "/etc", "etc", None, true)
        );
        let l = locate(rootfs, &mounts, "/etc/.");
        assert_eq!((l.name.as_str(), l.follow), (".", true));
        assert_eq!(locate(rootfs, &mounts, "/").name, "/");
    }

    #[test]
    fn tar_root_entries_take_the_requested_name() {
        let loc = |path: &str, name: &str| Located {
            root: "/r".into(),
            path: path.into(),
            prefix: "/".into(),
            name: name.into(),
            follow: true,
            mount: None,
        };
        assert_eq!(tar_options(&loc("/etc", "etc"), "/etc").rebase, None);
        let o = tar_options(&loc("/escape", "escape"), "/etc");
        assert_eq!(
            (o.rebase, o.follow_root_symlink),
            (Some(("etc".into(), "escape".into())), true)
        );
        let o = tar_options(&loc("/dir", "."), "/dir");
        assert_eq!(
            (o.rebase, o.follow_root_symlink),
            (Some(("dir".into(), ".".into())), false)
        );
        assert_eq!(
            tar_options(&loc("/", "/"), "/").rebase,
            Some((String::new(), "/".into()))
        );
        assert_eq!(
            tar_options(&loc("/", "."), "/").rebase,
            Some((String::new(), ".".into()))
        );
    }

    #[test]
    fn stat_header_is_docker_shaped() {
        let st = PathStat {
            name: "hostname".into(),
            size: 13,
            mode: 0o100644,
            mtime: (1_700_000_000, 0),
            link_target: String::new(),
        };
        let h = stat_header(&st);
        assert_eq!(h.len() % 4, 0);
        let expected = r#"{"linkTarget":"","mode":420,"mtime":"2023-11-14T22:13:20Z","name":"hostname","size":13}"#;
        assert_eq!(h, wharf_api_types::base64::encode(expected.as_bytes()));
    }
}
