//! `build`: packs a local directory as the build context (leaving out what `.dockerignore`
//! excludes, so ignored files are never read or sent), posts it to `/build` and shows the
//! progress: compact step lines on a terminal, the daemon's text with `--progress=plain`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wharf_api_types::dockerignore::Patterns;
use wharf_client::{Query, RequestBody};

use super::{out, Ctx, StatusError};
use crate::cli::BuildArgs;

/// A context the daemon fetches itself: what Docker takes for a Git or HTTP(S) URL.
fn is_remote(path: &str) -> bool {
    ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Bytes that start a tar or a compressed stream (a context given on stdin).
fn is_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(b"ustar")
}

fn append_file(
    b: &mut tar::Builder<&mut fs::File>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
}

/// Adds `dir` (context-relative `rel`) and everything under it that `patterns` keeps.
fn append_tree(
    b: &mut tar::Builder<&mut fs::File>,
    root: &Path,
    rel: &str,
    patterns: &Patterns,
    always: &[String],
) -> anyhow::Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| StatusError::exit(1, format!("reading {}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        let path = root.join(&r);
        let m = fs::symlink_metadata(&path)?;
        let excluded = patterns.excluded(&r) && !always.contains(&r);
        if m.is_dir() {
            // An excluded directory is still walked when an exception may re-include a file.
            if excluded && !patterns.has_exceptions() {
                continue;
            }
            if !excluded {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&m);
                h.set_uid(0);
                h.set_gid(0);
                h.set_size(0);
                b.append_data(&mut h, &r, std::io::empty())?;
            }
            append_tree(b, root, &r, patterns, always)?;
        } else if !excluded {
            let mut h = tar::Header::new_gnu();
            h.set_metadata(&m);
            h.set_uid(0);
            h.set_gid(0);
            if m.file_type().is_symlink() {
                h.set_size(0);
                b.append_link(&mut h, &r, fs::read_link(&path)?)?;
            } else if m.is_file() {
                h.set_mtime(m.mtime().max(0) as u64);
                b.append_data(&mut h, &r, fs::File::open(&path)?)?;
            }
        }
    }
    Ok(())
}

/// The context tar (spooled to an unlinked temp file) and the Dockerfile's name in it.
fn pack(a: &BuildArgs) -> anyhow::Result<(fs::File, String)> {
    let mut spool = tempfile::tempfile()?;
    if a.path == "-" {
        let mut data = Vec::new();
        std::io::stdin().lock().read_to_end(&mut data)?;
        if is_archive(&data) {
            spool.write_all(&data)?;
            return Ok((spool, a.file.clone().unwrap_or_default()));
        }
        let mut b = tar::Builder::new(&mut spool);
        append_file(&mut b, "Dockerfile", &data)?;
        b.finish()?;
        drop(b);
        return Ok((spool, "Dockerfile".into()));
    }
    let root = PathBuf::from(&a.path);
    if !root.is_dir() {
        return Err(StatusError::exit(
            1,
            format!("unable to prepare context: path {:?} not found", a.path),
        ));
    }
    let root = root.canonicalize()?;
    let (df_path, from_stdin) = match a.file.as_deref() {
        Some("-") => (None, true),
        Some(f) => (Some(std::env::current_dir()?.join(f)), false),
        None => (Some(root.join("Dockerfile")), false),
    };
    let stdin_df = if from_stdin {
        let mut s = Vec::new();
        std::io::stdin().lock().read_to_end(&mut s)?;
        Some(s)
    } else {
        None
    };
    let df_abs = df_path.as_ref().map(|p| p.canonicalize()).transpose().map_err(|_| {
        StatusError::exit(
            1,
            format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                df_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            ),
        )
    })?;
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's.
    let ignore_text = df_abs
        .as_ref()
        .and_then(|d| fs::read_to_string(format!("{}.dockerignore", d.display())).ok())
        .or_else(|| fs::read_to_string(root.join(".dockerignore")).ok())
        .unwrap_or_default();
    let patterns = Patterns::parse(&ignore_text);
    let inside = df_abs
        .as_ref()
        .and_then(|d| d.strip_prefix(&root).ok())
        .map(|r| r.to_string_lossy().to_string());
    let mut always = vec![".dockerignore".to_string()];
    always.extend(inside.clone());
    let mut b = tar::Builder::new(&mut spool);
    append_tree(&mut b, &root, "", &patterns, &always)?;
    let name = match (inside, stdin_df, df_abs) {
        (Some(rel), _, _) => rel,
        (None, data, path) => {
            let data = match (data, path) {
                (Some(d), _) => d,
                (None, Some(p)) => fs::read(&p)?,
                (None, None) => Vec::new(),
            };
            let name = format!(".dockerfile.{:016x}", rand_suffix());
            append_file(&mut b, &name, &data)?;
            name
        }
    };
    b.finish()?;
    drop(b);
    Ok((spool, name))
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

fn key_values(list: &[String], what: &str) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut m = BTreeMap::new();
    for kv in list {
        match kv.split_once('=') {
            Some((k, v)) => m.insert(k.to_string(), Some(v.to_string())),
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None if what == "build-arg" => m.insert(kv.clone(), std::env::var(kv).ok()),
            None => m.insert(kv.clone(), Some(String::new())),
        };
    }
    Ok(m)
}

