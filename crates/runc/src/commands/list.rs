use std::path::Path;

use anyhow::Result;
use wharf_libcontainer::Container;

use crate::args::Format;

pub fn run(root: &Path, format: Format, quiet: bool) -> Result<()> {
    let all = Container::list(root)?;
    if quiet {
        for c in &all {
            println!("{}", c.id());
        }
        return Ok(());
    }
    match format {
        Format::Json => {
            let v: Vec<_> = all.iter().map(|c| c.oci_state()).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        Format::Table => {
            let rows: Vec<[String; 5]> = all
                .iter()
                .map(|c| {
                    let s = c.oci_state();
                    [
                        s.id.clone(),
                        s.pid.unwrap_or(0).to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created
                            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["ID", "PID", "STATUS", "BUNDLE", "CREATED"], &rows)
            );
        }
    }
    Ok(())
}

/// Columns padded like runc's tabwriter output (three spaces between columns).
fn table(header: &[&str; 5], rows: &[[String; 5]]) -> String {
    let mut w = header.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}", width = w[i] + 3));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(*header);
    for r in rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let rows = [[
            "c1".to_string(),
            "42".into(),
            "running".into(),
            "/b".into(),
            "t".into(),
        ]];
        let t = table(&["ID", "PID", "STATUS", "BUNDLE", "CREATED"], &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID   PID   STATUS    BUNDLE   CREATED");
        assert_eq!(lines[1], "c1   42    running   /b       t");
    }
}
