//! Fault injection (issue 14): bursts of run/create/start/stop/rm/exec/commit and network
//! create/connect/disconnect against a real wharfd, interrupted by `kill -9` of the daemon at a random moment and of random shims;
//! after each restart the API must match the host:
//! - every container not running has no process in its cgroup;
//! - no address is leased twice; every container listed can be removed (`rm -f` succeeds and
//!   the record is gone);
//! - with all removed: no process in container cgroups, no shim, no runtime state, no mount
//!   or netns pin below the daemon's roots; after `network prune` the daemon's nftables
//!   table has exactly the rules it started with.
//!
//! Seeded: the seed is printed; `WHARF_FAULT_SEED=<n>` replays it, `WHARF_FAULT_ROUNDS=<n>`
//! changes the number of rounds per test (the default run is 10 × 5 = 50 rounds; a soak sets
//! more, e.g. `WHARF_FAULT_ROUNDS=100`). Runs with and without live-restore.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::net::{assert_leases_unique, rules};
use common::reality::{self, assert_nothing_left, cgroup_procs};
use common::{seed, Daemon, Rng};

/// Names and states as the API lists them.
fn list(d: &Daemon) -> Vec<(String, String, String)> {
    let (st, body) = d.raw("GET", "/containers/json?all=1", b"");
    assert_eq!(
        st,
        200,
        "list: {}\n{}",
        String::from_utf8_lossy(&body),
        d.log()
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("list json");
    v.iter()
        .map(|c| {
            (
                c["Id"].as_str().unwrap_or_default().to_string(),
                c["Names"][0]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                c["State"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// One burst: the operations run concurrently, a fault hits somewhere in them.
fn burst(d: &mut Daemon, rng: &mut Rng, round: u64) -> String {
    let names: Vec<String> = (0..4).map(|i| format!("f{round}-{i}")).collect();
    // One running and one created container exist before the burst, so that every
    // operation has work to do.
    d.ok(&[
        "run",
        "-d",
        "--stop-timeout",
        "1",
        "--name",
        &names[0],
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "create",
        "--stop-timeout",
        "1",
        "--name",
        &names[1],
        "busybox",
        "sleep",
        "600",
    ]);
    let pick = |rng: &mut Rng| names[rng.below(names.len() as u64) as usize].clone();
    let net = format!("f{round}-net");
    let mut ops: Vec<Vec<String>> = Vec::new();
    for _ in 0..5 {
        let n = pick(rng);
        let op: Vec<&str> = match rng.below(11) {
            0 | 1 => vec![
                "run",
                "-d",
                "--stop-timeout",
                "1",
                "--name",
                &n,
                "busybox",
                "sleep",
                "600",
            ],
            2 => vec!["start", &n],
            3 => vec!["stop", "-t", "1", &n],
            4 => vec!["rm", "-f", &n],
            5 => vec!["exec", &n, "true"],
            6 => vec!["commit", &n],
            7 => vec!["network", "create", &net],
            8 => vec!["network", "connect", &net, &n],
            9 => vec!["network", "disconnect", &net, &n],
            _ => vec!["restart", "-t", "1", &n],
        };
        ops.push(op.into_iter().map(String::from).collect());
    }
    let children: Vec<Child> = ops
        .iter()
        .map(|op| {
            let args: Vec<&str> = op.iter().map(String::as_str).collect();
            d.docker_spawn(&args, Stdio::null())
        })
        .collect();
    let crash = rng.chance(75);
    let shim_kill = !crash || rng.chance(40);
    std::thread::sleep(Duration::from_millis(rng.below(900)));
    let mut what = format!("ops {ops:?}");
    if shim_kill {
        let live: Vec<String> = list(d)
            .into_iter()
            .filter(|c| c.2 == "running")
            .map(|c| c.0)
            .collect();
        if !live.is_empty() {
            let id = &live[rng.below(live.len() as u64) as usize];
            if let Some(pid) = reality::shim_pid(d, id) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                what.push_str(&format!(", killed shim of {id}"));
            }
        }
    }
    if crash {
        d.crash();
        what.push_str(", killed wharfd");
    }
    for c in children {
        let _ = c.wait_with_output();
    }
    if crash {
        d.start_again();
    }
    what
}

/// The invariants after a burst; removes everything.
fn check(d: &Daemon, ctx: &str, base_rules: &[serde_json::Value]) {
    assert_leases_unique(d, ctx);
    for (id, name, state) in list(d) {
        if !matches!(state.as_str(), "running" | "paused" | "restarting") {
            let procs = cgroup_procs(d, Some(&id));
            assert!(
                procs.is_empty(),
                "{ctx}: {name} is {state} but has processes {procs:?}\n{}",
                d.log()
            );
        }
    }
    for (id, name, state) in list(d) {
        let (st, body) = d.raw("DELETE", &format!("/containers/{id}?force=1"), b"");
        assert_eq!(
            st,
            204,
            "{ctx}: rm -f {name} ({state}): {}\n{}",
            String::from_utf8_lossy(&body),
            d.log()
        );
    }
    let left = list(d);
    assert!(left.is_empty(), "{ctx}: still listed after rm -f: {left:?}");
    // Shims exit once told to; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(reality::shims(d).is_empty() && cgroup_procs(d, None).is_empty())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_nothing_left(d, ctx);
    d.ok(&["network", "prune", "-f"]);
    assert_eq!(
        rules(d),
        base_rules,
        "{ctx}: rules left after network prune"
    );
}

fn run(live_restore: bool, salt: u64) {
    wharf_testutil::require_root!();
    let rounds = std::env::var("WHARF_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut rng = Rng(seed(salt));
    let mut d = Daemon::start(if live_restore {
        &["--live-restore"]
    } else {
        &[]
    });
    d.import_busybox();
    let base = rules(&d);
    let t = Instant::now();
    for round in 0..rounds {
        let what = burst(&mut d, &mut rng, round);
        check(&d, &format!("round {round} ({what})"), &base);
    }
    eprintln!("{rounds} rounds in {:?}", t.elapsed());
}

// Ten tests of five rounds rather than fewer long ones: each stays far inside the per-test
// limit on a loaded machine, and nextest runs them side by side.
macro_rules! fault_tests {
    ($($name:ident: $live_restore:expr, $salt:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run($live_restore, $salt);
            }
        )*
    };
}

fault_tests! {
    live_restore_1: true, 1;
    live_restore_2: true, 2;
    live_restore_3: true, 3;
    live_restore_4: true, 4;
    live_restore_5: true, 5;
    no_live_restore_1: false, 6;
    no_live_restore_2: false, 7;
    no_live_restore_3: false, 8;
    no_live_restore_4: false, 9;
    no_live_restore_5: false, 10;
}
