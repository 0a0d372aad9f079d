//! Registry credentials where the docker CLI keeps them, so either CLI reads what the other
//! stored: `config.json`'s `auths` (base64 `user:password`, mode 0600), or a
//! `docker-credential-<name>` helper named by `credHelpers` (per host) or `credsStore`, spoken
//! to with the helpers' get/store/erase protocol.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use crate::config::Config;

/// Docker Hub's address in credential stores (the docker CLI's `registry.IndexServer`).
pub(crate) const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// What a helper answers for a server it knows nothing about.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// One registry's credentials (the CLI's `AuthConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthEntry {
    pub username: String,
    pub password: String,
    /// An OAuth refresh token the registry gave at login, stored instead of a password.
    pub identity_token: String,
    pub server: String,
}

impl AuthEntry {
    /// The `X-Registry-Auth` header: URL-safe base64 of the AuthConfig JSON, as docker sends.
    pub(crate) fn header(&self) -> String {
        let mut v = json!({"username": self.username, "password": self.password,
            "serveraddress": self.server});
        if !self.identity_token.is_empty() {
            v["identitytoken"] = json!(self.identity_token);
        }
        wharf_api_types::base64::encode(v.to_string().as_bytes())
            .replace('+', "-")
            .replace('/', "_")
    }
}

/// The key credentials for `server` are filed under (the CLI's `ConvertToHostname`): the host
/// of a URL; Docker Hub's index address stays as it is.
pub(crate) fn hostname(server: &str) -> String {
    if server == INDEX_SERVER {
        return server.to_string();
    }
    let s = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s).to_string()
}

/// The credential-store key of the registry an image reference names.
pub(crate) fn registry_of(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let explicit =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if explicit && first != "docker.io" && first != "index.docker.io" {
        first.to_string()
    } else {
        INDEX_SERVER.to_string()
    }
}

/// The helper in charge of `server`, if any (`credHelpers` first, then `credsStore`).
fn helper_for<'a>(cfg: &'a Config, server: &str) -> Option<&'a str> {
    cfg.cred_helpers
        .get(&hostname(server))
        .or(cfg.creds_store.as_ref())
        .map(String::as_str)
        .filter(|h| !h.is_empty())
}

/// The stored credentials for `server`, if any.
pub(crate) fn get(cfg: &Config, server: &str) -> anyhow::Result<Option<AuthEntry>> {
    if let Some(helper) = helper_for(cfg, server) {
        let Some(out) = run_helper(helper, "get", server.as_bytes())? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_slice(&out)?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (user, secret) = (field("Username"), field("Secret"));
        let mut e = AuthEntry {
            server: server.to_string(),
            ..Default::default()
        };
        if user == "<token>" {
            e.identity_token = secret;
        } else {
            (e.username, e.password) = (user, secret);
        }
        return Ok(Some(e));
    }
    // Exact key first, then any key naming the same host (`https://host/`, `http://host`).
    let key = hostname(server);
    let found = cfg.auths.get(server).or_else(|| {
        cfg.auths
            .iter()
            .find(|(k, _)| hostname(k) == key)
            .map(|(_, v)| v)
    });
    let Some(v) = found else { return Ok(None) };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (username, password) = wharf_api_types::base64::decode(&s("auth"))
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|up| {
            up.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        })
        .unwrap_or_default();
    Ok(Some(AuthEntry {
        username,
        password,
        identity_token: s("identitytoken"),
        server: server.to_string(),
    })
    .filter(|e| !e.username.is_empty() || !e.identity_token.is_empty()))
}

