//! Typed instructions from lexed lines: flags, JSON versus shell form, key=value lists, with
//! BuildKit's messages for malformed input. Words stay unexpanded (see [`super::expand`]).

use super::lexer::{Heredoc, RawLine};
use super::{ParseError, Span, Spanned};

/// RUN/CMD/ENTRYPOINT arguments: JSON (exec) form or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// `RUN [--mount=…] [--network=…] [--security=…] cmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub command: Command,
    /// Raw `--mount` values (`type=cache,target=/x`).
    pub mounts: Vec<String>,
    pub network: Option<String>,
    pub security: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    /// Sources as written; `<<NAME` refers to a heredoc.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub exclude: Vec<String>,
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK; durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthcheckArgs {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<Command>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub retries: Option<i64>,
}

/// One instruction. FROM starts a [`Stage`] and also appears here for the parser's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        /// Lower-cased, as Docker stores stage names.
        name: Option<String>,
        platform: Option<String>,
    },
    Run(RunArgs),
    Cmd(Command),
    Entrypoint(Command),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Maintainer(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Copy(CopyArgs),
    Add(CopyArgs),
    Onbuild(String),
    Stopsignal(String),
    Healthcheck(HealthcheckArgs),
    Shell(Vec<String>),
}

/// A build stage: its FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub span: Span,
    pub original: String,
    /// The base image or stage, unexpanded.
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub commands: Vec<Spanned>,
}

const NAMES: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Parsed `--name=value` flags of one instruction.
struct Flags {
    values: Vec<(String, Option<String>)>,
}

impl Flags {
    /// Splits leading `--flags` off `rest`, allowing only `allowed`.
    fn split<'a>(rest: &'a str, allowed: &[&str]) -> Result<(Flags, &'a str), String> {
        let mut values: Vec<(String, Option<String>)> = Vec::new();
        let mut s = rest.trim_start();
        while let Some(after) = s.strip_prefix("--") {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            let word = &after[..end];
            if word.is_empty() {
                break;
            }
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (word, None),
            };
            if !allowed.contains(&name) {
                return Err(format!("unknown flag: {name}"));
            }
            let repeatable = matches!(name, "mount" | "exclude");
            if !repeatable && values.iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate flag specified: {name}"));
            }
            values.push((name.to_string(), value));
            s = after[end..].trim_start();
        }
        Ok((Flags { values }, s))
    }

    fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.values.iter().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, Some(v))) => Ok(Some(v.clone())),
            Some((_, None)) => Err(format!("missing a value on flag: {name}")),
        }
    }

    fn all(&self, name: &str) -> Result<Vec<String>, String> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| {
                v.clone()
                    .ok_or_else(|| format!("missing a value on flag: {name}"))
            })
            .collect()
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        match self.values.iter().find(|(n, _)| n == name) {
            None => Ok(false),
            Some((_, None)) => Ok(true),
            Some((_, Some(v))) => match v.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
                "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
                _ => Err(format!("expecting boolean value for flag {name}, not: {v}")),
            },
        }
    }

    fn duration(&self, name: &str) -> Result<Option<i64>, String> {
        self.string(name)?
            .map(|v| parse_duration(&v).ok_or_else(|| format!("time: invalid duration \"{v}\"")))
            .transpose()
    }
}

/// Go's `time.ParseDuration` for the units Dockerfiles use; nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

/// `["a","b"]` when the text is a JSON array of strings; `Ok(None)` to fall back to shell form.
fn maybe_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Ok(vals) => vals
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(
                    "when using JSON array syntax, arrays must be comprised of strings only"
                        .to_string(),
                ),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Err(_) => Ok(None),
    }
}

fn command(rest: &str) -> Result<Command, String> {
    Ok(match maybe_json(rest)? {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    })
}

/// Splits on whitespace outside quotes, keeping quotes and escapes for later expansion.
fn quoted_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, c) if c == escape => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// ENV/LABEL pairs: `k=v k2="v 2"` or the legacy `KEY rest of line`.
fn name_values(cmd: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = quoted_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{cmd} requires at least one argument"));
    };
    if !first.contains('=') {
        let (k, v) = rest
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{cmd} must have two arguments"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value")
                })
        })
        .collect()
}

fn json_or_words(rest: &str) -> Result<Vec<String>, String> {
    Ok(match maybe_json(rest)? {
        Some(v) => v,
        None => rest.split_whitespace().map(String::from).collect(),
    })
}

fn one_arg(cmd: &str, rest: &str) -> Result<String, String> {
    if rest.trim().is_empty() {
        return Err(format!("{cmd} requires exactly one argument"));
    }
    Ok(rest.trim().to_string())
}

