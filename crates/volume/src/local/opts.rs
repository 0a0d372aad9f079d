//! The local driver's options (`type`, `device`, `o`, `size`) and their `opts.json` form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VolumeError};

/// Which options require which others (moby's `mandatoryOpts`).
const REQUIRED: &[(&str, &[&str])] = &[
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// Quota (never supported here: no xfs project quotas).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Quota {
    /// Bytes.
    pub size: u64,
}

/// `opts.json`, as Docker writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountOpts {
    /// `type`.
    pub mount_type: String,
    /// `o`.
    pub mount_opts: String,
    /// `device`.
    pub mount_device: String,
    /// `size`.
    pub quota: Quota,
}

impl MountOpts {
    /// Validates `opts` the way dockerd's local driver does; `None` when there are none.
    pub fn from_map(opts: &BTreeMap<String, String>) -> Result<Option<MountOpts>> {
        if opts.is_empty() {
            return Ok(None);
        }
        for k in opts.keys() {
            if !matches!(k.as_str(), "type" | "o" | "device" | "size") {
                return Err(VolumeError::Invalid(format!("invalid option: {k:?}")));
            }
        }
        if opts.contains_key("size") {
            return Err(VolumeError::Invalid(
                "quota size requested but no quota support".into(),
            ));
        }
        for (k, needs) in REQUIRED {
            if opts.contains_key(*k) {
                if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                    return Err(VolumeError::Invalid(format!(
                        "missing required option: {missing:?}"
                    )));
                }
            }
        }
        let get = |k: &str| opts.get(k).cloned().unwrap_or_default();
        Ok(Some(MountOpts {
            mount_type: get("type"),
            mount_opts: get("o"),
            mount_device: get("device"),
            quota: Quota::default(),
        }))
    }

    /// Whether `_data` must be mounted before use.
    pub fn needs_mount(&self) -> bool {
        !self.mount_device.is_empty() || !self.mount_type.is_empty()
    }

    /// Back to the user's option map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("type", &self.mount_type),
            ("o", &self.mount_opts),
            ("device", &self.mount_device),
        ] {
            if !v.is_empty() {
                m.insert(k.to_string(), v.clone());
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_follow_dockers_rules() {
        assert_eq!(MountOpts::from_map(&map(&[])).expect("empty"), None);
        let o = MountOpts::from_map(&map(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m"),
        ]))
        .expect("tmpfs")
        .expect("some");
        assert!(o.needs_mount());
        assert_eq!(o.to_map().len(), 3);
        let err = |kv: &[(&str, &str)]| MountOpts::from_map(&map(kv)).expect_err("bad").to_string();
        assert_eq!(err(&[("bogus", "1")]), "invalid option: \"bogus\"");
        assert_eq!(
            err(&[("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            err(&[("o", "size=1m"), ("device", "x")]),
            "missing required option: \"type\""
        );
        assert_eq!(
            err(&[("size", "1g")]),
            "quota size requested but no quota support"
        );
    }

    #[test]
    fn opts_json_has_dockers_field_names() {
        let o = MountOpts {
            mount_type: "tmpfs".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(&o).expect("json");
        assert_eq!(v["MountType"], "tmpfs");
        assert_eq!(v["Quota"]["Size"], 0);
    }
}
