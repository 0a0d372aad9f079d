//! Healthchecks with Docker's semantics: the probe schedule and status state machine (pure, at
//! the top) and the per-container monitor task that runs each probe as an exec through the shim.
//!
//! Lifecycle: `start_health` when a container starts, is adopted at daemon start or unpaused;
//! `stop_health` when it exits, pauses or is removed (Docker skips probes while paused). Dropping
//! a monitor's stop sender is what stops it, so replacing a monitor also stops the old one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::watch;
use wharf_api_types::container::{ContainerConfig, Health, HealthConfig, HealthLogEntry};
use wharf_api_types::exec::ExecConfig;
use wharf_shim_proto::stream::parse_header;
use wharf_shim_proto::{Request, Response};

use super::attach::ExecRecord;
use super::lifecycle::now;
use super::shim::Shim;
use super::{lock, ContainerService};
use crate::server::error::ApiError;
use crate::state::{Container, Status};

/// No successful probe yet since the (re)start.
pub const STARTING: &str = "starting";
/// The last probe succeeded.
pub const HEALTHY: &str = "healthy";
/// `retries` probes in a row failed.
pub const UNHEALTHY: &str = "unhealthy";

/// Probe output kept per result.
const MAX_OUTPUT: usize = 4096;
/// Results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// How long a killed probe gets to be reaped before the monitor moves on.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// A container's healthcheck with Docker's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The command the exec runs (`CMD-SHELL` already wrapped in the shell).
    pub argv: Vec<String>,
    /// Between probes (from the end of one to the start of the next), and before the first.
    pub interval: Duration,
    /// A probe running longer is killed and counts as a failure.
    pub timeout: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: i64,
    /// Failures this soon after the start do not count.
    pub start_period: Duration,
    /// The interval while starting within the start period.
    pub start_interval: Duration,
}

/// Nanoseconds as Docker stores them, zero or less meaning "the default".
fn or_default(ns: i64, default: Duration) -> Duration {
    u64::try_from(ns)
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_nanos)
        .unwrap_or(default)
}

impl Probe {
    /// The probe of `cfg`; `None` without a healthcheck, for `["NONE"]`, and for test types
    /// Docker does not know (it ignores those too).
    pub fn of(cfg: &ContainerConfig) -> Option<Probe> {
        let h = cfg.healthcheck.as_ref()?;
        let (kind, rest) = h.test.as_deref()?.split_first()?;
        let argv = match kind.as_str() {
            "CMD" => rest.to_vec(),
            "CMD-SHELL" => {
                let shell = cfg
                    .shell
                    .as_ref()
                    .map(|s| s.0.clone())
                    .filter(|s| !s.is_empty());
                let mut argv = shell.unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                argv.extend(rest.iter().cloned());
                argv
            }
            _ => return None,
        };
        if argv.is_empty() {
            return None;
        }
        Some(Probe {
            argv,
            interval: or_default(h.interval, DEFAULT_INTERVAL),
            timeout: or_default(h.timeout, DEFAULT_TIMEOUT),
            retries: if h.retries > 0 {
                h.retries
            } else {
                DEFAULT_RETRIES
            },
            start_period: or_default(h.start_period, Duration::ZERO),
            start_interval: or_default(h.start_interval, DEFAULT_START_INTERVAL),
        })
    }

    /// The wait before the next probe, `since_start` after the container started.
    pub fn next_delay(&self, status: &str, since_start: Duration) -> Duration {
        if status == STARTING && since_start < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }

    /// Folds one result into `h`; returns the new status when it changed. `since_start` is
    /// when the probe began, relative to the container's start: while still starting, failures
    /// inside the start period do not count (a success ends the start period).
    pub fn record(
        &self,
        h: &mut Health,
        entry: HealthLogEntry,
        since_start: Duration,
    ) -> Option<String> {
        let old = h.status.clone();
        let success = entry.exit_code == 0;
        if h.log.len() >= MAX_LOG {
            h.log.drain(..=h.log.len() - MAX_LOG);
        }
        h.log.push(entry);
        if success {
            h.failing_streak = 0;
            h.status = HEALTHY.to_string();
        } else if !(h.status == STARTING && since_start < self.start_period) {
            h.failing_streak += 1;
            if h.failing_streak >= self.retries {
                h.status = UNHEALTHY.to_string();
            }
        }
        (h.status != old).then(|| h.status.clone())
    }
}

