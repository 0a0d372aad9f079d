//! `cp`: `CONTAINER:PATH` on one side; the other a local path or `-` for a tar stream. Local
//! archives are packed and unpacked with the host's `tar` (the CLI stays free of archive code);
//! like docker, a destination that is not an existing directory names the copy.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use wharf_client::{ClientError, Query, RequestBody};

use super::{enc, Ctx, StatusError};
use crate::cli::CpArgs;

/// Go's `os.ModeDir` and `os.ModeSymlink` in the daemon's path stat.
const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;

pub(crate) fn cp(ctx: &Ctx, a: &CpArgs) -> anyhow::Result<i32> {
    let split = |s: &str| -> Option<(String, String)> {
        if s.starts_with('/') || s.starts_with('.') || s == "-" {
            return None;
        }
        s.split_once(':')
            .map(|(c, p)| (c.to_string(), p.to_string()))
    };
    match (split(&a.src), split(&a.dest)) {
        (Some((c, path)), None) => {
            let url = format!("/containers/{}/archive", enc(&c));
            let resp = ctx.client.request(
                "GET",
                &url,
                &Query::new().set("path", path.as_str()),
                RequestBody::Empty,
            )?;
            let dest = Path::new(&a.dest);
            if a.dest == "-" {
                std::io::copy(&mut { resp.body }, &mut std::io::stdout().lock())?;
            } else if dest.is_dir() {
                extract_tar(resp.body, dest, None)?;
            } else if root_name(&path) == "/" {
                // The container's root has no name of its own to rename: the copy is its content.
                std::fs::create_dir(dest)?;
                extract_tar(resp.body, dest, None)?;
            } else {
                let parent = dest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let to = dest
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow::anyhow!("invalid destination path {}", a.dest))?;
                extract_tar(resp.body, parent, Some((&root_name(&path), to)))?;
            }
            Ok(0)
        }
        (None, Some((c, path))) => {
            let url = format!("/containers/{}/archive", enc(&c));
            let (dir, name) = if a.src == "-" {
                (path, None)
            } else {
                upload_target(ctx, &url, &path)?
            };
            let q = Query::new().set("path", dir).flag("copyUIDGID", a.archive);
            let upload = |reader: &mut dyn Read| {
                ctx.client
                    .request(
                        "PUT",
                        &url,
                        &q,
                        RequestBody::Stream {
                            content_type: "application/x-tar",
                            reader,
                        },
                    )
                    .map(drop)
            };
            if a.src == "-" {
                upload(&mut std::io::stdin().lock())?;
            } else {
                let tar = create_tar(&a.src, a.follow_link, name.as_deref())?;
                upload(&mut &tar[..])?;
            }
            Ok(0)
        }
        (Some(_), Some(_)) => Err(StatusError::exit(
            1,
            "copying between containers is not supported",
        )),
        (None, None) => Err(StatusError::exit(
            1,
            "must specify at least one container source",
        )),
    }
}

/// The name the daemon gives the root entry of a download of `path`.
fn root_name(path: &str) -> String {
    if path == "." || path.ends_with("/.") {
        return ".".to_string();
    }
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".to_string())
}

/// Where an upload to `path` goes, as docker decides: into `path` when it is a directory
/// (following one symlink), else into its parent under the name `path` ends with.
fn upload_target(ctx: &Ctx, url: &str, path: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut target = path.to_string();
    let mut st = stat(ctx, url, &target)?;
    if let Some((mode, link)) = &st {
        if mode & MODE_SYMLINK != 0 && !link.is_empty() {
            target = if link.starts_with('/') {
                link.clone()
            } else {
                format!("{}/{link}", parent(path))
            };
            st = stat(ctx, url, &target)?;
        }
    }
    match st {
        Some((mode, _)) if mode & MODE_DIR != 0 => Ok((target, None)),
        _ => Ok((parent(&target), Some(root_name(&target)))),
    }
}

