//! `docker login`: check credentials against a registry's `/v2/` as dockerd does, so that a
//! wrong password is refused before the client stores anything.

use std::sync::Arc;

use http::{Method, StatusCode};

use crate::auth::Credentials;
use crate::client::{registry_error, Repo};
use crate::error::DistributionError;
use crate::Registry;

/// Docker Hub's legacy login address, which the docker CLI sends for docker.io.
const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// The registry host (`host[:port]` or `docker.io`) a login `serveraddress` names.
pub fn login_host(server: &str) -> String {
    let s = server.trim();
    if s.is_empty() || s == INDEX_SERVER || s == "docker.io" || s == "index.docker.io" {
        return wharf_imageref::DEFAULT_DOMAIN.to_string();
    }
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        return wharf_imageref::DEFAULT_DOMAIN.to_string();
    }
    host.to_string()
}

impl Registry {
    /// Checks `creds` against the registry named by `creds.serveraddress`. Mirrors are not
    /// asked: a login is for the registry itself.
    pub async fn login(&self, creds: &Credentials) -> Result<(), DistributionError> {
        let host = login_host(&creds.serveraddress);
        let mut last = None;
        for endpoint in self
            .config
            .endpoints(&host)
            .into_iter()
            .filter(|e| !e.mirror)
        {
            let base = endpoint.base.clone();
            let repo = Repo {
                endpoint,
                path: String::new(),
                actions: "",
                mount_from: None,
                creds: Some(creds.clone()),
                cache: Arc::default(),
            };
            let url = format!("{base}/v2/");
            match repo.send(Method::GET, &url, &[]).await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(DistributionError::Registry {
                        status: 401,
                        code: "UNAUTHORIZED".into(),
                        message: format!(
                            "login attempt to {url} failed with status: 401 Unauthorized"
                        ),
                        kind: wharf_errdefs::ErrorKind::Unauthorized,
                    });
                }
                Ok(resp) => return Err(registry_error(resp, &url).await),
                Err(e @ DistributionError::Transport(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| self.config.no_endpoint(&host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(login_host(""), "docker.io");
        assert_eq!(login_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(login_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(login_host("127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(login_host("ghcr.io"), "ghcr.io");
    }
}
