//! The system route table.

use http::Method;

/// A system endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// GET/HEAD /_ping
    Ping { head: bool },
    /// GET /version
    Version,
    /// GET /info
    Info,
    /// GET /events
    Events,
}

/// Matches a system path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    let get = *m == Method::GET;
    Some(match segs {
        ["_ping"] if get || *m == Method::HEAD => Endpoint::Ping {
            head: *m == Method::HEAD,
        },
        ["version"] if get => Endpoint::Version,
        ["info"] if get => Endpoint::Info,
        ["events"] if get => Endpoint::Events,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            route(&Method::HEAD, &["_ping"]),
            Some(Endpoint::Ping { head: true })
        );
        assert_eq!(route(&Method::GET, &["events"]), Some(Endpoint::Events));
        assert_eq!(route(&Method::POST, &["info"]), None);
    }
}
