//! The docker CLI's `ContainerContext`: what `ps` rows expose to templates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::units::{human_duration, human_size_prec};
use super::{ellipsis, truncate_id};
use crate::template::go_quote;

/// Default `ps` table.
pub(crate) const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Header text per field.
pub(crate) const HEADER: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
    ("Platform", "PLATFORM"),
];

/// Go type name in template errors.
pub(crate) const ROOT_TYPE: &str = "*formatter.ContainerContext";

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Builds a row (fields) and its methods (`Label`) from a `/containers/json` entry.
pub(crate) fn context(c: &Value, trunc: bool, now: SystemTime) -> (Value, Map<String, Value>) {
    let id = s(c, "Id");
    let names: Vec<String> = c
        .get("Names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/'))
                // Legacy link names contain a slash; docker hides them unless --no-trunc.
                .filter(|n| !trunc || !n.contains('/'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let created = c.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let created_t = UNIX_EPOCH + Duration::from_secs(u64::try_from(created).unwrap_or(0));
    let running_for = format!(
        "{} ago",
        human_duration(now.duration_since(created_t).unwrap_or_default())
    );
    let labels_obj = c
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut label_pairs: Vec<String> = labels_obj
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    label_pairs.sort();
    let mounts: Vec<Value> = c
        .get("Mounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let name = match s(m, "Name") {
                "" => s(m, "Source"),
                n => n,
            };
            if trunc {
                ellipsis(name, 15)
            } else {
                name.to_string()
            }
        })
        .collect();
    let local_volumes = mounts.iter().filter(|m| s(m, "Driver") == "local").count();
    let mut networks: Vec<String> = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let command = s(c, "Command");
    let command = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    let size_rw = c.get("SizeRw").and_then(Value::as_f64).unwrap_or(0.0);
    let size_root = c.get("SizeRootFs").and_then(Value::as_f64).unwrap_or(0.0);
    let size = if size_root > 0.0 {
        format!(
            "{} (virtual {})",
            human_size_prec(size_rw, 3),
            human_size_prec(size_root, 3)
        )
    } else {
        human_size_prec(size_rw, 3)
    };
    let ports = c
        .get("Ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let row = json!({
        "Command": go_quote(&command),
        "CreatedAt": go_time(created),
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "Image": image(c, trunc),
        "Labels": label_pairs.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Mounts": mount_names.join(","),
        "Names": names.join(","),
        "Networks": networks.join(","),
        // Docker 28 lists the image platform; the daemon does not report one yet.
        "Platform": Value::Null,
        "Ports": displayable_ports(&ports),
        "RunningFor": running_for,
        "Size": size,
        "State": s(c, "State"),
        "Status": s(c, "Status"),
    });
    let mut methods = Map::new();
    methods.insert("Label".into(), Value::Object(labels_obj));
    (row, methods)
}

fn image(c: &Value, trunc: bool) -> String {
    let image = s(c, "Image");
    if image.is_empty() {
        return "<no image>".into();
    }
    if trunc {
        let image_id = s(c, "ImageID");
        if !image_id.is_empty() && truncate_id(image_id) == truncate_id(image) {
            return truncate_id(image);
        }
        // Drop a digest: "name@sha256:..." shows as "name".
        if let Some((name, _)) = image.split_once('@') {
            return name.to_string();
        }
    }
    image.to_string()
}