fn copy_args(cmd: &str, rest: &str, heredocs: &[Heredoc], add: bool) -> Result<CopyArgs, String> {
    let allowed: &[&str] = if add {
        &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
            "unpack",
        ]
    } else {
        &["from", "chown", "chmod", "link", "parents", "exclude"]
    };
    let (f, rest) = Flags::split(rest, allowed)?;
    let mut words = json_or_words(rest)?;
    if words.len() < 2 {
        return Err(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let dest = words.pop().unwrap_or_default();
    if dest.starts_with("<<") {
        return Err(format!("{cmd} cannot accept a heredoc as destination"));
    }
    Ok(CopyArgs {
        sources: words,
        dest,
        from: f.string("from")?,
        chown: f.string("chown")?,
        chmod: f.string("chmod")?,
        link: f.bool("link")?,
        parents: f.bool("parents")?,
        checksum: f.string("checksum")?,
        keep_git_dir: f.bool("keep-git-dir")?,
        exclude: f.all("exclude")?,
        heredocs: heredocs.to_vec(),
    })
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    let best = NAMES
        .iter()
        .map(|n| (levenshtein(&lower, n), *n))
        .min()
        .filter(|(d, _)| *d <= 2 && d * 2 < lower.len());
    match best {
        Some((_, n)) => format!("unknown instruction: {word} (did you mean {n}?)"),
        None => format!("unknown instruction: {word}"),
    }
}

/// Parses one lexed line into its instruction.
pub fn parse_line(line: &RawLine, escape: char) -> Result<Instruction, ParseError> {
    parse_parts(&line.keyword, &line.rest, &line.heredocs, escape)
        .map_err(|m| ParseError::at(line.span.start, m))
}

/// Parses `ONBUILD`'s trigger text the same way (at trigger time).
pub fn parse_trigger(text: &str) -> Result<Instruction, String> {
    let (k, r) = text
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((text.trim(), ""));
    parse_parts(k, r.trim(), &[], '\\')
}

fn parse_parts(
    keyword: &str,
    rest: &str,
    heredocs: &[Heredoc],
    escape: char,
) -> Result<Instruction, String> {
    let upper = keyword.to_ascii_uppercase();
    let cmd = upper.as_str();
    let no_flags = |rest: &str| -> Result<(), String> { Flags::split(rest, &[]).map(|_| ()) };
    Ok(match keyword.to_ascii_lowercase().as_str() {
        "from" => {
            let (f, rest) = Flags::split(rest, &["platform"])?;
            let w: Vec<&str> = rest.split_whitespace().collect();
            let name = match w.as_slice() {
                [_] => None,
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => {
                    let n = n.to_ascii_lowercase();
                    let valid = n.starts_with(|c: char| c.is_ascii_lowercase())
                        && n.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !valid {
                        return Err(format!(
                            "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                        ));
                    }
                    Some(n)
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Instruction::From {
                image: w[0].to_string(),
                name,
                platform: f.string("platform")?,
            }
        }
        "run" => {
            let (f, rest) = Flags::split(rest, &["mount", "network", "security"])?;
            if rest.trim().is_empty() {
                return Err(format!("{cmd} requires at least one argument"));
            }
            let network = f.string("network")?;
            if let Some(n) = &network {
                if !matches!(n.as_str(), "default" | "none" | "host") {
                    return Err(format!("unsupported network mode: {n}"));
                }
            }
            Instruction::Run(RunArgs {
                command: command(rest)?,
                mounts: f.all("mount")?,
                network,
                security: f.string("security")?,
                heredocs: heredocs.to_vec(),
            })
        }
        "cmd" => {
            no_flags(rest)?;
            Instruction::Cmd(command(rest)?)
        }
        "entrypoint" => {
            no_flags(rest)?;
            Instruction::Entrypoint(command(rest)?)
        }
        "env" => Instruction::Env(name_values(cmd, rest, escape)?),
        "label" => Instruction::Label(name_values(cmd, rest, escape)?),
        "arg" => {
            let words = quoted_words(rest, escape);
            if words.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            Instruction::Arg(
                words
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w, None),
                    })
                    .collect(),
            )
        }
        "maintainer" => Instruction::Maintainer(one_arg(cmd, rest)?),
        "expose" => {
            if rest.trim().is_empty() {
                return Err(format!("{cmd} requires at least one argument"));
            }
            Instruction::Expose(rest.split_whitespace().map(String::from).collect())
        }
        "volume" => {
            let v = json_or_words(rest)?;
            if v.is_empty() || v.iter().any(|p| p.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Instruction::Volume(v)
        }
        "user" => Instruction::User(one_arg(cmd, rest)?),
        "workdir" => Instruction::Workdir(one_arg(cmd, rest)?),
        "copy" => Instruction::Copy(copy_args(cmd, rest, heredocs, false)?),
        "add" => Instruction::Add(copy_args(cmd, rest, heredocs, true)?),
        "onbuild" => {
            let trigger = rest.trim();
            let first = trigger
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match first.as_str() {
                "" => return Err("ONBUILD requires at least one argument".into()),
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{first} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            parse_trigger(trigger)?;
            Instruction::Onbuild(trigger.to_string())
        }
        "stopsignal" => Instruction::Stopsignal(one_arg(cmd, rest)?),
        "healthcheck" => {
            let (f, rest) = Flags::split(
                rest,
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
            )?;
            let (kind, args) = rest
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or((rest.trim(), ""));
            let test = match kind.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !args.trim().is_empty() || !f.values.is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                    None
                }
                "CMD" => {
                    if args.trim().is_empty() {
                        return Err("Missing command after HEALTHCHECK CMD".into());
                    }
                    Some(command(args.trim())?)
                }
                other => return Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
            };
            let retries = f
                .string("retries")?
                .map(|r| {
                    r.parse::<i64>()
                        .map_err(|_| format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))
                })
                .transpose()?;
            if retries.is_some_and(|r| r < 0) {
                return Err("--retries cannot be negative".into());
            }
            Instruction::Healthcheck(HealthcheckArgs {
                test,
                interval: f.duration("interval")?,
                timeout: f.duration("timeout")?,
                start_period: f.duration("start-period")?,
                start_interval: f.duration("start-interval")?,
                retries,
            })
        }
        "shell" => match maybe_json(rest)? {
            Some(v) if !v.is_empty() => Instruction::Shell(v),
            _ => return Err("SHELL requires the arguments to be in JSON form".into()),
        },
        _ => return Err(unknown(keyword)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            unknown("RUNN"),
            "unknown instruction: RUNN (did you mean run?)"
        );
        assert_eq!(unknown("FOO"), "unknown instruction: FOO");
    }
}
