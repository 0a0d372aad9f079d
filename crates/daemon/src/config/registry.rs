//! The registry settings of the command line and daemon.json (`registry-mirrors`,
//! `insecure-registries`, `max-concurrent-downloads`, `max-download-attempts`), merged into
//! the distribution client's [`RegistryConfig`].

use std::path::PathBuf;

use serde::Deserialize;
use wharf_distribution::RegistryConfig;

use super::ConfigError;

/// daemon.json keys this module reads.
pub const FILE_KEYS: &[&str] = &[
    "registry-mirrors",
    "insecure-registries",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "max-download-attempts",
    "block-registries",
];

/// Where per-registry certificates live unless `--certs-dir` says otherwise (Docker's dir is
/// read too, so certificates set up for dockerd keep working).
const DEFAULT_CERTS_DIRS: &[&str] = &["/etc/wharf/certs.d", "/etc/docker/certs.d"];

/// The registry flags (dockerd's names, plus `--certs-dir`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryFlags {
    /// Preferred registry mirror for docker.io.
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Registry reachable over plain HTTP or unverified TLS (host[:port] or CIDR).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Maximum concurrent downloads for each pull (default 3).
    #[arg(long = "max-concurrent-downloads")]
    pub max_concurrent_downloads: Option<usize>,
    /// Maximum concurrent uploads for each push (default 5).
    #[arg(long = "max-concurrent-uploads")]
    pub max_concurrent_uploads: Option<usize>,
    /// Maximum download attempts for each layer (default 5).
    #[arg(long = "max-download-attempts")]
    pub max_download_attempts: Option<usize>,
    /// Registry never contacted (a domain such as docker.io; its mirrors are still used).
    #[arg(long = "block-registry")]
    pub block_registries: Vec<String>,
    /// Directory of per-registry certificates, `<dir>/<host:port>/*.crt` (default
    /// /etc/wharf/certs.d and /etc/docker/certs.d).
    #[arg(long = "certs-dir")]
    pub certs_dirs: Vec<PathBuf>,
}

/// The registry part of daemon.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RegistryFile {
    pub registry_mirrors: Option<Vec<String>>,
    pub insecure_registries: Option<Vec<String>>,
    pub max_concurrent_downloads: Option<usize>,
    pub max_concurrent_uploads: Option<usize>,
    pub max_download_attempts: Option<usize>,
    pub block_registries: Option<Vec<String>>,
}

/// Merges flags and file; a setting in both is a conflict (pushed to `conflicts`).
pub fn merge(
    flags: &RegistryFlags,
    file: Option<&RegistryFile>,
    conflicts: &mut Vec<String>,
) -> Result<RegistryConfig, ConfigError> {
    let f = file.cloned().unwrap_or_default();
    let mut both = |name: &str, flag: bool, in_file: bool| {
        if flag && in_file {
            conflicts.push(format!("{name}: (from flag and from file)"));
        }
    };
    both(
        "registry-mirrors",
        !flags.registry_mirrors.is_empty(),
        f.registry_mirrors.is_some(),
    );
    both(
        "insecure-registries",
        !flags.insecure_registries.is_empty(),
        f.insecure_registries.is_some(),
    );
    both(
        "max-concurrent-downloads",
        flags.max_concurrent_downloads.is_some(),
        f.max_concurrent_downloads.is_some(),
    );
    both(
        "max-concurrent-uploads",
        flags.max_concurrent_uploads.is_some(),
        f.max_concurrent_uploads.is_some(),
    );
    both(
        "max-download-attempts",
        flags.max_download_attempts.is_some(),
        f.max_download_attempts.is_some(),
    );
    both(
        "block-registries",
        !flags.block_registries.is_empty(),
        f.block_registries.is_some(),
    );
    let defaults = RegistryConfig::default();
    let pick_list = |flag: &Vec<String>, file: Option<Vec<String>>| {
        if flag.is_empty() {
            file.unwrap_or_default()
        } else {
            flag.clone()
        }
    };
    let config = RegistryConfig {
        mirrors: pick_list(&flags.registry_mirrors, f.registry_mirrors),
        insecure: pick_list(&flags.insecure_registries, f.insecure_registries),
        max_concurrent_downloads: flags
            .max_concurrent_downloads
            .or(f.max_concurrent_downloads)
            .unwrap_or(defaults.max_concurrent_downloads),
        max_concurrent_uploads: flags
            .max_concurrent_uploads
            .or(f.max_concurrent_uploads)
            .unwrap_or(defaults.max_concurrent_uploads),
        max_download_attempts: flags
            .max_download_attempts
            .or(f.max_download_attempts)
            .unwrap_or(defaults.max_download_attempts),
        blocked: pick_list(&flags.block_registries, f.block_registries),
        certs_dirs: if flags.certs_dirs.is_empty() {
            DEFAULT_CERTS_DIRS.iter().map(PathBuf::from).collect()
        } else {
            flags.certs_dirs.clone()
        },
        http_fallback: true,
    };
    config.validate().map_err(|e| ConfigError::Invalid {
        name: "registry",
        message: e.to_string(),
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_file_merge() {
        let flags = RegistryFlags {
            registry_mirrors: vec!["http://127.0.0.1:5000".into()],
            certs_dirs: vec!["/tmp/certs".into()],
            ..Default::default()
        };
        let file = RegistryFile {
            max_concurrent_downloads: Some(7),
            ..Default::default()
        };
        let mut c = Vec::new();
        let r = merge(&flags, Some(&file), &mut c).unwrap();
        assert!(c.is_empty());
        assert_eq!(r.mirrors, ["http://127.0.0.1:5000"]);
        assert_eq!(r.max_concurrent_downloads, 7);
        assert_eq!(r.max_download_attempts, 5);
        assert_eq!(r.certs_dirs, [PathBuf::from("/tmp/certs")]);

        let file = RegistryFile {
            registry_mirrors: Some(vec!["http://x".into()]),
            ..Default::default()
        };
        merge(&flags, Some(&file), &mut c).unwrap();
        assert_eq!(c.len(), 1);

        let bad = RegistryFlags {
            max_concurrent_downloads: Some(0),
            ..Default::default()
        };
        assert!(merge(&bad, None, &mut Vec::new()).is_err());
    }
}