/// Go's `time.Time.String()` for a unix time in the local zone (the CLI's "CreatedAt").
pub(crate) fn go_time(unix: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(unix, 0).single() {
        Some(t) => {
            let off = t.format("%z").to_string();
            let zone = if off == "+0000" {
                "UTC".to_string()
            } else {
                off.clone()
            };
            format!("{} {off} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => String::new(),
    }
}

/// Docker's `DisplayablePorts`: groups consecutive ports, host mappings last.
pub(crate) fn displayable_ports(ports: &[Value]) -> String {
    #[derive(Clone)]
    struct P {
        ip: String,
        private: u64,
        public: u64,
        ty: String,
    }
    let mut ps: Vec<P> = ports
        .iter()
        .map(|p| P {
            ip: s(p, "IP").to_string(),
            private: p.get("PrivatePort").and_then(Value::as_u64).unwrap_or(0),
            public: p.get("PublicPort").and_then(Value::as_u64).unwrap_or(0),
            ty: s(p, "Type").to_string(),
        })
        .collect();
    ps.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.ty).cmp(&(b.private, &b.ip, b.public, &b.ty))
    });
    let mut groups: Vec<(String, u64, u64)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in ps {
        let mut key = p.ty.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                let host = if p.ip.contains(':') {
                    format!("[{}]", p.ip)
                } else {
                    p.ip.clone()
                };
                host_mappings.push(format!("{host}:{}->{}/{}", p.public, p.private, p.ty));
                continue;
            }
            key = format!("{}/{}", p.ip, p.ty);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2 + 1 => g.2 = p.private,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                *g = (key, p.private, p.private);
            }
        }
    }
    for (k, first, last) in &groups {
        result.push(form_group(k, *first, *last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u64, last: u64) -> String {
    let (ip, ty) = match key.rsplit_once('/') {
        Some((ip, ty)) => (ip, ty),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{ip}:{group}->{group}");
    }
    format!("{group}/{ty}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_row_fields() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = json!({
            "Id": "0123456789abcdef0123", "Names": ["/web", "/other/link"], "Image": "busybox",
            "ImageID": "sha256:feed", "Command": "sh -c 'exit 3; sleep 100'", "Created": 1_000_000 - 200,
            "State": "exited", "Status": "Exited (3) 3 minutes ago", "Labels": {"b": "2", "a": "1"},
            "Ports": [], "Mounts": [{"Name": "", "Source": "/very/long/host/path", "Driver": ""}],
            "NetworkSettings": {"Networks": {"none": {}, "bridge": {}}}
        });
        let (row, methods) = context(&c, true, now);
        assert_eq!(row["ID"], "0123456789ab");
        assert_eq!(row["Names"], "web");
        assert_eq!(row["Command"], "\"sh -c 'exit 3; slee…\"");
        assert_eq!(row["RunningFor"], "3 minutes ago");
        assert_eq!(row["Labels"], "a=1,b=2");
        assert_eq!(row["Mounts"], "/very/long/hos…");
        assert_eq!(row["Networks"], "bridge,none");
        assert_eq!(row["Size"], "0B");
        assert_eq!(methods["Label"]["a"], "1");
        let (row, _) = context(&c, false, now);
        assert_eq!(row["Names"], "web,other/link");
        assert_eq!(row["Command"], "\"sh -c 'exit 3; sleep 100'\"");
    }

    #[test]
    fn image_display() {
        let c = json!({"Image": "sha256:abcdef0123456789", "ImageID": "sha256:abcdef0123456789"});
        assert_eq!(image(&c, true), "abcdef012345");
        let c = json!({"Image": "busybox@sha256:abc", "ImageID": "sha256:ff"});
        assert_eq!(image(&c, true), "busybox");
        assert_eq!(image(&json!({}), true), "<no image>");
    }

    #[test]
    fn ports_like_docker() {
        let ports = vec![
            json!({"PrivatePort": 80, "Type": "tcp"}),
            json!({"PrivatePort": 81, "Type": "tcp"}),
            json!({"PrivatePort": 53, "Type": "udp"}),
            json!({"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"}),
            json!({"IP": "::", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"}),
            json!({"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 9000, "Type": "tcp"}),
        ];
        assert_eq!(
            displayable_ports(&ports),
            "53/udp, 80-81/tcp, 0.0.0.0:9000->9000/tcp, 0.0.0.0:8443->443/tcp, [::]:8443->443/tcp"
        );
        assert_eq!(displayable_ports(&[]), "");
    }
}
