//! dockerd's command-line flags and `daemon.json`, merged into one [`Config`].
//!
//! As in dockerd, a setting given both as a flag and in the file is a start-up error, and so
//! is an unknown key in the file. Flags are `Option`s so "not given" differs from "given the
//! default".

pub mod network;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;
use wharf_api_types::container::Ulimit;
use wharf_errdefs::{Classify, ErrorKind};

pub mod registry;

/// Where `daemon.json` is read from unless `--config-file` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/wharf/daemon.json";
/// The default listening socket.
pub const DEFAULT_HOST: &str = "unix:///run/wharf.sock";
/// The runtime used unless configured otherwise.
pub const DEFAULT_RUNTIME: &str = "wharf-runtime";

/// Errors building the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("unable to read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("unable to parse config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde's message.
        message: String,
    },
    /// Keys dockerd does not know (Docker's wording).
    #[error("the following directives don't match any configuration option: {0}")]
    UnknownKeys(String),
    /// Settings given both as flags and in the file (Docker's wording).
    #[error(
        "the following directives are specified both as a flag and in the configuration file: {0}"
    )]
    Conflict(String),
    /// A value that cannot be used.
    #[error("invalid value for {name}: {message}")]
    Invalid {
        /// The flag or key.
        name: &'static str,
        /// Why.
        message: String,
    },
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Read { .. } => ErrorKind::NotFound,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// The command line (dockerd's flag names).
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "wharfd",
    version,
    about = "Wharf container engine daemon (Docker Engine API)"
)]
pub struct Flags {
    /// Daemon socket(s) to connect to (unix:///path, tcp://host:port).
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Daemon configuration file.
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Root directory of persistent state.
    #[arg(long = "data-root")]
    pub data_root: Option<PathBuf>,
    /// Root directory for execution state files.
    #[arg(long = "exec-root")]
    pub exec_root: Option<PathBuf>,
    /// Path to use for the daemon PID file.
    #[arg(short = 'p', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Keep containers running while the daemon is down.
    #[arg(long = "live-restore", num_args = 0..=1, default_missing_value = "true")]
    pub live_restore: Option<bool>,
    /// Enable debug mode.
    #[arg(short = 'D', long = "debug", num_args = 0..=1, default_missing_value = "true")]
    pub debug: Option<bool>,
    /// Logging level (debug, info, warn, error, fatal).
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Group for the unix socket.
    #[arg(short = 'G', long = "group")]
    pub group: Option<String>,
    /// Use TLS; `--tls=false` explicitly allows plain TCP.
    #[arg(long = "tls", num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Use TLS and verify the remote (client certificates).
    #[arg(long = "tlsverify", num_args = 0..=1, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA.
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file.
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file.
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Default OCI runtime for containers.
    #[arg(long = "default-runtime")]
    pub default_runtime: Option<String>,
    /// Register an additional OCI runtime (name=path).
    #[arg(long = "add-runtime")]
    pub add_runtime: Vec<String>,
    /// Storage driver to use (overlay2, vfs).
    #[arg(short = 's', long = "storage-driver")]
    pub storage_driver: Option<String>,
    /// Storage driver options.
    #[arg(long = "storage-opt")]
    pub storage_opts: Vec<String>,
    /// Path to seccomp profile ("unconfined" to disable).
    #[arg(long = "seccomp-profile")]
    pub seccomp_profile: Option<String>,
    /// Parent cgroup for all containers.
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Set key=value labels on the daemon.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Default driver for container logs.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Default log driver options (key=value).
    #[arg(long = "log-opt")]
    pub log_opts: Vec<String>,
    /// Default ulimits for containers (name=soft[:hard]).
    #[arg(long = "default-ulimit")]
    pub default_ulimits: Vec<String>,
    /// Enable experimental features.
    #[arg(long = "experimental", num_args = 0..=1, default_missing_value = "true")]
    pub experimental: Option<bool>,
    /// Directory holding wharf-shim and wharf-init (default: beside wharfd, then PATH).
    #[arg(long = "helpers-dir")]
    pub helpers_dir: Option<PathBuf>,
    #[command(flatten)]
    pub registry: registry::RegistryFlags,
    /// Network settings.
    #[command(flatten)]
    pub network: network::NetFlags,
}

/// A runtime entry of daemon.json `runtimes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    /// The runc-compatible binary.
    pub path: String,
    /// Extra global arguments.
    #[serde(default, rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