/// Docker's create-time checks: durations are unset or at least 1ms, retries not negative.
pub fn validate(h: Option<&HealthConfig>) -> Result<(), ApiError> {
    let Some(h) = h else { return Ok(()) };
    const MIN_NS: i64 = 1_000_000;
    for (field, ns) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if ns != 0 && ns < MIN_NS {
            return Err(ApiError::invalid(format!(
                "{field} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(ApiError::invalid(
            "Retries in Healthcheck cannot be negative",
        ));
    }
    Ok(())
}

/// The user's healthcheck over the image's: each unset field (empty test, zero value) comes
/// from the image, as in Docker.
pub fn merge(user: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    let (Some(u), Some(i)) = (user, image) else {
        return user.or(image).cloned();
    };
    let pick = |u: i64, i: i64| if u == 0 { i } else { u };
    Some(HealthConfig {
        test: u
            .test
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| i.test.clone()),
        interval: pick(u.interval, i.interval),
        timeout: pick(u.timeout, i.timeout),
        retries: pick(u.retries, i.retries),
        start_period: pick(u.start_period, i.start_period),
        start_interval: pick(u.start_interval, i.start_interval),
    })
}

/// The health a container has right after a (re)start or adoption: starting, no failures,
/// the old log kept; `None` when it has no probe.
pub fn at_start(cfg: &ContainerConfig, prev: Option<Health>) -> Option<Health> {
    Probe::of(cfg)?;
    let mut h = prev.unwrap_or_default();
    h.status = STARTING.to_string();
    h.failing_streak = 0;
    Some(h)
}

/// Probe output as Docker keeps it: stdout and stderr together, the first 4096 bytes, and
/// "..." when more was written.
#[derive(Debug, Default)]
struct Output {
    buf: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn push(&mut self, data: &[u8]) {
        let keep = data.len().min(MAX_OUTPUT - self.buf.len());
        self.buf.extend_from_slice(&data[..keep]);
        self.truncated |= keep < data.len();
    }

    fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.buf);
        if self.truncated {
            format!("{s}...")
        } else {
            s.into_owned()
        }
    }
}

/// Reads a non-tty exec stream (8-byte frame headers, then payload) until it ends.
async fn read_frames(mut s: UnixStream, out: &mut Output) {
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 8192];
    while s.read_exact(&mut header).await.is_ok() {
        let mut left = parse_header(&header).1 as usize;
        while left > 0 {
            match s.read(&mut buf[..left.min(8192)]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    out.push(&buf[..n]);
                    left -= n;
                }
            }
        }
    }
}

/// Go's `time.Duration` text ("1s", "1.5s", "500ms", "1m30s"), which Docker's timeout
/// message prints.
pub fn go_duration(d: Duration) -> String {
    const SEC: u128 = 1_000_000_000;
    let ns = d.as_nanos();
    let decimal = |n: u128, unit: u128| {
        let (whole, rest) = (n / unit, n % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        format!(
            "{whole}.{}",
            format!("{rest:0digits$}").trim_end_matches('0')
        )
    };
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", decimal(n, 1_000)),
        n if n < SEC => format!("{}ms", decimal(n, 1_000_000)),
        n => {
            let (h, m) = (n / (3600 * SEC), n / (60 * SEC) % 60);
            let mut s = String::new();
            if h > 0 {
                s.push_str(&format!("{h}h"));
            }
            if h > 0 || m > 0 {
                s.push_str(&format!("{m}m"));
            }
            format!("{s}{}s", decimal(n % (60 * SEC), SEC))
        }
    }
}

