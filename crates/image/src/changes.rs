//! `--change` instructions (`docker import -c`, `docker commit -c`): a small Dockerfile subset
//! applied to an image's container config.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ImageError;
use crate::model::ContainerConfig;

/// Applies each instruction in order.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<(), ImageError> {
    for change in changes {
        apply_one(config, change)?;
    }
    Ok(())
}

fn invalid(msg: String) -> ImageError {
    ImageError::InvalidArgument(msg)
}

fn apply_one(c: &mut ContainerConfig, line: &str) -> Result<(), ImageError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(());
    }
    let (instr, rest) = match line.split_once(char::is_whitespace) {
        Some((i, r)) => (i, r.trim()),
        None => (line, ""),
    };
    let upper = instr.to_ascii_uppercase();
    if rest.is_empty() && upper != "CMD" && upper != "ENTRYPOINT" {
        return Err(invalid(format!("{upper} requires at least one argument")));
    }
    match upper.as_str() {
        "CMD" => c.cmd = Some(exec_or_shell(rest, c)?),
        "ENTRYPOINT" => {
            c.entrypoint = Some(exec_or_shell(rest, c)?);
            // Docker resets CMD when ENTRYPOINT changes, unless CMD is set later.
            c.cmd = None;
        }
        "ENV" => {
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest, "ENV")? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest, "LABEL")? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in rest.split_whitespace() {
                ports.insert(normalise_port(p)?, Value::Object(Default::default()));
            }
        }
        "USER" => c.user = rest.to_string(),
        "WORKDIR" => {
            c.working_dir = if rest.starts_with('/') || c.working_dir.is_empty() {
                clean_abs(rest)
            } else {
                clean_abs(&format!("{}/{rest}", c.working_dir))
            }
        }
        "VOLUME" => {
            let vols = c.volumes.get_or_insert_with(BTreeMap::new);
            let list = match parse_json_array(rest) {
                Some(v) => v,
                None => rest.split_whitespace().map(str::to_string).collect(),
            };
            for v in list {
                if v.is_empty() {
                    return Err(invalid(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                vols.insert(v, Value::Object(Default::default()));
            }
        }
        "STOPSIGNAL" => c.stop_signal = rest.to_string(),
        "ONBUILD" => {
            let inner = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(inner.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(invalid(format!(
                    "{inner} isn't allowed as an ONBUILD trigger"
                )));
            }
            c.on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string());
        }
        other => {
            return Err(invalid(format!("{other} is not a valid change command")));
        }
    }
    Ok(())
}

/// JSON array form as is; otherwise the shell form through the image's shell (`/bin/sh -c`).
fn exec_or_shell(rest: &str, c: &ContainerConfig) -> Result<Vec<String>, ImageError> {
    if let Some(v) = parse_json_array(rest) {
        return Ok(v);
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut v = c
        .shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    v.push(rest.to_string());
    Ok(v)
}

fn parse_json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// `k=v k2="v 2"` pairs, or the legacy single `k v...` form.
fn key_values(rest: &str, instr: &str) -> Result<Vec<(String, String)>, ImageError> {
    let words = split_words(rest)?;
    let first_has_eq = words.first().is_some_and(|w| w.contains('='));
    if !first_has_eq {
        // Legacy form: the first word is the key, the rest of the line the value.
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid(format!("{instr} must have two arguments")))?;
        return Ok(vec![(k.to_string(), unquote(v.trim())?)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(invalid(format!("{instr} names can not be blank"))),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(invalid(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ))),
        })
        .collect()
}

/// Splits on whitespace outside quotes and removes the quotes (`"` and `'`, `\` escapes in `"`).
fn split_words(s: &str) -> Result<Vec<String>, ImageError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(invalid(format!("unterminated quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn unquote(s: &str) -> Result<String, ImageError> {
    Ok(split_words(s)?.join(" "))
}

/// `80` -> `80/tcp`; validates the number and protocol; ranges are expanded.
fn normalise_port(p: &str) -> Result<String, ImageError> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid(format!("invalid proto: {proto}")));
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| invalid(format!("invalid containerPort: {num}")))
    };
    match num.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(invalid(format!("invalid port range: {num}")));
            }
            // One key per range keeps the map small; Docker expands, but the range form is rare.
            Ok(format!("{a}-{b}/{proto}"))
        }
        None => Ok(format!("{}/{proto}", parse(num)?)),
    }
}

/// Lexically cleans an absolute path (`/a/./b/../c` -> `/a/c`).
fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<ContainerConfig, ImageError> {
        let mut c = ContainerConfig::default();
        apply_changes(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    #[test]
    fn cmd_entrypoint_forms() {
        let c = apply(&[r#"CMD ["/bin/sh", "-c", "echo hi"]"#]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        let c = apply(&["cmd echo hi"]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        let c = apply(&["CMD x", "ENTRYPOINT [\"/init\"]"]).unwrap();
        assert_eq!(c.entrypoint.unwrap(), ["/init"]);
        assert!(c.cmd.is_none());
    }

    #[test]
    fn env_and_labels() {
        let c = apply(&[
            "ENV A=1 B=\"two words\"",
            "ENV A=3",
            "ENV LEGACY some value",
        ])
        .unwrap();
        assert_eq!(c.env.unwrap(), ["B=two words", "A=3", "LEGACY=some value"]);
        let c = apply(&["LABEL a=b 'c d'=e"]).unwrap();
        let l = c.labels.unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["c d"], "e");
        assert!(apply(&["ENV =x"]).is_err());
        assert!(apply(&["ENV A=\"open"]).is_err());
    }

    #[test]
    fn ports_volumes_workdir_user() {
        let c = apply(&[
            "EXPOSE 80 53/udp",
            "VOLUME /data /logs",
            "VOLUME [\"/x\"]",
            "WORKDIR /app",
            "WORKDIR sub/../src",
            "USER nobody",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.volumes.unwrap().len(), 3);
        assert_eq!(c.working_dir, "/app/src");
        assert_eq!(c.user, "nobody");
        assert_eq!(c.stop_signal, "SIGINT");
        assert!(apply(&["EXPOSE 99999"]).is_err());
        assert!(apply(&["EXPOSE 80/icmp"]).is_err());
    }

    #[test]
    fn rejects_unknown_and_bad_onbuild() {
        assert!(
            matches!(apply(&["RUN echo"]), Err(ImageError::InvalidArgument(m)) if m.contains("RUN"))
        );
        assert!(apply(&["ONBUILD FROM x"]).is_err());
        let c = apply(&["ONBUILD RUN make"]).unwrap();
        assert_eq!(c.on_build.unwrap(), ["RUN make"]);
        assert!(apply(&["USER"]).is_err());
    }
}