/// Stores `e`; returns whether the secret went into the config file itself (docker warns
/// then).
pub(crate) fn store(cfg: &Config, e: &AuthEntry) -> anyhow::Result<bool> {
    let key = e.server.as_str();
    let entry = match helper_for(cfg, key) {
        Some(helper) => {
            let (user, secret) = if e.identity_token.is_empty() {
                (e.username.as_str(), e.password.as_str())
            } else {
                ("<token>", e.identity_token.as_str())
            };
            let body = json!({"ServerURL": key, "Username": user, "Secret": secret});
            run_helper(helper, "store", body.to_string().as_bytes())?;
            // The file keeps an empty entry so `auths` still lists the registry.
            json!({})
        }
        None => {
            let mut m = Map::new();
            let pass = if e.identity_token.is_empty() {
                &e.password
            } else {
                ""
            };
            m.insert(
                "auth".into(),
                json!(wharf_api_types::base64::encode(
                    format!("{}:{pass}", e.username).as_bytes()
                )),
            );
            if !e.identity_token.is_empty() {
                m.insert("identitytoken".into(), json!(e.identity_token));
            }
            Value::Object(m)
        }
    };
    let plain = helper_for(cfg, key).is_none();
    edit_file(cfg, |auths| {
        auths.insert(key.to_string(), entry);
    })?;
    Ok(plain)
}

/// Removes what is stored for `server`; a helper that has nothing for it fails, as in docker.
pub(crate) fn erase(cfg: &Config, server: &str) -> anyhow::Result<()> {
    if let Some(helper) = helper_for(cfg, server) {
        run_helper(helper, "erase", server.as_bytes())?;
    }
    edit_file(cfg, |auths| {
        auths.remove(server);
    })
}

/// Runs `docker-credential-<helper> <verb>` with `input`; `None` when it knows nothing of the
/// server and `verb` is `get` (for `erase` that is an error, as in docker).
fn run_helper(helper: &str, verb: &str, input: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let prog = format!("docker-credential-{helper}");
    let gerund = match verb {
        "get" => "getting",
        "store" => "storing",
        _ => "erasing",
    };
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("error {gerund} credentials - err: exec: \"{prog}\": {e}, out: ``")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(Some(out.stdout));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if verb == "get" && text.contains(NOT_FOUND) {
        return Ok(None);
    }
    let status = out
        .status
        .code()
        .map_or_else(|| out.status.to_string(), |c| format!("exit status {c}"));
    Err(anyhow::anyhow!(
        "error {gerund} credentials - err: {status}, out: `{text}`"
    ))
}

/// Rewrites `config.json` with `f` applied to its `auths`, keeping every other key, through a
/// 0600 temp file renamed over it (a crash leaves the old file or the new, never half).
fn edit_file(cfg: &Config, f: impl FnOnce(&mut Map<String, Value>)) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = cfg
        .path
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no config directory (set HOME or DOCKER_CONFIG)"))?;
    let mut doc: Map<String, Value> = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e.into()),
    };
    let auths = doc
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Value::Object(a) = auths {
        f(a);
    }
    // Go's MarshalIndent with a tab, as the docker CLI writes the file.
    let mut text = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    serde::Serialize::serialize(
        &doc,
        &mut serde_json::Serializer::with_formatter(&mut text, fmt),
    )?;
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{}: no parent directory", path.display()))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_like_the_docker_cli() {
        assert_eq!(hostname("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(hostname("h:1"), "h:1");
        assert_eq!(hostname(INDEX_SERVER), INDEX_SERVER);
        assert_eq!(registry_of("alpine"), INDEX_SERVER);
        assert_eq!(registry_of("me/app:1"), INDEX_SERVER);
        assert_eq!(registry_of("docker.io/me/app"), INDEX_SERVER);
        assert_eq!(registry_of("h:5000/me/app"), "h:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
    }

    #[test]
    fn file_store_round_trips_and_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"psFormat":"x"}"#).unwrap();
        let cfg = crate::config::load(Some(dir.path())).unwrap();
        let e = AuthEntry {
            username: "alice".into(),
            password: "s3:cret".into(),
            server: "h:5000".into(),
            ..Default::default()
        };
        assert!(store(&cfg, &e).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\t\"auths\": {\n\t\t\"h:5000\": {\n\t\t\t\"auth\": "));
        assert!(text.contains("psFormat"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cfg = crate::config::load(Some(dir.path())).unwrap();
        assert_eq!(get(&cfg, "h:5000").unwrap(), Some(e.clone()));
        erase(&cfg, "h:5000").unwrap();
        let cfg = crate::config::load(Some(dir.path())).unwrap();
        assert_eq!(get(&cfg, "h:5000").unwrap(), None);
    }
}
