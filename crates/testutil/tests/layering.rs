//! The workspace's dependency rules (STYLE.md §2), checked on every test run: dependencies
//! point one way, the runtime knows nothing of images or the API, the client side never links
//! the engine, and nothing depends on the daemon or the CLI.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Each crate's allowed internal (wharf-*) normal dependencies.
const ALLOWED: &[(&str, &[&str])] = &[
    ("wharf-errdefs", &[]),
    ("wharf-testutil", &[]),
    ("wharf-init", &[]),
    ("wharf-api-types", &["wharf-errdefs"]),
    ("wharf-shim-proto", &["wharf-errdefs"]),
    ("wharf-imageref", &["wharf-errdefs"]),
    ("wharf-cgroups", &["wharf-errdefs"]),
    ("wharf-seccomp", &["wharf-errdefs"]),
    ("wharf-archive", &["wharf-errdefs"]),
    ("wharf-storage", &["wharf-errdefs", "wharf-archive"]),
    ("wharf-fetch", &["wharf-errdefs"]),
    ("wharf-volume", &["wharf-errdefs", "wharf-archive"]),
    ("wharf-network", &["wharf-errdefs"]),
    (
        "wharf-builder",
        &[
            "wharf-errdefs",
            "wharf-api-types",
            "wharf-archive",
            "wharf-image",
            "wharf-fetch",
        ],
    ),
    (
        "wharf-image",
        &[
            "wharf-errdefs",
            "wharf-imageref",
            "wharf-archive",
            "wharf-storage",
            "wharf-fetch",
        ],
    ),
    (
        "wharf-distribution",
        &[
            "wharf-errdefs",
            "wharf-imageref",
            "wharf-fetch",
            "wharf-image",
            "wharf-api-types",
        ],
    ),
    (
        "wharf-libcontainer",
        &["wharf-errdefs", "wharf-cgroups", "wharf-seccomp"],
    ),
    (
        "wharf-runtime",
        &[
            "wharf-errdefs",
            "wharf-libcontainer",
            "wharf-cgroups",
            "wharf-seccomp",
        ],
    ),
    (
        "wharf-shim",
        &["wharf-errdefs", "wharf-shim-proto", "wharf-cgroups"],
    ),
    (
        "wharfd",
        &[
            "wharf-errdefs",
            "wharf-api-types",
            "wharf-shim-proto",
            "wharf-imageref",
            "wharf-cgroups",
            "wharf-seccomp",
            "wharf-archive",
            "wharf-storage",
            "wharf-image",
            "wharf-volume",
            "wharf-builder",
            "wharf-distribution",
            "wharf-network",
        ],
    ),
    ("wharf-client", &["wharf-errdefs", "wharf-api-types"]),
    // `manifest inspect` reads registries directly, as docker's CLI links the distribution
    // client; the CLI still never links the daemon, runtime or sys.
    (
        "wharf",
        &[
            "wharf-errdefs",
            "wharf-api-types",
            "wharf-client",
            "wharf-distribution",
        ],
    ),
];

/// Crates no other crate may depend on, even for tests (binaries are reached through
/// `CARGO_BIN_EXE_*` or the target dir, never linked).
const LEAVES: &[&str] = &[
    "wharfd",
    "wharf",
    "wharf-shim",
    "wharf-runtime",
    "wharf-init",
];

/// (package name, section name) -> internal dependency names, read from every crate manifest.
fn manifests() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(&crates).expect("read crates/") {
        let manifest = entry.expect("dir entry").path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let (mut name, mut section) = (String::new(), String::new());
        let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            } else if section == "package" && line.starts_with("name") {
                name = line.split('"').nth(1).unwrap_or_default().to_string();
            } else if section.ends_with("dependencies") && line.starts_with("wharf") {
                let dep = line
                    .split(|c: char| c == '.' || c == '=' || c.is_whitespace())
                    .next();
                sections
                    .entry(section.clone())
                    .or_default()
                    .push(dep.unwrap_or_default().into());
            }
        }
        out.insert(name, sections);
    }
    out
}

#[test]
fn dependencies_point_one_way() {
    let allowed: BTreeMap<_, _> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for (krate, sections) in manifests() {
        let Some(ok) = allowed.get(krate.as_str()) else {
            problems.push(format!(
                "{krate}: not in the layering table; add it with its allowed deps"
            ));
            continue;
        };
        for dep in sections.get("dependencies").into_iter().flatten() {
            if !ok.contains(&dep.as_str()) {
                problems.push(format!("{krate} must not depend on {dep}"));
            }
        }
        for (section, deps) in &sections {
            for dep in deps.iter().filter(|d| LEAVES.contains(&d.as_str())) {
                problems.push(format!("{krate} [{section}] links the leaf {dep}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_crate_is_checked() {
    let names = manifests();
    assert!(
        names.len() >= 17,
        "expected every crate under crates/, found {names:?}"
    );
    assert!(names.contains_key("wharfd") && names.contains_key("wharf-libcontainer"));
}
