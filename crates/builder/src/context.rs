//! The build context: the tar `POST /build` receives, unpacked into a private directory, and
//! the Dockerfile read from it.

use std::io::Read;

use std::path::{Component, Path, PathBuf};

use wharf_archive::ApplyOptions;

use crate::BuildError;

/// The largest Dockerfile read (Docker has no limit; a multi-megabyte one is an accident).
pub const MAX_DOCKERFILE: u64 = 4 << 20;

/// An unpacked context. Its directory (and the downloads beside it) belong to the build and
/// are removed on drop.
#[derive(Debug)]
pub struct Context {
    /// What drop removes: the unpacked tar, or a Git checkout.
    top: PathBuf,
    /// The context's root: `top`, or a subdirectory of a checkout (`#ref:subdir`).
    dir: PathBuf,
}

/// Whether `remote` is a Git URL as Docker's `urlutil.IsGitURL` decides.
pub fn is_git_url(remote: &str) -> bool {
    let base = remote.split('#').next().unwrap_or(remote);
    remote.starts_with("git://")
        || remote.starts_with("git@")
        || remote.starts_with("github.com/")
        || ((remote.starts_with("http://") || remote.starts_with("https://"))
            && base.ends_with(".git"))
}

/// Runs git with prompts off and only network protocols allowed (no `ext::`, no `file://`).
fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "http:https:git:ssh")
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

fn is_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(b"ustar")
}

