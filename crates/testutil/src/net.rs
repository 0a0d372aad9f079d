//! A host-unique network slot per test daemon, so up to hundreds of daemons (every helper's
//! tests at once) never share a bridge name or a subnet: slot `i` is claimed with an
//! exclusive lock file under /tmp, owns bridge `wtb<i>` and the /20 at 10.128.0.0 + i*4096
//! (inside 10.128.0.0/10), and is freed (bridge and nftables table deleted) on drop. Slots of
//! dead processes are reclaimed.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

const DIR: &str = "/tmp/wharf-test-nets";
const SLOTS: u32 = 1024;

/// One claimed slot.
#[derive(Debug)]
pub struct TestNet {
    /// Slot number.
    pub index: u32,
    /// Default bridge name (`--bridge`).
    pub bridge: String,
    /// Default bridge address (`--bip`): the first /24 of the slot.
    pub bip: String,
    /// Pool for user networks (`--default-address-pool`): the slot's /20 in /24s.
    pub pool: String,
    lock: PathBuf,
}

fn alive(pid: &str) -> bool {
    !pid.trim().is_empty() && PathBuf::from(format!("/proc/{}", pid.trim())).exists()
}

/// Deletes the slot's bridge and the daemon's nftables table (`wharf-<bridge>`).
fn delete_bridge(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stderr(std::process::Stdio::null())
        .status();
    for family in ["inet", "ip"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, &format!("wharf-{name}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl TestNet {
    /// Claims a free slot; panics when all are taken.
    pub fn claim() -> TestNet {
        fs::create_dir_all(DIR).expect("test net dir");
        let start = std::process::id() % SLOTS;
        for k in 0..SLOTS {
            let index = (start + k) % SLOTS;
            let lock = PathBuf::from(DIR).join(index.to_string());
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock);
            let mut f = match f {
                Ok(f) => f,
                Err(_) => {
                    // Reclaim a dead process's slot (one winner: rename is atomic).
                    let owner = fs::read_to_string(&lock).unwrap_or_default();
                    if alive(&owner) || owner.is_empty() {
                        continue;
                    }
                    let grave = lock.with_extension(format!("dead{}", std::process::id()));
                    if fs::rename(&lock, &grave).is_err() {
                        continue;
                    }
                    let _ = fs::remove_file(grave);
                    delete_bridge(&format!("wtb{index}"));
                    continue;
                }
            };
            let _ = write!(f, "{}", std::process::id());
            let base = (10u32 << 24) | (128 << 16) | (index << 12);
            let ip = |off: u32| {
                let a = base + off;
                format!(
                    "{}.{}.{}.{}",
                    a >> 24,
                    (a >> 16) & 255,
                    (a >> 8) & 255,
                    a & 255
                )
            };
            return TestNet {
                index,
                bridge: format!("wtb{index}"),
                bip: format!("{}/24", ip(1)),
                pool: format!("base={}/20,size=24", ip(0)),
                lock,
            };
        }
        panic!("no free test network slot under {DIR}");
    }

    /// The wharfd flags that put a daemon on this slot.
    pub fn daemon_flags(&self) -> Vec<String> {
        vec![
            "--bridge".into(),
            self.bridge.clone(),
            "--bip".into(),
            self.bip.clone(),
            "--default-address-pool".into(),
            self.pool.clone(),
        ]
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        delete_bridge(&self.bridge);
        let _ = fs::remove_file(&self.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_freed() {
        let a = TestNet::claim();
        let b = TestNet::claim();
        assert_ne!(a.index, b.index);
        assert_ne!(a.bip, b.bip);
        assert!(
            a.bip.starts_with("10.") && a.bip.ends_with(".1/24"),
            "{}",
            a.bip
        );
        let lock = a.lock.clone();
        drop(a);
        assert!(!lock.exists());
    }
}
