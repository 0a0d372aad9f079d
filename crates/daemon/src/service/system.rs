//! Facts about the host for `/version` and `/info`, read once at start-up.

use std::fs;
use std::path::Path;

/// Host facts; roots are parameters so tests can point them at fixtures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of os-release.
    pub operating_system: String,
    /// VERSION_ID of os-release.
    pub os_version: String,
    /// `uname -m`.
    pub architecture: String,
    /// Online CPUs.
    pub ncpu: i64,
    /// Bytes of RAM.
    pub mem_total: i64,
    /// The host name.
    pub hostname: String,
    /// "1" or "2": the cgroup API containers get (hybrid hosts count as 1, as in Docker).
    pub cgroup_version: String,
}

impl HostInfo {
    /// Reads `<proc>/meminfo` and `<etc>/os-release` plus uname.
    pub fn probe(proc_root: &Path, etc_root: &Path) -> HostInfo {
        let uts = nix::sys::utsname::uname().ok();
        let s = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let os_release = fs::read_to_string(etc_root.join("os-release")).unwrap_or_default();
        HostInfo {
            kernel_version: s(|u| u.release()),
            architecture: s(|u| u.machine()),
            hostname: s(|u| u.nodename()),
            operating_system: os_release_field(&os_release, "PRETTY_NAME")
                .unwrap_or_else(|| "Linux".into()),
            os_version: os_release_field(&os_release, "VERSION_ID").unwrap_or_default(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1),
            mem_total: meminfo_total(
                &fs::read_to_string(proc_root.join("meminfo")).unwrap_or_default(),
            ),
            cgroup_version: if host_cgroup_v2() { "2" } else { "1" }.into(),
        }
    }

    /// Go's GOARCH spelling, which Docker reports.
    pub fn goarch(&self) -> &str {
        match self.architecture.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
}

/// Whether containers get cgroup v2 (a pure cgroup2 host; hybrid hosts count as v1, as in
/// Docker). Probed once: `info` and every container create ask.
pub fn host_cgroup_v2() -> bool {
    static V2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V2.get_or_init(|| {
        wharf_cgroups::Hierarchy::probe()
            .is_ok_and(|h| h.version() == wharf_cgroups::CgroupVersion::V2)
    })
}

fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
}

fn meminfo_total(text: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture_files() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(
            d.path().join("meminfo"),
            "MemTotal:       2048 kB\nMemFree: 1 kB\n",
        )
        .expect("w");
        fs::write(
            d.path().join("os-release"),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n",
        )
        .expect("w");
        let h = HostInfo::probe(d.path(), d.path());
        assert_eq!(h.mem_total, 2 * 1024 * 1024);
        assert_eq!(h.operating_system, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(h.os_version, "12");
        assert!(h.ncpu >= 1);
    }
}