/// Clones `url#ref:subdir` into the existing directory `dir` as Docker's classic builder
/// does: a shallow fetch of the ref (a full one when the server refuses it, for commit ids),
/// then its submodules. Returns the subdirectory, resolved.
pub(crate) fn clone_git(remote: &str, dir: &Path) -> Result<PathBuf, BuildError> {
    let (url, fragment) = remote.split_once('#').unwrap_or((remote, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let fail = |what: &str, e: String| {
        BuildError::InvalidArgument(format!(
            "unable to prepare context: unable to 'git clone' to temporary context directory: {what}: {e}"
        ))
    };
    git(dir, &["init", "-q"]).map_err(|e| fail("git init", e))?;
    git(dir, &["remote", "add", "origin", url]).map_err(|e| fail("git remote add", e))?;
    let want = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    let checkout = match git(dir, &["fetch", "-q", "--depth", "1", "origin", "--", want]) {
        Ok(()) => "FETCH_HEAD",
        Err(_) => {
            git(dir, &["fetch", "-q", "origin"]).map_err(|e| fail("error fetching", e))?;
            want
        }
    };
    git(dir, &["checkout", "-q", checkout, "--"]).map_err(|e| fail("error checking out", e))?;
    let submodules = [
        "submodule",
        "update",
        "-q",
        "--init",
        "--recursive",
        "--depth",
        "1",
    ];
    git(dir, &submodules).map_err(|e| fail("error initializing submodules", e))?;
    let root = dir.join(confine(subdir).unwrap_or_default());
    root.canonicalize()
        .ok()
        .filter(|r| r.is_dir() && dir.canonicalize().is_ok_and(|d| r.starts_with(d)))
        .ok_or_else(|| {
            BuildError::NotFound(format!(
                "unable to prepare context: subdir {subdir} not found in the repository"
            ))
        })
}

impl Context {
    /// Unpacks `tar` (plain, gzip or zstd) into `dir`, which must not exist yet.
    pub fn from_tar(tar: &mut dyn Read, dir: &Path) -> Result<Context, BuildError> {
        std::fs::create_dir_all(dir)
            .map_err(BuildError::io(format!("create {}", dir.display())))?;
        let ctx = Context {
            top: dir.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        let opts = ApplyOptions {
            allow_type_changes: true,
            ..ApplyOptions::default()
        };
        // The docker CLI ends some contexts (`-f` outside the context) right after the last
        // entry's data, without padding or end-of-archive blocks, which Go's reader accepts:
        // supply the zeros it left out.
        let plain = wharf_archive::decompress(Box::new(tar))?;
        let mut padded = plain.chain(std::io::repeat(0).take(1536));
        wharf_archive::extract_confined(dir, "/", &mut padded, &opts)?;
        Ok(ctx)
    }

    /// The context `remote=` names: a Git URL (`url#ref:subdir`), a tarball URL, or the URL
    /// of a plain Dockerfile, which becomes the only file, named `dockerfile`.
    pub fn from_remote(remote: &str, dir: &Path, dockerfile: &str) -> Result<Context, BuildError> {
        if is_git_url(remote) {
            return Context::from_git(remote, dir);
        }
        if !(remote.starts_with("http://") || remote.starts_with("https://")) {
            return Err(BuildError::InvalidArgument(format!(
                "unable to prepare context: remote context {remote:?} is neither a Git URL nor an HTTP(S) URL"
            )));
        }
        let mut body = Vec::new();
        wharf_fetch::get(remote)?
            .read_to_end(&mut body)
            .map_err(BuildError::io(format!("downloading {remote}")))?;
        if is_archive(&body) {
            return Context::from_tar(&mut &body[..], dir);
        }
        let ctx = Context::from_tar(&mut &[][..], dir)?;
        let name = if dockerfile.is_empty() {
            "Dockerfile"
        } else {
            dockerfile
        };
        let path = confine(name).map(|r| dir.join(r)).ok_or_else(|| {
            BuildError::InvalidArgument(format!("invalid Dockerfile name {name}"))
        })?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(BuildError::io("create context"))?;
        }
        std::fs::write(&path, &body).map_err(BuildError::io("write Dockerfile"))?;
        Ok(ctx)
    }

    fn from_git(remote: &str, dir: &Path) -> Result<Context, BuildError> {
        std::fs::create_dir_all(dir)
            .map_err(BuildError::io(format!("create {}", dir.display())))?;
        // Made first so that a failure below removes the directory.
        let mut ctx = Context {
            top: dir.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        ctx.dir = clone_git(remote, dir)?;
        Ok(ctx)
    }

    /// The context's root directory.
    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// A private directory beside the context for downloads (ADD <url>).
    pub fn scratch(&self) -> Result<PathBuf, BuildError> {
        let d = self.top.with_extension("dl");
        std::fs::create_dir_all(&d).map_err(BuildError::io(format!("create {}", d.display())))?;
        Ok(d)
    }

    /// Reads the Dockerfile at `name` (relative to the root; default `Dockerfile`).
    pub fn dockerfile(&self, name: &str) -> Result<String, BuildError> {
        let name = if name.is_empty() { "Dockerfile" } else { name };
        let missing =
            || BuildError::NotFound(format!("Cannot locate specified Dockerfile: {name}"));
        let rel = confine(name).ok_or_else(missing)?;
        let path = self.dir.join(rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|_| missing())?;
        if !meta.is_file() {
            return Err(missing());
        }
        if meta.len() > MAX_DOCKERFILE {
            return Err(BuildError::InvalidArgument(format!(
                "Dockerfile {name} is larger than {MAX_DOCKERFILE} bytes"
            )));
        }
        let bytes = std::fs::read(&path).map_err(BuildError::io(format!("read {name}")))?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string())
    }
}

impl Context {
    /// After the Dockerfile was read: removes it and `.dockerignore` from the context when
    /// `.dockerignore` excludes them (the client sends them anyway), so `COPY . .` does not
    /// copy them, as the classic builder does.
    pub fn drop_ignored_build_files(&self, dockerfile: &str) {
        let Ok(text) = std::fs::read_to_string(self.dir.join(".dockerignore")) else {
            return;
        };
        let patterns = wharf_api_types::dockerignore::Patterns::parse(&text);
        let name = if dockerfile.is_empty() {
            "Dockerfile"
        } else {
            dockerfile
        };
        for f in [name, ".dockerignore"] {
            if let Some(rel) = confine(f).filter(|r| patterns.excluded(&r.to_string_lossy())) {
                let _ = std::fs::remove_file(self.dir.join(rel));
            }
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.top);
        let _ = std::fs::remove_dir_all(self.top.with_extension("dl"));
    }
}

/// `path` made relative and free of `..` escapes (lexically, as Docker cleans context paths);
/// `None` when it would leave the root.
pub fn confine(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_and_reads_the_dockerfile() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let body = b"\xef\xbb\xbfFROM busybox\n";
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "sub/Dockerfile.dev", &body[..])
            .expect("append");
        let tar = b.into_inner().expect("tar");
        let tmp = tempfile::tempdir().expect("tmp");
        let ctx = Context::from_tar(&mut &tar[..], &tmp.path().join("c")).expect("unpack");
        assert_eq!(
            ctx.dockerfile("sub/Dockerfile.dev").expect("df"),
            "FROM busybox\n"
        );
        let e = ctx.dockerfile("").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "Cannot locate specified Dockerfile: Dockerfile"
        );
        assert!(ctx.dockerfile("../../etc/passwd").is_err());
        let dir = ctx.root().to_path_buf();
        drop(ctx);
        assert!(!dir.exists());
    }

    #[test]
    fn accepts_a_tar_without_padding_or_end_blocks() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "Dockerfile", &b"abc"[..])
            .expect("append");
        let mut tar = b.into_inner().expect("tar");
        tar.truncate(512 + 3);
        let tmp = tempfile::tempdir().expect("tmp");
        let ctx = Context::from_tar(&mut &tar[..], &tmp.path().join("c")).expect("unpack");
        assert_eq!(ctx.dockerfile("Dockerfile").expect("df"), "abc");
    }

    #[test]
    fn dockerfile_size_is_bounded() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ctx = Context::from_tar(&mut &[][..], &tmp.path().join("c")).expect("empty context");
        let f = std::fs::File::create(ctx.root().join("Dockerfile")).expect("create");
        f.set_len(MAX_DOCKERFILE + 1).expect("grow");
        let e = ctx.dockerfile("Dockerfile").expect_err("too big");
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn confine_cleans() {
        assert_eq!(confine("/a/../b/./c"), Some(PathBuf::from("b/c")));
        assert_eq!(confine("../x"), None);
    }
}
