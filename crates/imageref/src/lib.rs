//! Docker image references and digests: parse, normalise (`docker.io/library/…`) and print
//! the familiar form users type.
//!
//! Grammar (distribution/reference): `[domain[:port]/]path[:tag][@algo:hex]`. A first path
//! component is a domain when it contains `.` or `:` or is `localhost`, or has uppercase letters;
//! otherwise the domain is `docker.io`, and single-component names on docker.io get `library/`.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use wharf_errdefs::{Classify, ErrorKind};

/// The registry used when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy host name, normalised to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of official images on Docker Hub.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest accepted repository name (domain + path), as in distribution/reference.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference or digest was rejected; all are caller mistakes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// The string is empty.
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    /// Docker's generic grammar error.
    #[error("invalid reference format: {0:?}")]
    InvalidFormat(String),
    /// The path has uppercase letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// The name is longer than 255 characters.
    #[error("invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    /// The tag does not match `[\w][\w.-]{0,127}`.
    #[error("invalid tag format: {0:?}")]
    InvalidTag(String),
    /// The digest is not `sha256:` followed by 64 lowercase hex characters.
    #[error("invalid digest format: {0:?}")]
    InvalidDigest(String),
    /// A 64-hex string was given where a name was expected (Docker refuses these as names).
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
}

impl Classify for RefError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A sha256 content digest: `sha256:` + 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Validates `s` as a sha256 digest.
    pub fn parse(s: &str) -> Result<Digest, RefError> {
        match s.strip_prefix("sha256:") {
            Some(hex) if is_hex64(hex) => Ok(Digest(s.to_string())),
            _ => Err(RefError::InvalidDigest(s.to_string())),
        }
    }

    /// Builds a digest from a 64-hex string.
    pub fn from_hex(hex: &str) -> Result<Digest, RefError> {
        if is_hex64(hex) {
            Ok(Digest(format!("sha256:{hex}")))
        } else {
            Err(RefError::InvalidDigest(hex.to_string()))
        }
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, as `docker images` shows ids.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Digest {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// Whether `s` is exactly 64 lowercase hex characters.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The 12-hex short form of an id given as `sha256:<hex>` or bare hex (shorter input is kept whole).
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `s`. A reference with neither tag nor digest keeps `tag() == None`;
    /// use [`Reference::with_default_tag`] to get Docker's implicit `:latest`.
    pub fn parse(s: &str) -> Result<Reference, RefError> {
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, d)) => (
                name,
                Some(Digest::parse(d).map_err(|_| RefError::InvalidFormat(s.into()))?),
            ),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(RefError::InvalidFormat(s.into()));
            }
        }
        if name.is_empty() {
            return Err(RefError::InvalidFormat(s.into()));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(RefError::NameTooLong);
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(domain) {
            return Err(RefError::InvalidFormat(s.into()));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(RefError::Uppercase(name.to_string()));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(RefError::InvalidFormat(s.into()));
        }
        let mut domain = domain.to_string();
        let mut path = path.to_string();
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_REPO_PREFIX}{path}");
        }
        if domain == DEFAULT_DOMAIN && is_hex64(name) && tag.is_none() && digest.is_none() {
            return Err(RefError::HexName(name.to_string()));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Builds `repo` + optional `tag` the way `docker tag` / `POST /images/{name}/tag` do.
    /// `repo` must not carry a tag or digest of its own.
    pub fn with_repo_tag(repo: &str, tag: Option<&str>) -> Result<Reference, RefError> {
        let r = Reference::parse(repo)?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(RefError::InvalidFormat(repo.to_string()));
        }
        match tag {
            Some(t) if !t.is_empty() => {
                if !valid_tag(t) {
                    return Err(RefError::InvalidTag(t.to_string()));
                }
                Ok(Reference {
                    tag: Some(t.to_string()),
                    ..r
                })
            }
            _ => Ok(r.with_default_tag()),
        }
    }

    /// This reference with `:latest` added when it has neither tag nor digest.
    pub fn with_default_tag(self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            Reference {
                tag: Some(DEFAULT_TAG.to_string()),
                ..self
            }
        } else {
            self
        }
    }

    /// The registry host (with port), e.g. `docker.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full normalised repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as users write it: `busybox`, `user/app`, `example.com/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The familiar string: `busybox:latest`, `user/app:1`, `x@sha256:…`.
    pub fn familiar(&self) -> String {
        self.render(self.familiar_name())
    }

    /// The fully qualified string: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        self.render(self.name())
    }

    fn render(&self, mut out: String) -> String {
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(d.as_str());
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

impl FromStr for Reference {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Splits off the domain: the first component is a domain only when it looks like a host.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    }
}

