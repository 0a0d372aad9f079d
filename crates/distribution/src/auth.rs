//! Registry authentication: credentials, `WWW-Authenticate` challenges and a token cache.
//!
//! As containerd's authorizer does, a host's challenge is learnt from its first 401 and the
//! Bearer tokens it leads to are cached per (realm, service, scope), so the layers of one pull
//! share one token. Expiry uses the token response's `expires_in` (default 60 s, Docker's
//! minimum) on the monotonic clock, refreshed early.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Token lifetime when the token server does not say (the spec's minimum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire.
const EARLY_REFRESH: Duration = Duration::from_secs(10);
/// Tokens cached at most (distinct scopes are few; this bounds a hostile realm).
const MAX_TOKENS: usize = 256;

/// Credentials for one registry, in the shape of the docker CLI's `X-Registry-Auth` and
/// `POST /auth` bodies (`AuthConfig`).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// User name for Basic auth and the token server.
    #[serde(default)]
    pub username: String,
    /// Password (or personal access token).
    #[serde(default)]
    pub password: String,
    /// `user:password` in base64 (what config.json stores), used when the fields are empty.
    #[serde(default)]
    pub auth: String,
    /// The registry these are for, as the client named it.
    #[serde(default)]
    pub serveraddress: String,
    /// An OAuth refresh token from an earlier login.
    #[serde(default)]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(default)]
    pub registrytoken: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Decodes an `X-Registry-Auth` header (URL-safe base64 of the JSON); an empty or
    /// undecodable header means anonymous, as in Docker.
    pub fn from_header(value: &str) -> Option<Credentials> {
        let std: String = value
            .trim()
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let json = wharf_api_types::base64::decode(&std)?;
        let c: Credentials = serde_json::from_slice(&json).ok()?;
        (!c.is_empty()).then_some(c)
    }

    /// Whether nothing usable is set.
    pub fn is_empty(&self) -> bool {
        self.basic().is_none() && self.registrytoken.is_empty() && self.identitytoken.is_empty()
    }

    /// (user, password), from the fields or from `auth`.
    pub fn basic(&self) -> Option<(String, String)> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        let raw = wharf_api_types::base64::decode(self.auth.trim())?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    /// The `Authorization: Basic …` value, when there is a user.
    pub fn basic_header(&self) -> Option<String> {
        let (u, p) = self.basic()?;
        Some(format!(
            "Basic {}",
            wharf_api_types::base64::encode(format!("{u}:{p}").as_bytes())
        ))
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`: send the credentials with every request.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`: get a token from `realm`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: String,
    },
}

/// Parses the first usable challenge of a `WWW-Authenticate` value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned().unwrap_or_default(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` → map; quoted values may hold commas and `\"`.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

/// A token server's answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub(crate) fn token(&self) -> &str {
        if self.token.is_empty() {
            &self.access_token
        } else {
            &self.token
        }
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.expires_in
            .map(Duration::from_secs)
            .filter(|d| *d >= DEFAULT_TOKEN_LIFETIME)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
    }
}

/// Challenges by registry host and tokens by (realm, service, scope, user); shared by all
/// pulls of the daemon. Tokens never appear in `Debug` output.
#[derive(Default)]
pub struct AuthCache {
    inner: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    challenges: HashMap<String, Challenge>,
    tokens: HashMap<String, (String, Instant)>,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthCache { .. }")
    }
}

impl AuthCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The challenge `host` sent last, if any.
    pub fn challenge(&self, host: &str) -> Option<Challenge> {
        self.state().challenges.get(host).cloned()
    }

    /// Remembers `host`'s challenge.
    pub fn set_challenge(&self, host: &str, c: Challenge) {
        self.state().challenges.insert(host.to_string(), c);
    }

    /// A cached token that is still fresh.
    pub fn token(&self, key: &str) -> Option<String> {
        let st = self.state();
        let (tok, until) = st.tokens.get(key)?;
        (Instant::now() + EARLY_REFRESH < *until).then(|| tok.clone())
    }

    /// Caches a token for `lifetime`; expired ones are dropped first, and the cache is bounded.
    pub fn set_token(&self, key: &str, token: String, lifetime: Duration) {
        let mut st = self.state();
        let now = Instant::now();
        st.tokens.retain(|_, (_, until)| *until > now);
        if st.tokens.len() >= MAX_TOKENS {
            st.tokens.clear();
        }
        st.tokens.insert(key.to_string(), (token, now + lifetime));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: "registry.docker.io".into()
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        let p = parse_params(r#"a="x,\"y", b=z"#);
        assert_eq!(p["a"], "x,\"y");
        assert_eq!(p["b"], "z");
    }

    #[test]
    fn credentials_from_header() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"r"}"#;
        let b64 = wharf_api_types::base64::encode(json.as_bytes())
            .replace('+', "-")
            .replace('/', "_");
        let c = Credentials::from_header(&b64).unwrap();
        assert_eq!(c.basic(), Some(("u".into(), "p?>".into())));
        assert!(!format!("{c:?}").contains("p?>"));
        assert_eq!(Credentials::from_header(""), None);
        assert_eq!(Credentials::from_header("e30="), None); // {}
        let stored = Credentials {
            auth: wharf_api_types::base64::encode(b"me:secret"),
            ..Default::default()
        };
        assert_eq!(stored.basic(), Some(("me".into(), "secret".into())));
    }

    #[test]
    fn tokens_expire_and_are_bounded() {
        let c = AuthCache::default();
        c.set_token("k", "t".into(), Duration::from_secs(60));
        assert_eq!(c.token("k").as_deref(), Some("t"));
        c.set_token("old", "t".into(), Duration::from_secs(5));
        assert_eq!(c.token("old"), None, "within the early-refresh window");
        for i in 0..MAX_TOKENS + 5 {
            c.set_token(&i.to_string(), "t".into(), Duration::from_secs(60));
        }
        assert!(c.state().tokens.len() <= MAX_TOKENS);
        assert_eq!(format!("{c:?}"), "AuthCache { .. }");
    }
}
