//! Docker's `StrSlice`: `Cmd`/`Entrypoint`/`Shell` accept a JSON string or an array of strings.

use serde::{Deserialize, Deserializer, Serialize};

/// A list of strings that also deserializes from a single string (then one element).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StrSlice(pub Vec<String>);

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Either::deserialize(d)? {
            Either::One(s) => StrSlice(vec![s]),
            Either::Many(v) => StrSlice(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_or_array() {
        let a: StrSlice = serde_json::from_str(r#""sh""#).expect("string");
        assert_eq!(a.0, ["sh"]);
        let b: StrSlice = serde_json::from_str(r#"["sh","-c"]"#).expect("array");
        assert_eq!(b.0, ["sh", "-c"]);
        assert!(serde_json::from_str::<StrSlice>("3").is_err());
    }
}
