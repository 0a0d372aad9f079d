//! Platforms (`os/arch[/variant]`) and the choice of an index entry, with containerd's
//! normalisation (`aarch64` → `arm64`, `armhf` → `arm/v7`, …) and variant rules: an arm64
//! image without a variant is `v8`, and a `linux/arm/v7` host also runs v6 and v5 images.

use wharf_image::Descriptor;

use crate::error::DistributionError;

/// A normalised platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// Go's architecture name: `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … or empty.
    pub variant: String,
}

impl Platform {
    /// The platform this daemon runs on.
    pub fn host() -> Platform {
        Platform::normalised("linux", wharf_image::host_arch(), "")
    }

    /// Parses `--platform`: `os[/arch[/variant]]`, or a bare architecture taken as Linux.
    pub fn parse(s: &str) -> Result<Platform, DistributionError> {
        let bad = || {
            DistributionError::InvalidArgument(format!(
                "\"{s}\": unknown operating system or architecture: invalid argument"
            ))
        };
        let parts: Vec<&str> = s.trim().split('/').collect();
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let known_os = |o: &str| matches!(o, "linux" | "windows" | "darwin" | "freebsd");
        match lower.as_slice() {
            [one] if known_os(one) => Ok(Platform::normalised(one, wharf_image::host_arch(), "")),
            [one] if !one.is_empty() => Ok(Platform::normalised("linux", one, "")),
            [os, arch] if known_os(os) && !arch.is_empty() => {
                Ok(Platform::normalised(os, arch, ""))
            }
            [os, arch, variant] if known_os(os) && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform::normalised(os, arch, variant))
            }
            _ => Err(bad()),
        }
    }

    /// Applies containerd's architecture and variant normalisation.
    pub fn normalised(os: &str, arch: &str, variant: &str) -> Platform {
        let variant = if !variant.is_empty() && variant.bytes().all(|b| b.is_ascii_digit()) {
            format!("v{variant}")
        } else {
            variant.to_ascii_lowercase()
        };
        let (arch, variant) = match (arch, variant.as_str()) {
            ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
            ("i386" | "386", _) => ("386", ""),
            ("aarch64" | "arm64", "") => ("arm64", "v8"),
            ("aarch64" | "arm64", v) => ("arm64", v),
            ("armhf", _) => ("arm", "v7"),
            ("armel", _) => ("arm", "v6"),
            ("arm", "") => ("arm", "v7"),
            (a, v) => (a, v),
        };
        Platform {
            os: os.to_ascii_lowercase(),
            architecture: arch.to_string(),
            variant: variant.to_string(),
        }
    }

    /// Whether an image built for `other` runs here (containerd's matcher, arm variants
    /// downward compatible).
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        if self.variant == other.variant {
            return true;
        }
        if self.architecture == "arm" {
            let rank = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u8>().ok());
            return matches!((rank(&self.variant), rank(&other.variant)), (Some(me), Some(it)) if it <= me);
        }
        false
    }

    /// Best first: exact variant before an older compatible one.
    fn score(&self, other: &Platform) -> u8 {
        if self.variant == other.variant {
            0
        } else {
            1
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// Picks the best index entry for `want`; entries without a platform (attestations aside)
/// are never chosen when any entry names one.
pub fn choose<'a>(manifests: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    manifests
        .iter()
        .filter_map(|d| {
            let p = d.platform.as_ref()?;
            let p =
                Platform::normalised(&p.os, &p.architecture, p.variant.as_deref().unwrap_or(""));
            want.matches(&p).then(|| (want.score(&p), d))
        })
        .min_by_key(|(score, _)| *score)
        .map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_image::{Digest, Platform as P};

    fn desc(n: u8, os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: wharf_image::MT_OCI_MANIFEST.into(),
            digest: Digest::from_hex(&format!("{n:02x}").repeat(32)).unwrap(),
            size: 1,
            platform: Some(P {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            }),
            annotations: None,
        }
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        for bad in ["", "/", "linux/", "plan9/x/y/z", "linux//v7"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chooses_like_containerd() {
        let idx = vec![
            desc(1, "linux", "amd64", None),
            desc(2, "linux", "arm64", Some("v8")),
            desc(3, "linux", "arm", Some("v6")),
            desc(4, "linux", "arm", Some("v7")),
            desc(5, "unknown", "unknown", None),
        ];
        let pick = |p: &str| {
            choose(&idx, &Platform::parse(p).unwrap()).map(|d| d.digest.hex()[..2].to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("01"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("02"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("04"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("03"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("linux/s390x"), None);
        // An arm64 entry without a variant is v8.
        let bare = vec![desc(9, "linux", "arm64", None)];
        assert!(choose(&bare, &Platform::parse("linux/arm64/v8").unwrap()).is_some());
        // A v7 host runs v6 images when nothing better exists.
        let v6 = vec![desc(3, "linux", "arm", Some("v6"))];
        assert!(choose(&v6, &Platform::parse("linux/arm/v7").unwrap()).is_some());
    }
}
