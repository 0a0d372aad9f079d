//! Applying layer tars and `docker cp` uploads.

use std::ffi::OsStr;
use std::io::{self, Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::Timespec;

use crate::node::{Extractor, Node, NodeKind};
use crate::ArchiveError;

/// How deletions recorded in a layer are materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutFormat {
    /// Keep them for overlayfs: `.wh.x` becomes a 0:0 character device `x`, `.wh..wh..opq`
    /// becomes the xattr `trusted.overlay.opaque=y` on its directory.
    Overlay,
    /// Apply them to the tree (the layer is a full copy of its parent, as with vfs).
    Remove,
}

/// Policy for applying an archive.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How whiteouts are materialised.
    pub whiteouts: WhiteoutFormat,
    /// Tar-bomb guard: refuse archives with more entries than this.
    pub max_entries: u64,
    /// Create character and block devices; refused with an error otherwise.
    pub allow_devices: bool,
    /// lchown entries to the archive's uid/gid (needs CAP_CHOWN).
    pub preserve_ownership: bool,
    /// With `preserve_ownership`, own every entry by this uid/gid instead of the archive's
    /// (`docker cp -a` into a container with a configured user).
    pub chown: Option<(u32, u32)>,
    /// [`extract_confined`] only: let an entry replace a directory by a non-directory or the
    /// reverse (Docker's `noOverwriteDirNonDir=false`).
    pub allow_type_changes: bool,
    /// Refuse a file whose apparent size (a sparse file's full length) exceeds this. Files
    /// are written sparse, so disk use follows the archive's data, but reading out a huge
    /// hole still costs time: [`DEFAULT_MAX_FILE_SIZE`] unless the caller says otherwise.
    pub max_file_size: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutFormat::Remove,
            max_entries: 1_000_000,
            allow_devices: false,
            preserve_ownership: true,
            chown: None,
            allow_type_changes: false,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Default bound on one file's apparent size (64 GiB): larger than any file real images ship,
/// small enough that a hostile sparse entry cannot keep extraction busy for long.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 30;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Wraps `r` in a gzip, bzip2, xz or zstd decoder when its first bytes say so (Docker's
/// `DecompressStream`); anything else passes through.
pub fn decompress<'a>(mut r: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ArchiveError::Malformed(e)),
        }
    }
    let head = &magic[..n];
    let stream = Cursor::new(head.to_vec()).chain(r);
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(stream)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(
            zstd::stream::read::Decoder::new(stream).map_err(ArchiveError::Malformed)?,
        ))
    } else if head.starts_with(b"BZh") {
        Ok(Box::new(bzip2::read::MultiBzDecoder::new(stream)))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Ok(Box::new(liblzma::read::XzDecoder::new_multi_decoder(
            stream,
        )))
    } else {
        Ok(Box::new(stream))
    }
}

/// Applies a (maybe compressed) layer tar onto `root`, confined to it. Returns the bytes of file
/// content written.
pub fn apply_layer(
    root: &Path,
    layer: &mut dyn Read,
    opts: &ApplyOptions,
) -> Result<u64, ArchiveError> {
    let mut ex = Extractor::new(root, opts)?;
    unpack(&mut ex, Path::new(""), layer, opts, true)?;
    ex.finish()
}

/// Extracts `tar` into the directory `dest_in_root` inside `root` (the `docker cp` upload). Names
/// and link targets in the archive are relative to the destination; symlinks anywhere resolve
/// inside `root`, as if the container's root were `/`. As with Docker, `.wh.` names are plain
/// files here, and replacing a directory by a non-directory (or the reverse) is refused unless
/// `opts.allow_type_changes`.
pub fn extract_confined(
    root: &Path,
    dest_in_root: &str,
    tar: &mut dyn Read,
    opts: &ApplyOptions,
) -> Result<(), ArchiveError> {
    let dest = crate::path::clean(Path::new(dest_in_root))?;
    let mut ex = Extractor::new(root, opts)?;
    let fd = ex.root().dir(&dest).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ArchiveError::NotFound(dest_in_root.to_string()),
        _ => ArchiveError::io("open destination", dest_in_root, e),
    })?;
    drop(fd);
    if !opts.allow_type_changes {
        ex.keep_types();
    }
    unpack(&mut ex, &dest, tar, opts, false)?;
    ex.finish().map(drop)
}

