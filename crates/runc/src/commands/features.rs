use anyhow::Result;

/// What this build supports, in the shape of the OCI features document.
pub fn run() -> Result<()> {
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": [
            "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async",
            "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime",
            "relatime", "norelatime", "strictatime", "nostrictatime", "bind", "rbind", "private",
            "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable", "tmpcopyup"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": wharf_libcontainer::capabilities::all_names(),
            "cgroup": {"v1": false, "v2": false, "systemd": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        }
    });
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}
