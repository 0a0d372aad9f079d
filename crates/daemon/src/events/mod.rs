//! The event bus behind `GET /events`: a bounded backlog for `since`, live fan-out via
//! broadcast, and Docker's filters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::broadcast;
use wharf_api_types::system::{EventActor, EventMessage};
use wharf_api_types::Filters;

/// Events kept for `since` queries.
const BACKLOG: usize = 1024;

/// Filter names `/events` accepts.
pub const EVENT_FILTERS: &[&str] = &[
    "container",
    "event",
    "image",
    "label",
    "type",
    "daemon",
    "scope",
    "network",
    "volume",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
];

/// Publishes and replays events.
pub struct Events {
    tx: broadcast::Sender<EventMessage>,
    backlog: Mutex<VecDeque<EventMessage>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(256).0,
            backlog: Mutex::new(VecDeque::with_capacity(BACKLOG)),
        }
    }
}

impl Events {
    /// Records and broadcasts one event of `kind` ("container", "image", ...).
    pub fn publish(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let legacy = kind == "container" || kind == "image";
        let ev = EventMessage {
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes: attributes.clone(),
            },
            scope: "local".to_string(),
            time: now.timestamp(),
            time_nano: nanos,
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: (kind == "container")
                .then(|| attributes.get("image").cloned())
                .flatten(),
        };
        let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() == BACKLOG {
            b.pop_front();
        }
        b.push_back(ev.clone());
        // Sent under the backlog lock so a subscriber sees each event exactly once.
        let _ = self.tx.send(ev);
    }

    /// The backlog from `since_nanos` on, and a receiver for what comes after.
    pub fn subscribe(
        &self,
        since_nanos: Option<i64>,
    ) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        let past = match since_nanos {
            Some(s) => b.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        (past, self.tx.subscribe())
    }

    /// Live subscribers (for `/info`).
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Whether `ev` passes Docker's event filters.
pub fn matches(f: &Filters, ev: &EventMessage) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    f.matches_any("type", |v| v == ev.kind)
        && f.matches_any("event", |v| {
            v == ev.action || ev.action.split(':').next() == Some(v)
        })
        && f.matches_any("container", |v| {
            ev.kind == "container" && (ev.actor.id.starts_with(v) || attr("name") == v)
        })
        && f.matches_any("image", |v| {
            (ev.kind == "image" && (ev.actor.id == v || attr("name") == v)) || attr("image") == v
        })
        && f.matches_labels(&ev.actor.attributes)
        && f.matches_any("scope", |v| v == ev.scope)
}

/// Parses Docker's `since`/`until` values: unix seconds with optional fraction, or RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut frac = frac.to_string();
    if !frac.bytes().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    while frac.len() < 9 {
        frac.push('0');
    }
    secs.checked_mul(1_000_000_000)?
        .checked_add(frac.parse::<i64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replay_and_filter() {
        let ev = Events::default();
        let (_, mut rx) = ev.subscribe(None);
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        attrs.insert("image".to_string(), "busybox".to_string());
        ev.publish("container", "start", "abc", attrs);
        let got = rx.try_recv().expect("live");
        assert_eq!(got.action, "start");
        assert_eq!(got.from.as_deref(), Some("busybox"));
        let (past, _) = ev.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        let f = Filters::parse(r#"{"container":["web"],"event":["start"]}"#).expect("f");
        assert!(matches(&f, &got));
        let f = Filters::parse(r#"{"type":["image"]}"#).expect("f");
        assert!(!matches(&f, &got));
    }

    #[test]
    fn time_formats() {
        assert_eq!(parse_time("10"), Some(10_000_000_000));
        assert_eq!(parse_time("1.5"), Some(1_500_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:02Z"), Some(2_000_000_000));
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("1.x"), None);
    }
}
