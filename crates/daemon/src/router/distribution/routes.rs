//! The registry route table.

use http::Method;

/// A registry endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /auth`.
    Auth,
}

/// Matches a registry path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    match segs {
        ["auth"] if *m == Method::POST => Some(Endpoint::Auth),
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
    }
}