/// `--secret` values as the header the daemon reads: id → hex of the content. Like buildx,
/// `src` (or `source`) names a file, `env` a variable; with neither, the id names both.
fn secrets_header(specs: &[String]) -> anyhow::Result<Option<String>> {
    let mut map = BTreeMap::new();
    for spec in specs {
        let (mut id, mut src, mut env) = (None, None, None);
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(v.to_string()),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => {
                    return Err(StatusError::exit(
                        1,
                        format!("invalid secret {spec:?}: unexpected {field:?}"),
                    ))
                }
            }
        }
        let id = id
            .or_else(|| src.clone())
            .ok_or_else(|| StatusError::exit(1, format!("invalid secret {spec:?}: no id")))?;
        let data = match (src, env) {
            (Some(path), _) => fs::read(&path)
                .map_err(|e| StatusError::exit(1, format!("reading secret {path}: {e}")))?,
            (None, Some(var)) => std::env::var(&var)
                .map_err(|_| StatusError::exit(1, format!("secret env {var} is not set")))?
                .into_bytes(),
            (None, None) => match std::env::var(&id) {
                Ok(v) => v.into_bytes(),
                Err(_) => fs::read(&id)
                    .map_err(|e| StatusError::exit(1, format!("reading secret {id}: {e}")))?,
            },
        };
        map.insert(id, hex::encode(data));
    }
    Ok((!map.is_empty())
        .then(|| serde_json::to_string(&map))
        .transpose()?)
}

/// `build`
pub(crate) fn build(ctx: &Ctx, a: &BuildArgs) -> anyhow::Result<i32> {
    let progress = match a.progress.as_str() {
        "auto" if std::io::stdout().is_terminal() => "tty",
        "auto" => "plain",
        p @ ("plain" | "tty" | "quiet") => p,
        p => {
            return Err(StatusError::exit(
                1,
                format!("invalid progress mode {p:?}: use auto, plain, tty or quiet"),
            ))
        }
    };
    let quiet = a.quiet || progress == "quiet";
    // A URL context (Git or HTTP) is fetched by the daemon: `remote=` and an empty body.
    let remote = is_remote(&a.path).then(|| a.path.clone());
    let (mut spool, dockerfile) = match &remote {
        Some(_) => (
            tempfile::tempfile()?,
            a.file.clone().unwrap_or_else(|| "Dockerfile".into()),
        ),
        None => pack(a)?,
    };
    spool.rewind()?;
    let mut q = Query::new()
        .opt("remote", remote)
        .set("dockerfile", dockerfile)
        .set(
            "buildargs",
            serde_json::to_string(&key_values(&a.build_arg, "build-arg")?)?,
        )
        .set(
            "labels",
            serde_json::to_string(&key_values(&a.label, "label")?)?,
        )
        .set("networkmode", a.network.clone())
        .flag("nocache", a.no_cache)
        .flag("pull", a.pull)
        .flag("forcerm", a.force_rm)
        .set("rm", if a.rm { "1" } else { "0" })
        .flag("q", quiet)
        .opt("target", a.target.clone())
        .opt("platform", a.platform.clone());
    for t in &a.tag {
        q = q.set("t", t.clone());
    }
    if !a.no_cache_filter.is_empty() {
        q = q.set("nocachefilter", serde_json::to_string(&a.no_cache_filter)?);
    }
    for h in &a.add_host {
        q = q.set("extrahosts", h.clone());
    }
    let secrets = secrets_header(&a.secret)?;
    let headers: Vec<(&str, &str)> = secrets
        .as_deref()
        .map(|s| ("X-Wharf-Build-Secrets", s))
        .into_iter()
        .collect();
    let resp = ctx.client.request_with(
        "POST",
        "/build",
        &q,
        &headers,
        RequestBody::Stream {
            content_type: "application/x-tar",
            reader: &mut spool,
        },
    )?;
    let mut image = None;
    for msg in resp.json_stream() {
        let msg = msg?;
        if let Some(e) = msg.get("error").and_then(Value::as_str) {
            let code = msg
                .pointer("/errorDetail/code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok())
                .filter(|c| *c != 0)
                .unwrap_or(1);
            return Err(StatusError::exit(code, e.to_string()));
        }
        if let Some(id) = msg.pointer("/aux/ID").and_then(Value::as_str) {
            image = Some(id.to_string());
        }
        let Some(s) = msg.get("stream").and_then(Value::as_str) else {
            continue;
        };
        match progress {
            _ if quiet => {}
            "plain" => out(s),
            _ => {
                if let Some(step) = s.strip_prefix("Step ") {
                    let (n, text) = step.split_once(" : ").unwrap_or((step, ""));
                    out(&format!("[{n}] {}", text));
                } else if s.starts_with(" ---> Using cache") {
                    out("      CACHED\n");
                } else if s.starts_with("Successfully") || s.starts_with("[Warning]") {
                    out(s);
                }
            }
        }
    }
    let Some(image) = image else {
        return Err(StatusError::exit(1, "the build ended without an image ID"));
    };
    if quiet {
        out(&format!("{image}\n"));
    }
    if let Some(f) = &a.iidfile {
        fs::write(f, &image).map_err(|e| StatusError::exit(1, format!("writing {f}: {e}")))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_remote_contexts() {
        assert!(is_remote("git://h/r.git#main:sub"));
        assert!(is_remote("https://h/ctx.tar.gz"));
        assert!(!is_remote("./http:/x"));
        assert!(!is_remote("."));
    }

    #[test]
    fn recognises_archives_on_stdin() {
        assert!(is_archive(&[0x1f, 0x8b, 8]));
        assert!(!is_archive(b"FROM busybox\n"));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert!(is_archive(&t));
    }
}
