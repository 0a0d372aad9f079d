//! The networks route table.

use http::Method;

/// A networks endpoint; `String` fields are path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    List,
    Create,
    Prune,
    Inspect(String),
    Remove(String),
    Connect(String),
    Disconnect(String),
}

/// Matches a networks path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    let (get, post) = (*m == Method::GET, *m == Method::POST);
    Some(match segs {
        ["networks"] if get => Endpoint::List,
        ["networks", "create"] if post => Endpoint::Create,
        ["networks", "prune"] if post => Endpoint::Prune,
        ["networks", id] if get => Endpoint::Inspect(id.to_string()),
        ["networks", id] if *m == Method::DELETE => Endpoint::Remove(id.to_string()),
        ["networks", id, "connect"] if post => Endpoint::Connect(id.to_string()),
        ["networks", id, "disconnect"] if post => Endpoint::Disconnect(id.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(route(&Method::GET, &["networks"]), Some(Endpoint::List));
        assert_eq!(
            route(&Method::POST, &["networks", "create"]),
            Some(Endpoint::Create)
        );
        assert_eq!(
            route(&Method::POST, &["networks", "n1", "connect"]),
            Some(Endpoint::Connect("n1".into()))
        );
        assert_eq!(
            route(&Method::DELETE, &["networks", "n1"]),
            Some(Endpoint::Remove("n1".into()))
        );
        assert_eq!(route(&Method::PUT, &["networks"]), None);
    }
}
