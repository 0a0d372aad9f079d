//! Command behaviour: one function per verb, grouped by area. Each takes the parsed flags and a
//! [`Ctx`] and returns the process exit code.

pub(crate) mod build;
pub(crate) mod container;
pub(crate) mod cp;
pub(crate) mod create;
pub(crate) mod image;
pub(crate) mod network;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod session;
pub(crate) mod system;
pub(crate) mod volume;

use std::io::Write;

use serde_json::Value;
use wharf_client::{Client, ClientError, Query};

use crate::config::Config;

/// What every command needs: the daemon client and the user's config.
pub(crate) struct Ctx {
    pub client: Client,
    pub config: Config,
}

/// A failure that ends the process with a specific exit code. An empty message means the
/// details were already printed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct StatusError {
    pub code: i32,
    pub message: String,
}

impl StatusError {
    pub(crate) fn exit(code: i32, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(StatusError {
            code,
            message: message.into(),
        })
    }
}

/// Writes to stdout, ignoring a closed pipe (`wharf ps | head`).
pub(crate) fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Prints what an `inspect` fetched (`raws`: one JSON object each) as docker does: a JSON
/// array, or `format` per object; then the lookup `errors`, which make the exit status 1.
pub(crate) fn print_inspected(
    raws: &[Vec<u8>],
    format: Option<&str>,
    errors: Vec<String>,
) -> anyhow::Result<i32> {
    match format {
        None | Some("") => out(&format!(
            "{}\n",
            crate::format::jsonfmt::inspect_array(raws)
        )),
        Some(f) => {
            let f = if f == "json" { "{{json .}}" } else { f };
            let mut s = String::new();
            for r in raws {
                let v: serde_json::Value = serde_json::from_slice(r)?;
                s.push_str(&crate::format::render_one(f, &v)?);
                s.push('\n');
            }
            out(&s);
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(StatusError::exit(1, errors.join("\n")))
    }
}

/// Builds the `filters` query parameter from `k=v` flags: `{"k":{"v":true}}` as docker sends.
pub(crate) fn filters_json(flags: &[String]) -> anyhow::Result<Option<String>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut m = serde_json::Map::new();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        let entry = m
            .entry(k.trim().to_lowercase())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(o) = entry {
            o.insert(v.to_string(), Value::Bool(true));
        }
    }
    Ok(Some(Value::Object(m).to_string()))
}

/// Runs `f` for each name, printing `ok(name)` on success and errors on stderr; exit 1 if any
/// failed (docker's behaviour for stop/rm/kill/... with several containers).
pub(crate) fn for_each(
    names: &[String],
    mut f: impl FnMut(&str) -> Result<Option<String>, ClientError>,
) -> i32 {
    let mut code = 0;
    for n in names {
        match f(n) {
            Ok(Some(line)) => out(&format!("{line}\n")),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    code
}

/// `GET /containers/{id}/json` as JSON.
pub(crate) fn inspect_container(c: &Client, id: &str) -> Result<Value, ClientError> {
    c.get_json(&format!("/containers/{}/json", enc(id)), &Query::new())
}

/// Percent-encodes a path segment (names and references may contain `/` and `:`).
pub(crate) fn enc(s: &str) -> String {
    wharf_client::encode_component(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_like_docker() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        let f = filters_json(&[
            "status=exited".into(),
            "name=a".into(),
            "status=created".into(),
        ])
        .unwrap();
        assert_eq!(
            f.as_deref(),
            Some(r#"{"name":{"a":true},"status":{"created":true,"exited":true}}"#)
        );
        assert!(filters_json(&["nonsense".into()]).is_err());
        let f = filters_json(&["label=a=b".into()]).unwrap();
        assert_eq!(f.as_deref(), Some(r#"{"label":{"a=b":true}}"#));
    }
}
