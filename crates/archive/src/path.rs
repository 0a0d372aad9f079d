//! Lexical cleaning of names found in archives and API requests.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::ArchiveError;

/// Turns an archive name or an in-root path into a clean path relative to the root.
///
/// Leading `/` and `./` are dropped (tar names and API paths are both rooted at the layer), `.`
/// components vanish and `a/..` cancels out. A `..` that would climb above the root is refused
/// rather than clamped: a layer that tries it is hostile, and silently rewriting it would hide that.
/// The empty path means the root itself.
pub(crate) fn clean(name: &Path) -> Result<PathBuf, ArchiveError> {
    // The kernel's PATH_MAX; longer names cannot be created and only serve to make lookups slow.
    if name.as_os_str().len() >= 4096 {
        return Err(invalid(name, "path longer than 4095 bytes"));
    }
    let mut out = PathBuf::new();
    for comp in name.components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Prefix(_) => return Err(invalid(name, "unexpected path prefix")),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(invalid(name, "path climbs out of the root with '..'"));
                }
            }
            Component::Normal(c) => {
                if c.as_bytes().contains(&0) {
                    return Err(invalid(name, "NUL byte in path"));
                }
                out.push(c);
            }
        }
    }
    Ok(out)
}

pub(crate) fn invalid(name: &Path, reason: &'static str) -> ArchiveError {
    ArchiveError::InvalidPath {
        path: name.display().to_string(),
        reason,
    }
}

/// Splits a clean relative path into its parent (maybe empty) and final name.
pub(crate) fn split(rel: &Path) -> Option<(&Path, &OsStr)> {
    Some((rel.parent().unwrap_or(Path::new("")), rel.file_name()?))
}

/// `"."` for the root so `*at` calls on the root fd have a name to work with.
pub(crate) fn or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_refuses_escapes() {
        assert_eq!(
            clean(Path::new("./a/b/../c/")).unwrap(),
            PathBuf::from("a/c")
        );
        assert_eq!(
            clean(Path::new("/etc/passwd")).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(clean(Path::new("./")).unwrap(), PathBuf::new());
        let err = clean(Path::new("a/../../etc")).unwrap_err();
        assert!(err.to_string().contains("a/../../etc"), "{err}");
        assert!(clean(Path::new("../x")).is_err());
        assert!(clean(Path::new(&"a/".repeat(2048))).is_err());
    }

    #[test]
    fn splits_parent_and_name() {
        let (p, n) = split(Path::new("a/b/c")).unwrap();
        assert_eq!((p, n), (Path::new("a/b"), OsStr::new("c")));
        let (p, n) = split(Path::new("top")).unwrap();
        assert_eq!((p, n), (Path::new(""), OsStr::new("top")));
        assert!(split(Path::new("")).is_none());
    }
}