/// `daemon.json` (Docker's key names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct FileConfig {
    pub hosts: Option<Vec<String>>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub live_restore: Option<bool>,
    pub debug: Option<bool>,
    pub log_level: Option<String>,
    pub group: Option<String>,
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub default_runtime: Option<String>,
    pub runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    pub storage_driver: Option<String>,
    pub storage_opts: Option<Vec<String>>,
    pub seccomp_profile: Option<String>,
    pub cgroup_parent: Option<String>,
    pub labels: Option<Vec<String>>,
    pub log_driver: Option<String>,
    pub log_opts: Option<BTreeMap<String, String>>,
    pub default_ulimits: Option<BTreeMap<String, Ulimit>>,
    pub experimental: Option<bool>,
    #[serde(flatten)]
    pub registry: registry::RegistryFile,
    #[serde(flatten)]
    pub network: network::NetFile,
}

const FILE_KEYS: &[&str] = &[
    "hosts",
    "data-root",
    "exec-root",
    "pidfile",
    "live-restore",
    "debug",
    "log-level",
    "group",
    "tls",
    "tlsverify",
    "tlscacert",
    "tlscert",
    "tlskey",
    "default-runtime",
    "runtimes",
    "storage-driver",
    "storage-opts",
    "seccomp-profile",
    "cgroup-parent",
    "labels",
    "log-driver",
    "log-opts",
    "default-ulimits",
    "experimental",
];

/// TLS settings of the TCP listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Require and verify client certificates against `ca`.
    pub verify: bool,
    /// CA bundle for client verification.
    pub ca: Option<PathBuf>,
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
}

/// The merged, validated daemon configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub hosts: Vec<String>,
    pub config_file: Option<PathBuf>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub live_restore: bool,
    pub debug: bool,
    pub log_level: String,
    pub group: String,
    /// `Some` when TCP listeners use TLS.
    pub tls: Option<TlsConfig>,
    /// `--tls=false` given explicitly: plain TCP allowed (with a warning).
    pub insecure_tcp: bool,
    pub default_runtime: String,
    /// name → entry, including the built-in ones.
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    pub storage_driver: String,
    pub storage_opts: Vec<String>,
    pub seccomp_profile: Option<String>,
    pub cgroup_parent: String,
    pub labels: Vec<String>,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub default_ulimits: Vec<Ulimit>,
    pub experimental: bool,
    pub helpers_dir: Option<PathBuf>,
    /// Mirrors, insecure registries, download limits, certificate dirs.
    pub registry: wharf_distribution::RegistryConfig,
    pub network: network::NetConfig,
}

impl Config {
    /// Reads the config file (when it exists, or when named explicitly) and merges it with the
    /// flags.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let (path, required) = match &flags.config_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let file = match std::fs::read_to_string(&path) {
            Ok(s) => Some(parse_file(&path, &s)?),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        merge(flags, file.as_ref(), file.as_ref().map(|_| path))
    }
}

/// Parses daemon.json text, rejecting unknown keys.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let perr = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let raw: serde_json::Map<String, serde_json::Value> = if text.trim().is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_str(text).map_err(|e| perr(e.to_string()))?
    };
    let unknown: Vec<&str> = raw
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !FILE_KEYS.contains(k)
                && !registry::FILE_KEYS.contains(k)
                && !network::FILE_KEYS.contains(k)
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::UnknownKeys(unknown.join(", ")));
    }
    serde_json::from_value(serde_json::Value::Object(raw)).map_err(|e| perr(e.to_string()))
}

fn key_value(name: &'static str, s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ConfigError::Invalid {
            name,
            message: format!("{s:?} is not key=value"),
        }),
    }
}

/// Parses `--default-ulimit` / `--ulimit` syntax: `name=soft[:hard]`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit, ConfigError> {
    let inval = || ConfigError::Invalid {
        name: "ulimit",
        message: format!("invalid ulimit {s:?}"),
    };
    let (name, vals) = key_value("ulimit", s).map_err(|_| inval())?;
    let (soft, hard) = vals
        .split_once(':')
        .unwrap_or((vals.as_str(), vals.as_str()));
    let soft: i64 = soft.parse().map_err(|_| inval())?;
    let hard: i64 = hard.parse().map_err(|_| inval())?;
    if soft > hard && hard >= 0 {
        return Err(inval());
    }
    Ok(Ulimit { name, soft, hard })
}