fn parent(path: &str) -> String {
    match Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        Some(p) => p.display().to_string(),
        None => "/".to_string(),
    }
}

/// `HEAD .../archive`: (Go file mode, link target) of `path`, `None` when it does not exist.
fn stat(ctx: &Ctx, url: &str, path: &str) -> anyhow::Result<Option<(u64, String)>> {
    let resp = match ctx.client.request(
        "HEAD",
        url,
        &Query::new().set("path", path),
        RequestBody::Empty,
    ) {
        Ok(r) => r,
        Err(ClientError::Api { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v: Value = resp
        .head
        .header(wharf_api_types::base64::PATH_STAT_HEADER)
        .and_then(wharf_api_types::base64::decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| anyhow::anyhow!("the daemon sent no usable path stat for {path}"))?;
    Ok(Some((
        v["mode"].as_u64().unwrap_or(0),
        v["linkTarget"].as_str().unwrap_or_default().to_string(),
    )))
}

/// A GNU tar `--transform` renaming the archive's root entry `from` (and everything below it)
/// to `to`; symlink targets are left alone.
fn rename_root(from: &str, to: &str) -> String {
    let esc = |s: &str, special: &str| {
        s.chars().fold(String::new(), |mut o, c| {
            if special.contains(c) {
                o.push('\\');
            }
            o.push(c);
            o
        })
    };
    format!(
        "--transform=s|^{}\\(/\\|$\\)|{}\\1|S",
        esc(from, "\\.[]*^$|"),
        esc(to, "\\&|")
    )
}

/// Packs a local file or directory, its root entry named `name` when given.
pub(crate) fn create_tar(src: &str, follow: bool, name: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let p = Path::new(src);
    let parent = p
        .parent()
        .filter(|x| !x.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = p
        .file_name()
        .and_then(|b| b.to_str())
        .ok_or_else(|| anyhow::anyhow!("invalid source path {src}"))?;
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(parent).arg("-cf").arg("-");
    if follow {
        cmd.arg("-h");
    }
    if let Some(name) = name.filter(|n| *n != base) {
        cmd.arg(rename_root(base, name));
    }
    let o = cmd.arg(base).output()?;
    if !o.status.success() {
        return Err(StatusError::exit(
            1,
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ));
    }
    Ok(o.stdout)
}

/// Unpacks `body` into the directory `dest`, renaming its root entry when asked.
fn extract_tar(body: impl Read, dest: &Path, rename: Option<(&str, &str)>) -> anyhow::Result<()> {
    let mut cmd = Command::new("tar");
    cmd.arg("-C")
        .arg(dest)
        .arg("-xf")
        .arg("-")
        .stdin(Stdio::piped());
    if let Some((from, to)) = rename.filter(|(from, to)| from != to) {
        cmd.arg(rename_root(from, to));
    }
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::copy(&mut { body }, &mut stdin)?;
    }
    if !child.wait()?.success() {
        return Err(StatusError::exit(
            1,
            format!("extracting into {} failed", dest.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parents() {
        assert_eq!(root_name("/etc/."), ".");
        assert_eq!(root_name("/etc/"), "etc");
        assert_eq!(root_name("/"), "/");
        assert_eq!(parent("/root/x.txt"), "/root");
        assert_eq!(parent("x.txt"), "/");
        assert_eq!(
            rename_root("a.b", "c&d"),
            r"--transform=s|^a\.b\(/\|$\)|c\&d\1|S"
        );
    }

    #[test]
    fn renames_root_entries_with_gnu_tar() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("src.d/sub")).expect("mkdir");
        std::fs::write(d.path().join("src.d/sub/f"), "x").expect("write");
        let tar = create_tar(
            d.path().join("src.d").to_str().expect("utf8"),
            false,
            Some("new"),
        )
        .expect("tar");
        let out = d.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        extract_tar(&tar[..], &out, Some(("new", "final"))).expect("extract");
        assert_eq!(
            std::fs::read_to_string(out.join("final/sub/f")).expect("renamed"),
            "x"
        );
    }
}
