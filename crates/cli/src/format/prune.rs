//! The report `container prune`, `image prune` and `system prune` print, as docker does.

use serde_json::Value;

use super::units::human_size;

fn strings<'a>(answers: &[&'a Value], key: &str) -> Vec<&'a str> {
    answers
        .iter()
        .filter_map(|v| v.get(key).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn section(s: &mut String, title: &str, lines: &[String]) {
    if !lines.is_empty() {
        s.push_str(title);
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push('\n');
    }
}

/// The report for the daemons' prune answers: deleted containers, volumes and images, then the
/// total reclaimed space over all answers.
pub(crate) fn prune_report(answers: &[&Value]) -> String {
    let mut s = String::new();
    let own = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    section(
        &mut s,
        "Deleted Containers:\n",
        &own(strings(answers, "ContainersDeleted")),
    );
    section(
        &mut s,
        "Deleted Volumes:\n",
        &own(strings(answers, "VolumesDeleted")),
    );
    let images: Vec<String> = answers
        .iter()
        .filter_map(|v| v.get("ImagesDeleted").and_then(Value::as_array))
        .flatten()
        .flat_map(|d| {
            let untagged = d
                .get("Untagged")
                .and_then(Value::as_str)
                .map(|u| format!("untagged: {u}"));
            let deleted = d
                .get("Deleted")
                .and_then(Value::as_str)
                .map(|x| format!("deleted: {x}"));
            untagged.into_iter().chain(deleted)
        })
        .collect();
    section(&mut s, "Deleted Images:\n", &images);
    let total: f64 = answers
        .iter()
        .map(|v| {
            v.get("SpaceReclaimed")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
        })
        .sum();
    s.push_str(&format!("Total reclaimed space: {}\n", human_size(total)));
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn report_lists_each_kind_then_the_total() {
        let c = json!({"ContainersDeleted": ["c1"], "SpaceReclaimed": 1000});
        let i = json!({"ImagesDeleted": [{"Untagged": "a:1"}, {"Deleted": "sha256:x"}], "SpaceReclaimed": 1000});
        assert_eq!(
            prune_report(&[&c, &json!({}), &i]),
            "Deleted Containers:\nc1\n\nDeleted Images:\nuntagged: a:1\ndeleted: sha256:x\n\nTotal reclaimed space: 2kB\n"
        );
        assert_eq!(prune_report(&[&json!({})]), "Total reclaimed space: 0B\n");
    }
}