/// Merges flags over the file; a setting in both is a [`ConfigError::Conflict`].
pub fn merge(
    flags: &Flags,
    file: Option<&FileConfig>,
    file_path: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    let empty = FileConfig::default();
    let f = file.unwrap_or(&empty);
    let mut conflicts = Vec::new();
    fn pick<T: Clone + std::fmt::Debug>(
        c: &mut Vec<String>,
        key: &str,
        flag: Option<&T>,
        file: Option<&T>,
    ) -> Option<T> {
        match (flag, file) {
            (Some(a), Some(b)) => {
                c.push(format!("{key}: (from flag: {a:?}, from file: {b:?})"));
                Some(a.clone())
            }
            (a, b) => a.or(b).cloned(),
        }
    }
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let c = &mut conflicts;
    let hosts = pick(
        c,
        "hosts",
        nonempty(&flags.hosts).as_ref(),
        f.hosts.as_ref(),
    );
    let data_root = pick(
        c,
        "data-root",
        flags.data_root.as_ref(),
        f.data_root.as_ref(),
    );
    let exec_root = pick(
        c,
        "exec-root",
        flags.exec_root.as_ref(),
        f.exec_root.as_ref(),
    );
    let pidfile = pick(c, "pidfile", flags.pidfile.as_ref(), f.pidfile.as_ref());
    let live_restore = pick(
        c,
        "live-restore",
        flags.live_restore.as_ref(),
        f.live_restore.as_ref(),
    );
    let debug = pick(c, "debug", flags.debug.as_ref(), f.debug.as_ref());
    let log_level = pick(
        c,
        "log-level",
        flags.log_level.as_ref(),
        f.log_level.as_ref(),
    );
    let group = pick(c, "group", flags.group.as_ref(), f.group.as_ref());
    let tls = pick(c, "tls", flags.tls.as_ref(), f.tls.as_ref());
    let tlsverify = pick(
        c,
        "tlsverify",
        flags.tlsverify.as_ref(),
        f.tlsverify.as_ref(),
    );
    let tlscacert = pick(
        c,
        "tlscacert",
        flags.tlscacert.as_ref(),
        f.tlscacert.as_ref(),
    );
    let tlscert = pick(c, "tlscert", flags.tlscert.as_ref(), f.tlscert.as_ref());
    let tlskey = pick(c, "tlskey", flags.tlskey.as_ref(), f.tlskey.as_ref());
    let default_runtime = pick(
        c,
        "default-runtime",
        flags.default_runtime.as_ref(),
        f.default_runtime.as_ref(),
    );
    let storage_driver = pick(
        c,
        "storage-driver",
        flags.storage_driver.as_ref(),
        f.storage_driver.as_ref(),
    );
    let storage_opts = pick(
        c,
        "storage-opts",
        nonempty(&flags.storage_opts).as_ref(),
        f.storage_opts.as_ref(),
    );
    let seccomp_profile = pick(
        c,
        "seccomp-profile",
        flags.seccomp_profile.as_ref(),
        f.seccomp_profile.as_ref(),
    );
    let cgroup_parent = pick(
        c,
        "cgroup-parent",
        flags.cgroup_parent.as_ref(),
        f.cgroup_parent.as_ref(),
    );
    let labels = pick(
        c,
        "labels",
        nonempty(&flags.labels).as_ref(),
        f.labels.as_ref(),
    );
    let log_driver = pick(
        c,
        "log-driver",
        flags.log_driver.as_ref(),
        f.log_driver.as_ref(),
    );
    let experimental = pick(
        c,
        "experimental",
        flags.experimental.as_ref(),
        f.experimental.as_ref(),
    );

    let mut log_opts = f.log_opts.clone().unwrap_or_default();
    if !flags.log_opts.is_empty() && f.log_opts.is_some() {
        c.push(format!(
            "log-opts: (from flag: {:?}, from file: {:?})",
            flags.log_opts, log_opts
        ));
    }
    for o in &flags.log_opts {
        let (k, v) = key_value("log-opt", o)?;
        log_opts.insert(k, v);
    }
    let mut runtimes = f.runtimes.clone().unwrap_or_default();
    for r in &flags.add_runtime {
        let (k, v) = key_value("add-runtime", r)?;
        if runtimes.contains_key(&k) {
            c.push(format!("runtimes: (from flag: {k}, from file: {k})"));
        }
        runtimes.insert(
            k,
            RuntimeEntry {
                path: v,
                runtime_args: Vec::new(),
            },
        );
    }
    for builtin in [DEFAULT_RUNTIME, "runc", "crun"] {
        if runtimes.contains_key(builtin)
            && f.runtimes.as_ref().is_some_and(|m| m.contains_key(builtin))
        {
            return Err(ConfigError::Invalid {
                name: "runtimes",
                message: format!("runtime name '{builtin}' is reserved"),
            });
        }
        runtimes.insert(
            builtin.to_string(),
            RuntimeEntry {
                path: builtin.to_string(),
                runtime_args: Vec::new(),
            },
        );
    }
    let mut default_ulimits: Vec<Ulimit> = f
        .default_ulimits
        .clone()
        .unwrap_or_default()
        .into_values()
        .collect();
    if !flags.default_ulimits.is_empty() && f.default_ulimits.is_some() {
        c.push("default-ulimits: (from flag and from file)".to_string());
    }
    for u in &flags.default_ulimits {
        default_ulimits.push(parse_ulimit(u)?);
    }
    let registry = registry::merge(&flags.registry, file.map(|f| &f.registry), c)?;
    let network = network::merge(&flags.network, &f.network, c)?;
    if !conflicts.is_empty() {
        return Err(ConfigError::Conflict(conflicts.join(", ")));
    }

    let default_runtime = default_runtime.unwrap_or_else(|| DEFAULT_RUNTIME.to_string());
    if !runtimes.contains_key(&default_runtime) {
        return Err(ConfigError::Invalid {
            name: "default-runtime",
            message: format!("no runtime named {default_runtime:?} is configured"),
        });
    }
    let log_level = log_level.unwrap_or_else(|| "info".to_string());
    if !["debug", "info", "warn", "error", "fatal"].contains(&log_level.as_str()) {
        return Err(ConfigError::Invalid {
            name: "log-level",
            message: log_level,
        });
    }
    let storage_driver = storage_driver.unwrap_or_else(|| "overlay2".to_string());
    if !["overlay2", "vfs"].contains(&storage_driver.as_str()) {
        return Err(ConfigError::Invalid {
            name: "storage-driver",
            message: format!("unknown driver {storage_driver:?} (supported: overlay2, vfs)"),
        });
    }
    let log_driver = log_driver.unwrap_or_else(|| "json-file".to_string());
    if !["json-file", "local", "none"].contains(&log_driver.as_str()) {
        return Err(ConfigError::Invalid {
            name: "log-driver",
            message: format!("unsupported log driver {log_driver:?} (json-file, local, none)"),
        });
    }
    let verify = tlsverify.unwrap_or(false);
    let tls_cfg = if verify || tls == Some(true) {
        let missing = |n: &'static str| ConfigError::Invalid {
            name: n,
            message: "required with TLS".into(),
        };
        Some(TlsConfig {
            verify,
            ca: tlscacert.clone(),
            cert: tlscert.ok_or_else(|| missing("tlscert"))?,
            key: tlskey.ok_or_else(|| missing("tlskey"))?,
        })
    } else {
        None
    };
    if verify && tlscacert.is_none() {
        return Err(ConfigError::Invalid {
            name: "tlscacert",
            message: "required with --tlsverify".into(),
        });
    }
    let hosts = hosts.unwrap_or_else(|| vec![DEFAULT_HOST.to_string()]);
    for h in &hosts {
        if !(h.starts_with("unix://") || h.starts_with("tcp://") || h.starts_with("fd://")) {
            return Err(ConfigError::Invalid {
                name: "hosts",
                message: format!("unsupported address {h:?}"),
            });
        }
    }
    Ok(Config {
        hosts,
        config_file: file_path,
        data_root: data_root.unwrap_or_else(|| PathBuf::from("/var/lib/wharf")),
        exec_root: exec_root.unwrap_or_else(|| PathBuf::from("/run/wharf")),
        pidfile: pidfile.unwrap_or_else(|| PathBuf::from("/run/wharf.pid")),
        live_restore: live_restore.unwrap_or(false),
        debug: debug.unwrap_or(false),
        log_level,
        group: group.unwrap_or_else(|| "docker".to_string()),
        tls: tls_cfg,
        insecure_tcp: tls == Some(false) && !verify,
        default_runtime,
        runtimes,
        storage_driver,
        storage_opts: storage_opts.unwrap_or_default(),
        seccomp_profile,
        cgroup_parent: cgroup_parent.unwrap_or_default(),
        labels: labels.unwrap_or_default(),
        log_driver,
        log_opts,
        default_ulimits,
        experimental: experimental.unwrap_or(false),
        helpers_dir: flags.helpers_dir.clone(),
        registry,
        network,
    })
}

