//! The docker CLI's `VolumeContext`: what `volume ls` rows expose to templates.

use serde_json::{json, Map, Value};

use super::units::human_size;

/// Default `volume ls` table.
pub(crate) const DEFAULT_FORMAT: &str = "table {{.Driver}}\t{{.Name}}";

/// Header text per field.
pub(crate) const HEADER: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Group", "GROUP"),
    ("Availability", "AVAILABILITY"),
    ("Status", "STATUS"),
];

/// Go type name in template errors.
pub(crate) const ROOT_TYPE: &str = "*formatter.volumeContext";

/// One row for a volume of `GET /volumes`.
pub(crate) fn context(v: &Value) -> (Value, Map<String, Value>) {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let labels = v
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or_default()))
        .collect();
    let usage = v.get("UsageData").filter(|u| !u.is_null());
    let num = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_i64);
    let row = json!({
        "Name": s("Name"),
        "Driver": s("Driver"),
        "Scope": s("Scope"),
        "Mountpoint": s("Mountpoint"),
        "Labels": pairs.join(","),
        "Links": num("RefCount").map_or("N/A".to_string(), |n| n.to_string()),
        "Size": num("Size").map_or("N/A".to_string(), |n| human_size(n as f64)),
        "Group": "N/A",
        "Availability": "N/A",
        "Status": "N/A",
    });
    let mut methods = Map::new();
    methods.insert("Label".into(), Value::Object(labels));
    (row, methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let (row, m) = context(
            &json!({"Name": "v", "Driver": "local", "Labels": {"a": "1"},
            "UsageData": {"Size": 2048, "RefCount": 1}}),
        );
        assert_eq!(row["Labels"], "a=1");
        assert_eq!(row["Links"], "1");
        assert_eq!(row["Size"], "2.048kB");
        assert_eq!(m["Label"]["a"], "1");
        let (row, _) = context(&json!({"Name": "v", "Labels": null}));
        assert_eq!(row["Links"], "N/A");
    }
}
