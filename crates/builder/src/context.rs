//! The build context: the tar `POST /build` receives, unpacked into a private directory, and
//! the Dockerfile read from it.

use std::io::Read;

use std::path::{Component, Path, PathBuf};

use wharf_archive::ApplyOptions;

use crate::BuildError;

/// The largest Dockerfile read (Docker has no limit; a multi-megabyte one is an accident).
pub const MAX_DOCKERFILE: u64 = 4 << 20;

/// An unpacked context. The directory belongs to the build and is removed on drop.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
}

impl Context {
    /// Unpacks `tar` (plain, gzip or zstd) into `dir`, which must not exist yet.
    pub fn from_tar(tar: &mut dyn Read, dir: &Path) -> Result<Context, BuildError> {
        std::fs::create_dir_all(dir)
            .map_err(BuildError::io(format!("create {}", dir.display())))?;
        let ctx = Context {
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

    /// The context's root directory.
    pub fn root(&self) -> &Path {
        &self.dir
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
        let _ = std::fs::remove_dir_all(&self.dir);
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