/// `[\w][\w.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = t.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Host labels `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` joined by `.`, optional `:port`,
/// or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, after)) => {
                if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => return p.strip_prefix(':').is_some_and(valid_port),
                }
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if !valid_port(p) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_docker_hub_names() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.tag(), None);
        assert_eq!(r.clone().with_default_tag().familiar(), "busybox:latest");
        let r = Reference::parse("user/app:1").unwrap();
        assert_eq!(r.name(), "docker.io/user/app");
        assert_eq!(r.familiar(), "user/app:1");
        let r = Reference::parse("docker.io/library/ubuntu:22.04").unwrap();
        assert_eq!(r.familiar(), "ubuntu:22.04");
        let r = Reference::parse("index.docker.io/library/ubuntu").unwrap();
        assert_eq!(r.name(), "docker.io/library/ubuntu");
    }

    #[test]
    fn registries_and_ports() {
        let r = Reference::parse("localhost:5000/foo/bar:v1").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "foo/bar");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.familiar(), "localhost:5000/foo/bar:v1");
        let r = Reference::parse("localhost/foo").unwrap();
        assert_eq!(r.domain(), "localhost");
        let r = Reference::parse("myregistryhost:5000/fedora/httpd:version1.0").unwrap();
        assert_eq!(r.name(), "myregistryhost:5000/fedora/httpd");
        let r = Reference::parse("[::1]:5000/app").unwrap();
        assert_eq!(r.domain(), "[::1]:5000");
        // No dot/colon/localhost: the first component is a Docker Hub namespace.
        let r = Reference::parse("foo/bar").unwrap();
        assert_eq!(r.domain(), "docker.io");
    }

    #[test]
    fn digests() {
        let s = format!("busybox@sha256:{HEX}");
        let r = Reference::parse(&s).unwrap();
        assert_eq!(r.digest().unwrap().hex(), HEX);
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), s);
        let r = Reference::parse(&format!("busybox:1.36@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert!(Reference::parse("busybox@sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", HEX.to_uppercase())).is_err());
        assert_eq!(Digest::from_hex(HEX).unwrap().short(), "0123456789ab");
        assert_eq!(short_id(&format!("sha256:{HEX}")), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            ":justtag",
            "Uppercase:tag",
            "busybox:",
            "busybox:-tag",
            "a//b",
            "-leading/x",
            "x/trailing-",
            "a..b",
            "a___b",
            "test:5000/Uppercase/lowercase:tag",
            "aa/asdf$$^/aa",
            HEX,
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("a/{}", "b".repeat(260));
        assert_eq!(Reference::parse(&long), Err(RefError::NameTooLong));
        let too_long_tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&too_long_tag).is_err());
    }

    #[test]
    fn accepts_documented_forms() {
        for ok in [
            "test_com",
            "test.com:tag",
            "test.com:5000",
            "test.com/repo:tag",
            "test:5000/repo",
            "test:5000/repo:tag",
            "lowercase:Uppercase",
            "a__b/c-d--e.f",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "Uppercase.Domain/lower/name",
        ] {
            assert!(Reference::parse(ok).is_ok(), "{ok:?} should parse");
        }
        // A 64-hex string with a tag is a name, not an id.
        assert!(Reference::parse(&format!("{HEX}:tag")).is_ok());
    }

    #[test]
    fn repo_plus_tag() {
        let r = Reference::with_repo_tag("myapp", Some("v2")).unwrap();
        assert_eq!(r.full(), "docker.io/library/myapp:v2");
        let r = Reference::with_repo_tag("myapp", None).unwrap();
        assert_eq!(r.familiar(), "myapp:latest");
        assert!(Reference::with_repo_tag("myapp:x", Some("y")).is_err());
        assert_eq!(
            Reference::with_repo_tag("myapp", Some(".bad")),
            Err(RefError::InvalidTag(".bad".into()))
        );
    }

    #[test]
    fn digest_serde_validates() {
        let d: Digest = serde_json::from_str(&format!("\"sha256:{HEX}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"sha256:{HEX}\"")
        );
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn tag_grammar() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x.y-z"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag("a/b"));
    }
}
