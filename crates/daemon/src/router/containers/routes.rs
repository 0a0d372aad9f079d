//! The containers and exec route table.

use http::Method;

/// A containers/exec endpoint; `String` fields are path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Create,
    List,
    Prune,
    Inspect(String),
    Top(String),
    Logs(String),
    Changes(String),
    Export(String),
    Stats(String),
    Resize(String),
    Start(String),
    Stop(String),
    Restart(String),
    Kill(String),
    Update(String),
    Rename(String),
    Pause(String),
    Unpause(String),
    Attach(String),
    Wait(String),
    Remove(String),
    ArchiveStat(String),
    ArchiveGet(String),
    ArchivePut(String),
    ExecCreate(String),
    ExecStart(String),
    ExecResize(String),
    ExecInspect(String),
}

/// Matches a containers/exec path.
pub fn route(m: &Method, segs: &[&str]) -> Option<Endpoint> {
    use Endpoint as E;
    let (get, post) = (*m == Method::GET, *m == Method::POST);
    let id = |s: &str| s.to_string();
    Some(match segs {
        ["containers", "create"] if post => E::Create,
        ["containers", "json"] if get => E::List,
        ["containers", "prune"] if post => E::Prune,
        ["containers", c] if *m == Method::DELETE => E::Remove(id(c)),
        // `rm --link /parent/alias`: the link's name has a slash of its own.
        ["containers", parent, alias] if *m == Method::DELETE => {
            E::Remove(format!("/{parent}/{alias}"))
        }
        ["containers", c, verb] => match (m.clone(), *verb) {
            (Method::GET, "json") => E::Inspect(id(c)),
            (Method::GET, "top") => E::Top(id(c)),
            (Method::GET, "logs") => E::Logs(id(c)),
            (Method::GET, "changes") => E::Changes(id(c)),
            (Method::GET, "export") => E::Export(id(c)),
            (Method::GET, "stats") => E::Stats(id(c)),
            (Method::POST, "resize") => E::Resize(id(c)),
            (Method::POST, "start") => E::Start(id(c)),
            (Method::POST, "stop") => E::Stop(id(c)),
            (Method::POST, "restart") => E::Restart(id(c)),
            (Method::POST, "kill") => E::Kill(id(c)),
            (Method::POST, "update") => E::Update(id(c)),
            (Method::POST, "rename") => E::Rename(id(c)),
            (Method::POST, "pause") => E::Pause(id(c)),
            (Method::POST, "unpause") => E::Unpause(id(c)),
            (Method::POST, "attach") => E::Attach(id(c)),
            (Method::POST, "wait") => E::Wait(id(c)),
            (Method::POST, "exec") => E::ExecCreate(id(c)),
            (Method::HEAD, "archive") => E::ArchiveStat(id(c)),
            (Method::GET, "archive") => E::ArchiveGet(id(c)),
            (Method::PUT, "archive") => E::ArchivePut(id(c)),
            _ => return None,
        },
        ["exec", e, "start"] if post => E::ExecStart(id(e)),
        ["exec", e, "resize"] if post => E::ExecResize(id(e)),
        ["exec", e, "json"] if get => E::ExecInspect(id(e)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            route(&Method::POST, &["containers", "create"]),
            Some(Endpoint::Create)
        );
        assert_eq!(
            route(&Method::DELETE, &["containers", "abc"]),
            Some(Endpoint::Remove("abc".into()))
        );
        assert_eq!(
            route(&Method::HEAD, &["containers", "abc", "archive"]),
            Some(Endpoint::ArchiveStat("abc".into()))
        );
        assert_eq!(
            route(&Method::POST, &["exec", "e", "start"]),
            Some(Endpoint::ExecStart("e".into()))
        );
        assert_eq!(route(&Method::GET, &["containers", "abc", "start"]), None);
        assert_eq!(route(&Method::GET, &["containers"]), None);
    }
}