/// `layer`: interpret whiteouts (layer diffs) or not (plain archives).
fn unpack(
    ex: &mut Extractor<'_>,
    base: &Path,
    input: &mut dyn Read,
    opts: &ApplyOptions,
    layer: bool,
) -> Result<(), ArchiveError> {
    let reader = decompress(Box::new(input))?;
    let mut archive = tar::Archive::new(reader);
    let mut count: u64 = 0;
    for entry in archive.entries().map_err(ArchiveError::Malformed)? {
        let mut entry = entry.map_err(ArchiveError::Malformed)?;
        let etype = entry.header().entry_type();
        if matches!(etype, tar::EntryType::XGlobalHeader) {
            continue;
        }
        count += 1;
        if count > opts.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: opts.max_entries,
            });
        }
        let raw_name = entry.path().map_err(ArchiveError::Malformed)?.into_owned();
        let rel = base.join(crate::path::clean(&raw_name)?);
        let name_str = || raw_name.display().to_string();
        // For a GNU sparse entry this is the apparent size, holes included.
        if entry.size() > opts.max_file_size {
            return Err(ArchiveError::TooLarge {
                path: name_str(),
                size: entry.size(),
                limit: opts.max_file_size,
            });
        }
        let mut node = header_node(&mut entry, &raw_name)?;
        let file_name = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
        if layer && file_name.starts_with(WHITEOUT_PREFIX) {
            let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            if file_name == OPAQUE_MARKER {
                ex.opaque(&dir)?;
            } else if !file_name.starts_with(WHITEOUT_META_PREFIX) {
                let victim = OsStr::from_bytes(&file_name[WHITEOUT_PREFIX.len()..]).to_os_string();
                ex.whiteout(&dir, &victim, node.uid, node.gid)?;
            }
            continue;
        }
        node.kind = match etype {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                NodeKind::File
            }
            tar::EntryType::Directory => NodeKind::Dir,
            tar::EntryType::Symlink => NodeKind::Symlink(link_name(&entry, &raw_name)?),
            tar::EntryType::Link => {
                NodeKind::Hardlink(base.join(crate::path::clean(&link_name(&entry, &raw_name)?)?))
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let h = entry.header();
                let maj = h.device_major().ok().flatten().unwrap_or(0);
                let min = h.device_minor().ok().flatten().unwrap_or(0);
                if etype == tar::EntryType::Char {
                    NodeKind::Char(maj, min)
                } else {
                    NodeKind::Block(maj, min)
                }
            }
            tar::EntryType::Fifo => NodeKind::Fifo,
            other => {
                return Err(ArchiveError::UnsupportedEntry {
                    path: name_str(),
                    kind: format!("{other:?}"),
                })
            }
        };
        ex.put(&rel, &node, &mut entry)?;
    }
    Ok(())
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, raw: &Path) -> Result<PathBuf, ArchiveError> {
    entry
        .link_name()
        .map_err(ArchiveError::Malformed)?
        .map(|l| l.into_owned())
        .filter(|l| !l.as_os_str().is_empty())
        .ok_or_else(|| crate::path::invalid(raw, "link entry without a target"))
}

/// Metadata from the ustar header, overridden by PAX records (large ids, sub-second mtimes,
/// `SCHILY.xattr.*`). The kind is filled in by the caller.
fn header_node<R: Read>(entry: &mut tar::Entry<'_, R>, raw: &Path) -> Result<Node, ArchiveError> {
    let h = entry.header();
    let id = |v: io::Result<u64>| -> Result<u32, ArchiveError> {
        let v = v.map_err(ArchiveError::Malformed)?;
        u32::try_from(v)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| crate::path::invalid(raw, "uid/gid out of range"))
    };
    // Like Go's reader, an all-blank numeric field means 0 (some tools leave ids empty).
    let blank = |f: &[u8]| f.iter().all(|b| *b == 0 || *b == b' ');
    let old = h.as_old();
    let uid = if blank(&old.uid) { Ok(0) } else { h.uid() };
    let gid = if blank(&old.gid) { Ok(0) } else { h.gid() };
    let mut node = Node {
        kind: NodeKind::File,
        mode: h.mode().map_err(ArchiveError::Malformed)?,
        uid: id(uid)?,
        gid: id(gid)?,
        mtime: Timespec {
            tv_sec: i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0),
            tv_nsec: 0,
        },
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().map_err(ArchiveError::Malformed)? {
        for ext in exts {
            let ext = ext.map_err(ArchiveError::Malformed)?;
            let key = ext.key_bytes();
            if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                node.xattrs
                    .push((xattr.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"uid" || key == b"gid" {
                let v = ext.value().ok().and_then(|v| v.parse::<u64>().ok());
                let v = id(v.ok_or_else(|| io::Error::other("bad PAX id")))?;
                if key == b"uid" {
                    node.uid = v;
                } else {
                    node.gid = v;
                }
            } else if key == b"mtime" {
                if let Some(ts) = ext.value().ok().and_then(parse_pax_time) {
                    node.mtime = ts;
                }
            }
        }
    }
    Ok(node)
}

/// PAX times are decimal seconds with an optional fraction: "1700000000.123456789".
fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let tv_sec = secs.parse::<i64>().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(Timespec { tv_sec, tv_nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        assert_eq!(parse_pax_time("12").unwrap().tv_sec, 12);
        assert!(parse_pax_time("x").is_none());
    }

    #[test]
    fn decompress_detects_formats() {
        let plain = b"hello world".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &plain).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&plain[..], 1).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        io::Write::write_all(&mut bz, &plain).unwrap();
        let bz = bz.finish().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        io::Write::write_all(&mut xz, &plain).unwrap();
        let xz = xz.finish().unwrap();
        for input in [plain.clone(), gz, zs, bz, xz] {
            let mut out = Vec::new();
            decompress(Box::new(Cursor::new(input)))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plain);
        }
    }
}
