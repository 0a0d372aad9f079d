//! Instructions that only change the image config (one history row, no layer), and WORKDIR.

use std::collections::BTreeMap;

use wharf_image::Healthcheck;

use super::{FsOp, StageRun};
use crate::dockerfile::expand;
use crate::dockerfile::{Command, HealthcheckArgs, Instruction};
use crate::BuildError;

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_quote(v: &[String]) -> String {
    let inner: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(" "))
}

fn go_duration(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        let s = ns / 1_000_000_000;
        match (s / 3600, (s % 3600) / 60, s % 60) {
            (0, 0, s) => format!("{s}s"),
            (0, m, s) => format!("{m}m{s}s"),
            (h, m, s) => format!("{h}h{m}m{s}s"),
        }
    } else {
        format!("{}ms", ns / 1_000_000)
    }
}

impl StageRun<'_, '_> {
    fn command_line(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => [self.shell(), vec![s.clone()]].concat(),
        }
    }

    fn pairs(&self, pairs: &[(String, String)]) -> Result<Vec<(String, String)>, BuildError> {
        pairs
            .iter()
            .map(|(k, v)| Ok((self.expand_word(k)?, self.expand_word(v)?)))
            .collect()
    }

    pub(super) fn meta(&mut self, ins: &Instruction) -> Result<(), BuildError> {
        let text = match ins {
            Instruction::Env(pairs) => {
                // One value applies throughout the instruction: expand all first.
                let pairs = self.pairs(pairs)?;
                let env = self.config.env.get_or_insert_with(Vec::new);
                for (k, v) in &pairs {
                    let entry = format!("{k}={v}");
                    match env.iter_mut().find(|e| e.split('=').next() == Some(k)) {
                        Some(e) => *e = entry,
                        None => env.push(entry),
                    }
                }
                let kv: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("ENV {}", kv.join(" "))
            }
            Instruction::Label(pairs) => {
                let pairs = self.pairs(pairs)?;
                let labels = self.config.labels.get_or_insert_with(BTreeMap::new);
                let mut text = "LABEL".to_string();
                for (k, v) in pairs {
                    text.push_str(&format!(" {k}={v}"));
                    labels.insert(k, v);
                }
                text
            }
            Instruction::Arg(pairs) => {
                let mut text = "ARG".to_string();
                for (name, default) in pairs {
                    let default = default
                        .as_deref()
                        .map(|d| self.expand_word(d))
                        .transpose()?;
                    let value = self
                        .sh
                        .build_arg(name)
                        .or_else(|| default.clone())
                        .or_else(|| self.arg_value(name));
                    text.push_str(&format!(" {name}"));
                    if let Some(d) = &default {
                        text.push_str(&format!("={d}"));
                    }
                    self.args.retain(|(k, _)| k != name);
                    if let Some(v) = value {
                        self.args.push((name.clone(), v));
                    }
                }
                text
            }
            Instruction::Maintainer(m) => {
                let m = self.expand_word(m)?;
                self.author = Some(m.clone());
                format!("MAINTAINER {m}")
            }
            Instruction::Expose(ports) => {
                let mut words = Vec::new();
                for p in ports {
                    words.extend(
                        expand::words(p, &self.vars(), self.sh.df.escape)
                            .map_err(|e| self.err(e.to_string()))?
                            .words,
                    );
                }
                let mut ports = Vec::new();
                for w in &words {
                    ports.extend(port_specs(w).map_err(|m| self.err(m))?);
                }
                let exposed = self.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    exposed.insert(p, serde_json::json!({}));
                }
                format!("EXPOSE {}", words.join(" "))
            }
            Instruction::Volume(vols) => {
                let vols: Vec<String> = vols
                    .iter()
                    .map(|v| self.expand_word(v))
                    .collect::<Result<_, _>>()?;
                let map = self.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                format!("VOLUME [{}]", vols.join(" "))
            }
            Instruction::User(u) => {
                self.config.user = self.expand_word(u)?;
                format!("USER {}", self.config.user)
            }
            Instruction::Cmd(c) => {
                let cmd = self.command_line(c);
                self.config.cmd = Some(cmd.clone());
                self.cmd_set = true;
                format!("CMD {}", go_quote(&cmd))
            }
            Instruction::Entrypoint(c) => {
                let ep = match c {
                    Command::Shell(s) if s.trim().is_empty() => Vec::new(),
                    c => self.command_line(c),
                };
                self.config.entrypoint = Some(ep.clone());
                if !self.cmd_set {
                    self.config.cmd = None;
                }
                format!("ENTRYPOINT {}", go_quote(&ep))
            }
            Instruction::Onbuild(t) => {
                self.config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(t.clone());
                format!("ONBUILD {t}")
            }
            Instruction::Stopsignal(s) => {
                self.config.stop_signal = self.expand_word(s)?;
                format!("STOPSIGNAL {}", self.config.stop_signal)
            }
            Instruction::Healthcheck(h) => {
                let hc = self.healthcheck(h);
                let text = format!(
                    "HEALTHCHECK &{{{} \"{}\" \"{}\" \"{}\" \"{}\" '\\x{:02x}'}}",
                    go_quote(hc.test.as_deref().unwrap_or_default()),
                    go_duration(hc.interval.unwrap_or(0)),
                    go_duration(hc.timeout.unwrap_or(0)),
                    go_duration(hc.start_period.unwrap_or(0)),
                    go_duration(hc.start_interval.unwrap_or(0)),
                    hc.retries.unwrap_or(0)
                );
                self.config.healthcheck = Some(hc);
                text
            }
            Instruction::Shell(s) => {
                self.config.shell = Some(s.clone());
                format!("SHELL [{}]", s.join(" "))
            }
            _ => return Err(self.err("unexpected instruction".into())),
        };
        let created_by = format!("{} #(nop)  {text}", self.shell().join(" "));
        self.commit_step(&created_by, "", None)
    }

    fn healthcheck(&self, h: &HealthcheckArgs) -> Healthcheck {
        let test = match &h.test {
            None => vec!["NONE".to_string()],
            Some(Command::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
            Some(Command::Exec(v)) => [vec!["CMD".to_string()], v.clone()].concat(),
        };
        Healthcheck {
            test: Some(test),
            interval: h.interval.filter(|v| *v != 0),
            timeout: h.timeout.filter(|v| *v != 0),
            start_period: h.start_period.filter(|v| *v != 0),
            start_interval: h.start_interval.filter(|v| *v != 0),
            retries: h.retries.filter(|v| *v != 0),
        }
    }

    pub(super) fn workdir(&mut self, w: &str) -> Result<(), BuildError> {
        let w = self.expand_word(w)?;
        let base = if self.config.working_dir.is_empty() {
            "/"
        } else {
            self.config.working_dir.as_str()
        };
        let joined = if w.starts_with('/') {
            w
        } else {
            format!("{}/{w}", base.trim_end_matches('/'))
        };
        let clean = format!(
            "/{}",
            crate::context::confine(&joined)
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default()
        );
        self.config.working_dir = clean.clone();
        let created_by = self.nop(&format!("WORKDIR {clean}"));
        if self.image.is_none() {
            // Nothing to make the directory in; the config alone records it.
            return self.commit_step(&created_by, "", None);
        }
        self.commit_step(&created_by, "", Some(FsOp::Mkdir(&clean)))
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` to `port/proto` keys.
fn port_specs(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            go_quote(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(port_specs("80").expect("ok"), ["80/tcp"]);
        assert_eq!(port_specs("53/UDP").expect("ok"), ["53/udp"]);
        assert_eq!(
            port_specs("8000-8001").expect("ok"),
            ["8000/tcp", "8001/tcp"]
        );
        assert!(port_specs("x").is_err());
    }
}
