//! The build route table.

use http::Method;

/// A build endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Build,
    Prune,
    Cancel,
}

/// Matches a build path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    if *m != Method::POST {
        return None;
    }
    Some(match segs {
        ["build"] => Endpoint::Build,
        ["build", "prune"] => Endpoint::Prune,
        ["build", "cancel"] => Endpoint::Cancel,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(route(&Method::POST, &["build"]), Some(Endpoint::Build));
        assert_eq!(
            route(&Method::POST, &["build", "prune"]),
            Some(Endpoint::Prune)
        );
        assert_eq!(route(&Method::GET, &["build"]), None);
    }
}