impl Config {
    /// SIGHUP: takes the reloadable settings (Docker's list, minus network/registry keys) from a
    /// freshly loaded config; everything else keeps its start-up value.
    pub fn reload_from(&mut self, new: &Config) {
        self.debug = new.debug;
        self.log_level = new.log_level.clone();
        self.labels = new.labels.clone();
        self.live_restore = new.live_restore;
        self.default_runtime = new.default_runtime.clone();
        self.runtimes = new.runtimes.clone();
        self.default_ulimits = new.default_ulimits.clone();
        self.seccomp_profile = new.seccomp_profile.clone();
        self.experimental = new.experimental;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut v = vec!["wharfd"];
        v.extend_from_slice(args);
        Flags::try_parse_from(v).expect("flags")
    }

    #[test]
    fn defaults_without_file() {
        let c = merge(&flags(&[]), None, None).expect("merge");
        assert_eq!(c.hosts, [DEFAULT_HOST]);
        assert_eq!(c.data_root, PathBuf::from("/var/lib/wharf"));
        assert_eq!(c.default_runtime, DEFAULT_RUNTIME);
        assert!(c.runtimes.contains_key("runc"));
        assert!(!c.live_restore);
    }

    #[test]
    fn file_keys_and_flags_merge() {
        let file = parse_file(
            Path::new("d.json"),
            r#"{"data-root":"/d","live-restore":true,"runtimes":{"mine":{"path":"/bin/mine","runtimeArgs":["--x"]}},
               "default-ulimits":{"nofile":{"Name":"nofile","Soft":10,"Hard":20}},"log-opts":{"max-size":"1m"}}"#,
        )
        .expect("parse");
        let c = merge(
            &flags(&["-H", "unix:///tmp/s.sock", "--default-runtime", "mine"]),
            Some(&file),
            None,
        )
        .expect("merge");
        assert_eq!(c.data_root, PathBuf::from("/d"));
        assert!(c.live_restore);
        assert_eq!(c.default_runtime, "mine");
        assert_eq!(c.runtimes["mine"].runtime_args, ["--x"]);
        assert_eq!(c.default_ulimits[0].hard, 20);
        assert_eq!(c.log_opts["max-size"], "1m");
    }

    #[test]
    fn unknown_keys_and_conflicts_are_errors() {
        let e = parse_file(Path::new("d.json"), r#"{"data-root":"/d","bogus":1}"#)
            .expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "the following directives don't match any configuration option: bogus"
        );
        let file = parse_file(Path::new("d.json"), r#"{"data-root":"/d"}"#).expect("parse");
        let e = merge(&flags(&["--data-root", "/x"]), Some(&file), None).expect_err("conflict");
        assert!(
            matches!(e, ConfigError::Conflict(ref m) if m.contains("data-root")),
            "{e}"
        );
        assert!(parse_file(Path::new("d.json"), r#"{"debug":"yes"}"#).is_err());
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(merge(&flags(&["-s", "zfs"]), None, None).is_err());
        assert!(merge(&flags(&["--default-runtime", "nope"]), None, None).is_err());
        assert!(merge(&flags(&["--tlsverify"]), None, None).is_err());
        assert!(merge(&flags(&["-H", "http://x"]), None, None).is_err());
        let c = merge(
            &flags(&["-H", "tcp://0.0.0.0:2375", "--tls=false"]),
            None,
            None,
        )
        .expect("ok");
        assert!(c.insecure_tcp && c.tls.is_none());
    }

    #[test]
    fn ulimit_syntax() {
        assert_eq!(
            parse_ulimit("nofile=10:20").expect("ok"),
            Ulimit {
                name: "nofile".into(),
                soft: 10,
                hard: 20
            }
        );
        assert_eq!(parse_ulimit("nproc=5").expect("ok").hard, 5);
        for bad in ["nofile", "=1", "nofile=a", "nofile=20:10"] {
            assert!(parse_ulimit(bad).is_err(), "{bad}");
        }
    }
}
