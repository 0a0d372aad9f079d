//! The docker CLI's `ImageContext`: what `images` rows expose to templates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::container::go_time;
use super::truncate_id;
use super::units::{human_duration, human_size, human_size_prec};

/// Default `images` table.
pub(crate) const DEFAULT_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
/// Default `images --digests` table.
pub(crate) const DIGESTS_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Header text per field.
pub(crate) const HEADER: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

/// Go type name in template errors.
pub(crate) const ROOT_TYPE: &str = "*formatter.ImageContext";

fn size(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// One row per repository:tag (`<none>` where missing), as `docker images` lists them.
pub(crate) fn contexts(
    img: &Value,
    trunc: bool,
    now: SystemTime,
) -> Vec<(Value, Map<String, Value>)> {
    let id = img.get("Id").and_then(Value::as_str).unwrap_or_default();
    let created = img.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let created_t = UNIX_EPOCH + Duration::from_secs(u64::try_from(created).unwrap_or(0));
    let strs = |k: &str| -> Vec<String> {
        img.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let tags: Vec<String> = strs("RepoTags")
        .into_iter()
        .filter(|t| t != "<none>:<none>")
        .collect();
    let digests: Vec<String> = strs("RepoDigests")
        .into_iter()
        .filter(|d| d != "<none>@<none>")
        .collect();
    let mut pairs: Vec<(String, String, String)> = Vec::new();
    for t in &tags {
        let (repo, tag) = split_tag(t);
        let digest = digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, dg)| dg.to_string())
            })
            .unwrap_or_else(|| "<none>".into());
        pairs.push((repo.to_string(), tag.to_string(), digest));
    }
    if tags.is_empty() {
        for d in &digests {
            if let Some((repo, dg)) = d.split_once('@') {
                pairs.push((repo.to_string(), "<none>".into(), dg.to_string()));
            }
        }
    }
    if pairs.is_empty() {
        pairs.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    let containers = match img.get("Containers").and_then(Value::as_i64) {
        Some(n) if n >= 0 => n.to_string(),
        _ => "N/A".to_string(),
    };
    let shared = img.get("SharedSize").and_then(Value::as_i64).unwrap_or(-1);
    pairs
        .into_iter()
        .map(|(repo, tag, digest)| {
            let row = json!({
                "Containers": containers,
                "CreatedAt": go_time(created),
                "CreatedSince": format!("{} ago", human_duration(now.duration_since(created_t).unwrap_or_default())),
                "Digest": digest,
                "ID": if trunc { truncate_id(id) } else { id.to_string() },
                "Repository": repo,
                "SharedSize": if shared < 0 { "N/A".to_string() } else { human_size(shared as f64) },
                "Size": human_size_prec(size(img, "Size"), 3),
                "Tag": tag,
                "UniqueSize": if shared < 0 { "N/A".to_string() } else { human_size(size(img, "Size") - shared as f64) },
                "VirtualSize": human_size(size(img, "Size")),
            });
            (row, Map::new())
        })
        .collect()
}

/// Splits `repo:tag`, where the repository may contain a registry port.
pub(crate) fn split_tag(r: &str) -> (&str, &str) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (r, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_tag_and_none_rows() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let img = json!({"Id": "sha256:0123456789abcdef", "Created": 10_000 - 7200, "Size": 4_261_000,
                         "RepoTags": ["busybox:latest", "localhost:5000/bb:v1"], "RepoDigests": []});
        let rows = contexts(&img, true, now);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0["Repository"], "busybox");
        assert_eq!(rows[1].0["Repository"], "localhost:5000/bb");
        assert_eq!(rows[1].0["Tag"], "v1");
        assert_eq!(rows[0].0["ID"], "0123456789ab");
        assert_eq!(rows[0].0["Size"], "4.26MB");
        assert_eq!(rows[0].0["CreatedSince"], "2 hours ago");
        let dangling = json!({"Id": "sha256:ab", "Created": 0, "Size": 0, "RepoTags": null});
        let rows = contexts(&dangling, false, now);
        assert_eq!(rows[0].0["Repository"], "<none>");
        assert_eq!(rows[0].0["ID"], "sha256:ab");
    }
}
