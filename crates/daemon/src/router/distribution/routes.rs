//! The registry route table.

use http::Method;

/// A registry endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /auth`.
    Auth,
    /// `GET /distribution/{name}/json`.
    Inspect(String),
}

/// Matches a registry path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    match segs {
        ["auth"] if *m == Method::POST => Some(Endpoint::Auth),
        ["distribution", name @ .., "json"] if *m == Method::GET && !name.is_empty() => {
            Some(Endpoint::Inspect(name.join("/")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_post_only() {
        assert_eq!(route(&Method::POST, &["auth"]), Some(Endpoint::Auth));
        assert_eq!(route(&Method::GET, &["auth"]), None);
        assert_eq!(
            route(
                &Method::GET,
                &["distribution", "h:5000", "a", "b:1", "json"]
            ),
            Some(Endpoint::Inspect("h:5000/a/b:1".into()))
        );
    }
}
