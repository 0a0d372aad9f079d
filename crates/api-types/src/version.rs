//! API versions (`/v1.45/...`) and the range this engine serves.

use std::fmt;
use std::str::FromStr;

/// The oldest API version served (docker 1.12).
pub const MIN_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};
/// The newest API version served, also the default for unprefixed paths.
pub const MAX_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 45,
};

/// A `major.minor` Engine API version; ordered numerically (1.9 < 1.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u32,
    /// The minor version.
    pub minor: u32,
}

/// A version string that is not `<digits>.<digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API version {0:?}")]
pub struct ApiVersionError(pub String);

impl wharf_errdefs::Classify for ApiVersionError {
    fn kind(&self) -> wharf_errdefs::ErrorKind {
        wharf_errdefs::ErrorKind::InvalidArgument
    }
}

impl ApiVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32) -> Self {
        ApiVersion { major, minor }
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion::new(major, minor)
    }
}

impl FromStr for ApiVersion {
    type Err = ApiVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ApiVersionError(s.to_string());
        let (a, b) = s.split_once('.').ok_or_else(err)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(err());
        }
        Ok(ApiVersion {
            major: a.parse().map_err(|_| err())?,
            minor: b.parse().map_err(|_| err())?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_numerically() {
        let v: ApiVersion = "1.9".parse().expect("parse");
        assert!(v < MIN_API_VERSION);
        assert!("1.45".parse::<ApiVersion>().expect("parse") == MAX_API_VERSION);
        assert!(MAX_API_VERSION.at_least(1, 41));
        assert!(!MIN_API_VERSION.at_least(1, 25));
        assert_eq!(MAX_API_VERSION.to_string(), "1.45");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "1",
            "1.",
            ".4",
            "v1.4",
            "1.4.5",
            "1.-4",
            "99999999999.1",
        ] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad}");
        }
    }
}
