//! The volumes route table.

use http::Method;

/// A volumes endpoint; `String` fields are the volume name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    List,
    Create,
    Prune,
    Inspect(String),
    Remove(String),
}

/// Matches a volumes path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    use Endpoint as E;
    Some(match (m.clone(), segs) {
        (Method::GET, ["volumes"]) => E::List,
        (Method::POST, ["volumes", "create"]) => E::Create,
        (Method::POST, ["volumes", "prune"]) => E::Prune,
        (Method::GET, ["volumes", name]) => E::Inspect(name.to_string()),
        (Method::DELETE, ["volumes", name]) => E::Remove(name.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(route(&Method::GET, &["volumes"]), Some(Endpoint::List));
        assert_eq!(
            route(&Method::DELETE, &["volumes", "v1"]),
            Some(Endpoint::Remove("v1".into()))
        );
        assert_eq!(route(&Method::POST, &["volumes", "v1"]), None);
    }
}
