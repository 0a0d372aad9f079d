//! The images route table. Image names contain slashes, so the name is everything between
//! `/images/` and the verb.

use http::Method;

/// An images endpoint; `String` fields are the image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    List,
    Create,
    Load,
    Prune,
    SaveMany,
    Commit,
    DiskUsage,
    Inspect(String),
    History(String),
    Tag(String),
    Remove(String),
    Save(String),
    Push(String),
}

/// Matches an images path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    use Endpoint as E;
    let (get, post) = (*m == Method::GET, *m == Method::POST);
    Some(match segs {
        ["images", "json"] if get => E::List,
        ["images", "create"] if post => E::Create,
        ["images", "load"] if post => E::Load,
        ["images", "prune"] if post => E::Prune,
        ["images", "get"] if get => E::SaveMany,
        ["commit"] if post => E::Commit,
        ["system", "df"] if get => E::DiskUsage,
        ["images", name @ ..] if *m == Method::DELETE && !name.is_empty() => {
            E::Remove(name.join("/"))
        }
        ["images", name @ .., verb] if name.len() >= 1 => {
            let n = name.join("/");
            match (m.clone(), *verb) {
                (Method::GET, "json") => E::Inspect(n),
                (Method::GET, "history") => E::History(n),
                (Method::GET, "get") => E::Save(n),
                (Method::POST, "tag") => E::Tag(n),
                (Method::POST, "push") => E::Push(n),
                _ => return None,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes() {
        assert_eq!(
            route(
                &Method::GET,
                &["images", "docker.io", "library", "busybox:1", "json"]
            ),
            Some(Endpoint::Inspect("docker.io/library/busybox:1".into()))
        );
        assert_eq!(
            route(&Method::DELETE, &["images", "a", "b"]),
            Some(Endpoint::Remove("a/b".into()))
        );
        assert_eq!(
            route(&Method::POST, &["images", "busybox", "tag"]),
            Some(Endpoint::Tag("busybox".into()))
        );
        assert_eq!(
            route(&Method::GET, &["images", "json"]),
            Some(Endpoint::List)
        );
        assert_eq!(route(&Method::GET, &["images", "x", "bogus"]), None);
    }
}
