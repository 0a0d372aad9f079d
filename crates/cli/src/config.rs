//! `~/.docker/config.json` (or `$DOCKER_CONFIG`, `--config`): the settings the CLI honours.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The subset of the docker CLI's config file that wharf uses.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Default detach key sequence.
    pub detach_keys: Option<String>,
    /// Default `ps` format.
    pub ps_format: Option<String>,
    /// Default `images` format.
    pub images_format: Option<String>,
    /// Default `volume ls` format.
    pub volumes_format: Option<String>,
    /// Default `stats` format.
    pub stats_format: Option<String>,
    /// Proxy settings injected into new containers' environment.
    #[serde(default)]
    pub proxies: std::collections::BTreeMap<String, Proxies>,
    /// Credentials stored in the file itself (not in a helper); `run --use-api-socket`
    /// forwards them.
    #[serde(default)]
    pub auths: std::collections::BTreeMap<String, serde_json::Value>,
    /// The credential helper (`docker-credential-<name>`) for every registry.
    pub creds_store: Option<String>,
    /// Credential helpers by registry host, taking precedence over `credsStore`.
    #[serde(default)]
    pub cred_helpers: std::collections::BTreeMap<String, String>,
    /// Where the file was read from (`config.json` in the config dir), for writing it back.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// One `proxies` entry.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Proxies {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub ftp_proxy: Option<String>,
    pub all_proxy: Option<String>,
}

impl Proxies {
    /// Environment entries as the docker CLI adds them (upper and lower case).
    pub fn env(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, val) in [
            ("HTTP_PROXY", &self.http_proxy),
            ("HTTPS_PROXY", &self.https_proxy),
            ("NO_PROXY", &self.no_proxy),
            ("FTP_PROXY", &self.ftp_proxy),
            ("ALL_PROXY", &self.all_proxy),
        ] {
            if let Some(v) = val {
                out.push(format!("{name}={v}"));
                out.push(format!("{}={v}", name.to_lowercase()));
            }
        }
        out
    }
}

/// The config directory: `--config`, then `$DOCKER_CONFIG`, then `$HOME/.docker`.
pub fn config_dir(flag: Option<&str>) -> Option<PathBuf> {
    if let Some(f) = flag {
        return Some(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker"))
}

/// Loads `config.json` from `dir`; a missing file is the empty config.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Config> {
    let Some(dir) = dir else {
        return Ok(Config::default());
    };
    let path = dir.join("config.json");
    let config = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("loading config file: {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(anyhow::anyhow!(
            "loading config file: {}: {e}",
            path.display()
        )),
    };
    config.map(|c| Config {
        path: Some(path),
        ..c
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_keys_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{},"detachKeys":"ctrl-x,x","psFormat":"table {{.ID}}",
               "proxies":{"default":{"httpProxy":"http://p:3128"}}}"#,
        )
        .unwrap();
        let c = load(Some(dir.path())).unwrap();
        assert_eq!(c.detach_keys.as_deref(), Some("ctrl-x,x"));
        assert_eq!(c.ps_format.as_deref(), Some("table {{.ID}}"));
        assert_eq!(
            c.proxies["default"].env(),
            vec!["HTTP_PROXY=http://p:3128", "http_proxy=http://p:3128"]
        );
    }

    #[test]
    fn missing_file_is_empty_and_bad_json_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(Some(dir.path())).unwrap().detach_keys.is_none());
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        assert!(load(Some(dir.path())).is_err());
    }
}