fn parse_time(rfc: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(rfc)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Kills a probe that is still running and waits (bounded) for the shim to reap it, so dying
/// probes do not pile up. The shim is asked first because it reaps the probe: while it says
/// the exec runs, its pid cannot have been reused.
async fn kill_probe(shim: &Shim, exec_id: &str, pid: i32) {
    let state = |wait| Request::ExecState {
        exec_id: exec_id.to_string(),
        wait,
    };
    if pid > 0
        && matches!(
            shim.call(&state(false)).await,
            Ok(Response::ExecState { running: true, .. })
        )
    {
        let sig = nix::sys::signal::Signal::SIGKILL;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    let _ = tokio::time::timeout(KILL_GRACE, shim.call(&state(true))).await;
}

impl ContainerService {
    /// Starts (or replaces) the monitor of a running container that has a healthcheck.
    pub(super) fn start_health(self: &Arc<Self>, id: &str) {
        let Ok(c) = self.snapshot(id) else { return };
        let Some(probe) = Probe::of(&c.config).filter(|_| c.state.status == Status::Running) else {
            return;
        };
        let (tx, rx) = watch::channel(());
        lock(&self.health).insert(id.to_string(), tx);
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move { me.monitor(&id, &probe, rx).await });
    }

    /// Stops a container's monitor, killing a probe in flight.
    pub(super) fn stop_health(&self, id: &str) {
        lock(&self.health).remove(id);
    }

    async fn monitor(&self, id: &str, probe: &Probe, mut stop: watch::Receiver<()>) {
        loop {
            let Ok(c) = self.snapshot(id) else { return };
            let started = parse_time(&c.state.started_at).unwrap_or_else(Utc::now);
            let status = c
                .state
                .health
                .as_ref()
                .map(|h| h.status.clone())
                .unwrap_or_default();
            let delay =
                probe.next_delay(&status, (Utc::now() - started).to_std().unwrap_or_default());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                // Only an error: the sender never sends, it is dropped.
                _ = stop.changed() => return,
            }
            let begun = Utc::now();
            let Some(entry) = self.run_probe(&c, probe, &mut stop).await else {
                return;
            };
            let since_start = (begun - started).to_std().unwrap_or_default();
            let Ok(h) = self.get(id) else { return };
            // Checked under the record's lock: a stop that came first wins over this result.
            let changed = self.update(&h, |c| match stop.has_changed() {
                Err(_) => None,
                Ok(_) => Some(
                    probe
                        .record(
                            c.state.health.get_or_insert_with(Health::default),
                            entry,
                            since_start,
                        )
                        .map(|s| (s, c.clone())),
                ),
            });
            match changed {
                Ok(Some(Some((status, c)))) => {
                    self.emit(&c, &format!("health_status: {status}"), &[])
                }
                Ok(Some(None)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// One probe; `None` when the monitor was stopped meanwhile. Errors starting the exec are
    /// failed results, as in Docker.
    async fn run_probe(
        &self,
        c: &Container,
        probe: &Probe,
        stop: &mut watch::Receiver<()>,
    ) -> Option<HealthLogEntry> {
        let start = now();
        let (exit_code, output) = match self.probe_exec(c, probe, stop).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => (-1, e.message),
        };
        Some(HealthLogEntry {
            start,
            end: now(),
            exit_code,
            output,
        })
    }

    /// Runs the probe as an exec with Docker's events; (exit code, output), or `None` if stopped.
    async fn probe_exec(
        &self,
        c: &Container,
        probe: &Probe,
        stop: &mut watch::Receiver<()>,
    ) -> Result<Option<(i64, String)>, ApiError> {
        let exec_id = crate::ids::new_id();
        let config = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: Some(probe.argv.clone()),
            ..ExecConfig::default()
        };
        let rec = ExecRecord {
            id: exec_id.clone(),
            container_id: c.id.clone(),
            config,
            started: false,
            pid: 0,
            exit_code: None,
            oom_base: None,
        };
        let cmd = probe.argv.join(" ");
        let exec_attr = ("execID", exec_id.clone());
        self.emit(
            c,
            &format!("exec_create: {cmd}"),
            std::slice::from_ref(&exec_attr),
        );
        let process = self.exec_process(&rec).await?;
        let shim = self.shim(&c.id);
        let req = Request::Exec {
            exec_id: exec_id.clone(),
            process,
            stdin: false,
            stdout: true,
            stderr: true,
            detach: false,
        };
        let (resp, stream) = shim.open(&req).await.map_err(|e| ApiError::from_err(&e))?;
        let pid = match resp {
            Response::Started { pid } => pid,
            _ => 0,
        };
        self.emit(
            c,
            &format!("exec_start: {cmd}"),
            std::slice::from_ref(&exec_attr),
        );
        let mut out = Output::default();
        let finished = tokio::select! {
            r = tokio::time::timeout(probe.timeout, read_frames(stream, &mut out)) => r.is_ok(),
            _ = stop.changed() => {
                kill_probe(&shim, &exec_id, pid).await;
                return Ok(None);
            }
        };
        let (code, output) = if finished {
            match shim
                .call(&Request::ExecState {
                    exec_id: exec_id.clone(),
                    wait: true,
                })
                .await
            {
                Ok(Response::ExecState {
                    exit_code: Some(code),
                    ..
                }) => (i64::from(code), out.text()),
                _ => {
                    return Err(ApiError::internal(format!(
                        "healthcheck for container {} has no exit code",
                        c.id
                    )))
                }
            }
        } else {
            kill_probe(&shim, &exec_id, pid).await;
            let limit = go_duration(probe.timeout);
            let text = out.text();
            let msg = if text.is_empty() {
                format!("Health check exceeded timeout ({limit})")
            } else {
                format!("Health check exceeded timeout ({limit}): {text}")
            };
            (-1, msg)
        };
        self.emit(c, "exec_die", &[exec_attr, ("exitCode", code.to_string())]);
        Ok(Some((code, output)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_api_types::strslice::StrSlice;

    fn cfg(test: &[&str], f: impl FnOnce(&mut HealthConfig)) -> ContainerConfig {
        let mut h = HealthConfig {
            test: Some(test.iter().map(|s| s.to_string()).collect()),
            ..HealthConfig::default()
        };
        f(&mut h);
        ContainerConfig {
            healthcheck: Some(h),
            ..ContainerConfig::default()
        }
    }

    fn entry(exit_code: i64) -> HealthLogEntry {
        HealthLogEntry {
            exit_code,
            output: format!("exit {exit_code}"),
            ..HealthLogEntry::default()
        }
    }

    fn starting() -> Health {
        Health {
            status: STARTING.into(),
            ..Health::default()
        }
    }

    #[test]
    fn test_forms_and_defaults() {
        assert_eq!(Probe::of(&ContainerConfig::default()), None);
        assert_eq!(Probe::of(&cfg(&["NONE"], |_| {})), None);
        assert_eq!(Probe::of(&cfg(&["BOGUS", "x"], |_| {})), None);
        assert_eq!(Probe::of(&cfg(&[], |_| {})), None);
        assert_eq!(Probe::of(&cfg(&["CMD"], |_| {})), None);
        let p = Probe::of(&cfg(&["CMD", "curl", "-f", "x"], |_| {})).expect("cmd");
        assert_eq!(p.argv, ["curl", "-f", "x"]);
        assert_eq!(
            (p.interval, p.timeout, p.retries),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3)
        );
        assert_eq!(
            (p.start_period, p.start_interval),
            (Duration::ZERO, DEFAULT_START_INTERVAL)
        );
        let p = Probe::of(&cfg(&["CMD-SHELL", "true"], |h| {
            h.interval = 1_000_000_000;
            h.retries = 2;
            h.start_period = 5_000_000_000;
        }))
        .expect("shell");
        assert_eq!(p.argv, ["/bin/sh", "-c", "true"]);
        assert_eq!(
            (p.interval, p.retries, p.start_period),
            (Duration::from_secs(1), 2, Duration::from_secs(5))
        );
        let mut c = cfg(&["CMD-SHELL", "exit 0"], |_| {});
        c.shell = Some(StrSlice(vec!["/bin/bash".into(), "-ec".into()]));
        assert_eq!(
            Probe::of(&c).expect("custom shell").argv,
            ["/bin/bash", "-ec", "exit 0"]
        );
    }

    #[test]
    fn failures_count_up_to_retries_and_success_resets() {
        let p = Probe::of(&cfg(&["CMD", "x"], |h| h.retries = 2)).expect("probe");
        let mut h = starting();
        assert_eq!(p.record(&mut h, entry(1), Duration::ZERO), None);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        assert_eq!(
            p.record(&mut h, entry(1), Duration::ZERO).as_deref(),
            Some(UNHEALTHY)
        );
        assert_eq!(p.record(&mut h, entry(2), Duration::ZERO), None);
        assert_eq!(h.failing_streak, 3);
        assert_eq!(
            p.record(&mut h, entry(0), Duration::ZERO).as_deref(),
            Some(HEALTHY)
        );
        assert_eq!(h.failing_streak, 0);
        assert_eq!(p.record(&mut h, entry(1), Duration::ZERO), None);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 1));
    }

    #[test]
    fn start_period_forgives_failures_until_the_first_success() {
        let p = Probe::of(&cfg(&["CMD", "x"], |h| {
            h.retries = 1;
            h.start_period = 10_000_000_000;
        }))
        .expect("probe");
        let mut h = starting();
        assert_eq!(p.record(&mut h, entry(1), Duration::from_secs(3)), None);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(
            p.record(&mut h, entry(0), Duration::from_secs(4))
                .as_deref(),
            Some(HEALTHY)
        );
        // The success ended the start period.
        assert_eq!(
            p.record(&mut h, entry(1), Duration::from_secs(5))
                .as_deref(),
            Some(UNHEALTHY)
        );
        let mut h = starting();
        assert_eq!(
            p.record(&mut h, entry(1), Duration::from_secs(11))
                .as_deref(),
            Some(UNHEALTHY)
        );
    }

    #[test]
    fn log_keeps_the_last_five() {
        let p = Probe::of(&cfg(&["CMD", "x"], |_| {})).expect("probe");
        let mut h = starting();
        for code in 0..8 {
            p.record(&mut h, entry(code), Duration::ZERO);
        }
        let codes: Vec<i64> = h.log.iter().map(|e| e.exit_code).collect();
        assert_eq!(codes, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn start_interval_applies_while_starting_in_the_start_period() {
        let p = Probe::of(&cfg(&["CMD", "x"], |h| h.start_period = 60_000_000_000)).expect("probe");
        assert_eq!(
            p.next_delay(STARTING, Duration::from_secs(1)),
            DEFAULT_START_INTERVAL
        );
        assert_eq!(
            p.next_delay(HEALTHY, Duration::from_secs(1)),
            DEFAULT_INTERVAL
        );
        assert_eq!(
            p.next_delay(STARTING, Duration::from_secs(61)),
            DEFAULT_INTERVAL
        );
        let no_period = Probe::of(&cfg(&["CMD", "x"], |_| {})).expect("probe");
        assert_eq!(
            no_period.next_delay(STARTING, Duration::ZERO),
            DEFAULT_INTERVAL
        );
    }

    #[test]
    fn create_checks_and_image_merge() {
        let hc = |f: fn(&mut HealthConfig)| {
            let mut h = HealthConfig::default();
            f(&mut h);
            h
        };
        assert!(validate(None).is_ok());
        assert!(validate(Some(&hc(|h| h.interval = 1_000_000))).is_ok());
        let e = validate(Some(&hc(|h| h.timeout = 999))).expect_err("too short");
        assert_eq!(e.message, "Timeout in Healthcheck cannot be less than 1ms");
        assert!(validate(Some(&hc(|h| h.retries = -1))).is_err());
        assert!(validate(Some(&hc(|h| h.start_interval = -5))).is_err());
        let image = HealthConfig {
            test: Some(vec!["CMD".into(), "probe".into()]),
            interval: 5,
            retries: 4,
            ..HealthConfig::default()
        };
        let user = HealthConfig {
            interval: 7,
            ..HealthConfig::default()
        };
        let m = merge(Some(&user), Some(&image)).expect("merged");
        assert_eq!((m.test, m.interval, m.retries), (image.test.clone(), 7, 4));
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        };
        assert_eq!(
            merge(Some(&none), Some(&image)).and_then(|h| h.test),
            none.test
        );
        assert_eq!(merge(None, Some(&image)), Some(image.clone()));
        assert_eq!(merge(None, None), None);
    }

    #[test]
    fn restart_resets_status_and_streak_but_keeps_the_log() {
        let c = cfg(&["CMD", "x"], |_| {});
        let prev = Health {
            status: UNHEALTHY.into(),
            failing_streak: 4,
            log: vec![entry(1)],
        };
        let h = at_start(&c, Some(prev)).expect("health");
        assert_eq!(
            (h.status.as_str(), h.failing_streak, h.log.len()),
            (STARTING, 0, 1)
        );
        assert_eq!(at_start(&cfg(&["NONE"], |_| {}), None), None);
    }

    #[test]
    fn output_is_truncated_with_an_ellipsis() {
        let mut o = Output::default();
        o.push(b"ok\n");
        assert_eq!(o.text(), "ok\n");
        o.push(&[b'x'; MAX_OUTPUT]);
        let t = o.text();
        assert_eq!(t.len(), MAX_OUTPUT + 3);
        assert!(t.starts_with("ok\nxx") && t.ends_with("x..."));
    }

    #[tokio::test]
    async fn frames_are_demultiplexed() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for (stream, data) in [(1u8, &b"out "[..]), (2, b"err")] {
                b.write_all(&wharf_shim_proto::stream::frame_header(
                    stream,
                    data.len() as u32,
                ))
                .await
                .expect("header");
                b.write_all(data).await.expect("data");
            }
        });
        let mut out = Output::default();
        read_frames(a, &mut out).await;
        writer.await.expect("writer");
        assert_eq!(out.text(), "out err");
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(ms(500)), "500ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(ms(1000)), "1s");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(90_000)), "1m30s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_nanos(42)), "42ns");
    }
}
