//! The `filters` query parameter: `{"status":["running"],"label":["a=b"]}` or the legacy form
//! `{"status":{"running":true}}` that old clients send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Parsed filters: filter name → accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

/// A `filters` parameter that is not valid JSON of either form, or uses an unknown filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiltersError {
    /// Not JSON of either accepted shape.
    #[error("invalid filter: {0}")]
    Malformed(String),
    /// A filter name the endpoint does not know (Docker's wording).
    #[error("invalid filter '{0}'")]
    UnknownFilter(String),
    /// A value the filter cannot use.
    #[error("invalid filter '{name}={value}'")]
    InvalidValue {
        /// The filter.
        name: String,
        /// The value.
        value: String,
    },
}

impl wharf_errdefs::Classify for FiltersError {
    fn kind(&self) -> wharf_errdefs::ErrorKind {
        wharf_errdefs::ErrorKind::InvalidArgument
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    List(Vec<String>),
    Map(BTreeMap<String, bool>),
}

impl Filters {
    /// Parses the parameter's JSON; an empty string means no filters.
    pub fn parse(json: &str) -> Result<Filters, FiltersError> {
        if json.trim().is_empty() {
            return Ok(Filters::default());
        }
        let raw: BTreeMap<String, Values> =
            serde_json::from_str(json).map_err(|e| FiltersError::Malformed(e.to_string()))?;
        let map = raw
            .into_iter()
            .map(|(k, v)| {
                let vals = match v {
                    Values::List(l) => l,
                    Values::Map(m) => m
                        .into_iter()
                        .filter(|(_, on)| *on)
                        .map(|(k, _)| k)
                        .collect(),
                };
                (k, vals)
            })
            .collect();
        Ok(Filters(map))
    }

    /// Fails on the first filter name not in `known`.
    pub fn validate(&self, known: &[&str]) -> Result<(), FiltersError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(FiltersError::UnknownFilter(k.clone())),
            None => Ok(()),
        }
    }

    /// The values given for `name` (empty when the filter is absent).
    pub fn get(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the filter `name` was given.
    pub fn contains(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_empty())
    }

    /// Docker's rule for a filter with several values: any one may match; absent = match.
    pub fn matches_any(&self, name: &str, pred: impl Fn(&str) -> bool) -> bool {
        let vals = self.get(name);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    }

    /// The `label` filter: every `key` or `key=value` given must be present in `labels`.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.get("label")
            .iter()
            .all(|want| match want.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(want.as_str()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        let f = Filters::parse(r#"{"status":["running","paused"],"label":["a=b"]}"#).expect("ok");
        assert_eq!(f.get("status"), ["running", "paused"]);
        let legacy = Filters::parse(r#"{"status":{"running":true,"exited":false}}"#).expect("ok");
        assert_eq!(legacy.get("status"), ["running"]);
        assert!(Filters::parse("").expect("ok").0.is_empty());
    }

    #[test]
    fn malformed_and_unknown_are_errors() {
        assert!(matches!(
            Filters::parse("{"),
            Err(FiltersError::Malformed(_))
        ));
        assert!(matches!(
            Filters::parse(r#"{"a":1}"#),
            Err(FiltersError::Malformed(_))
        ));
        let f = Filters::parse(r#"{"bogus":["x"]}"#).expect("ok");
        assert_eq!(
            f.validate(&["status"]),
            Err(FiltersError::UnknownFilter("bogus".into()))
        );
    }

    #[test]
    fn label_and_any_matching() {
        let f = Filters::parse(r#"{"label":["a=b","c"],"name":["x","y"]}"#).expect("ok");
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "b".to_string());
        assert!(!f.matches_labels(&labels));
        labels.insert("c".to_string(), String::new());
        assert!(f.matches_labels(&labels));
        assert!(f.matches_any("name", |v| v == "y"));
        assert!(!f.matches_any("name", |v| v == "z"));
        assert!(f.matches_any("status", |_| false));
    }
}
