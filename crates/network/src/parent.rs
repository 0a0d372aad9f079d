//! The macvlan and ipvlan drivers' options, checked as Docker checks them: the parent
//! interface (`-o parent=`; none gives a dummy of Wharf's, `eth0.10` a VLAN link Wharf makes
//! when missing) and the modes (`-o macvlan_mode=`, `-o ipvlan_mode=`, `-o ipvlan_flag=`).

use crate::model::{DriverKind, Network};
use crate::sys::LinkKind;
use crate::NetworkError;

/// `-o parent=`.
pub const PARENT: &str = "parent";

/// The sub-interface `n`'s endpoints get (parent index left 0) and whether it is ipvlan l3
/// (routed: its default route goes out of the interface, no gateway needed).
pub fn link_kind(n: &Network) -> Result<(LinkKind, bool), NetworkError> {
    let opt = |k: &str| n.options.get(k).map(String::as_str).unwrap_or("");
    let bad = |m: String| Err(NetworkError::Invalid(m));
    match n.driver {
        DriverKind::Ipvlan => {
            let mode = match opt("ipvlan_mode") {
                "" | "l2" => 0,
                "l3" => 1,
                "l3s" => 2,
                m => {
                    return bad(format!(
                        "requested ipvlan mode '{m}' is not valid, 'l2' mode is the ipvlan driver default"
                    ))
                }
            };
            let flags = match opt("ipvlan_flag") {
                "" | "bridge" => 0,
                "private" => 1,
                "vepa" => 2,
                f => {
                    return bad(format!(
                        "requested ipvlan flag '{f}' is not valid, 'bridge' is the ipvlan driver default"
                    ))
                }
            };
            let kind = LinkKind::Ipvlan {
                parent: 0,
                mode,
                flags,
            };
            Ok((kind, mode != 0))
        }
        _ => {
            let mode = match opt("macvlan_mode") {
                "" | "bridge" => 4,
                "private" => 1,
                "vepa" => 2,
                "passthru" => 8,
                m => {
                    return bad(format!(
                        "requested macvlan mode '{m}' is not valid, 'bridge' mode is the macvlan driver default"
                    ))
                }
            };
            Ok((LinkKind::Macvlan { parent: 0, mode }, false))
        }
    }
}

/// The dummy parent of a network given none: `dm-<id>` (macvlan), `di-<id>` (ipvlan).
pub fn dummy_name(driver: DriverKind, id: &str) -> String {
    let prefix = if driver == DriverKind::Ipvlan {
        "di"
    } else {
        "dm"
    };
    format!("{prefix}-{}", &id[..12.min(id.len())])
}

/// `eth0.10` as (`eth0`, 10), with Docker's errors for a parent that does not exist and is
/// no VLAN name either.
pub fn vlan_of(parent: &str) -> Result<(&str, u16), NetworkError> {
    let Some((trunk, id)) = parent.rsplit_once('.') else {
        return Err(NetworkError::Invalid(format!(
            "invalid subinterface vlan name {parent}, example formatting is eth0.10"
        )));
    };
    let id: u32 = id.parse().map_err(|_| {
        NetworkError::Invalid(format!(
            "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received {parent}"
        ))
    })?;
    match u16::try_from(id) {
        Ok(id @ 1..=4094) if !trunk.is_empty() => Ok((trunk, id)),
        _ => Err(NetworkError::Invalid(format!(
            "vlan id must be between 1-4094, received: {id}"
        ))),
    }
}

/// Docker's checks of a new macvlan/ipvlan network against the others on the same parent:
/// they may share it, unless one is in passthru mode.
pub fn check_sharing(n: &Network, others: &[Network]) -> Result<(), NetworkError> {
    let passthru =
        |n: &Network| n.options.get("macvlan_mode").map(String::as_str) == Some("passthru");
    for o in others
        .iter()
        .filter(|o| o.driver.on_parent() && o.parent == n.parent && o.id != n.id)
    {
        if passthru(n) {
            return Err(NetworkError::Forbidden(format!(
                "cannot use mode passthru, macvlan network {} is already using parent interface {}",
                o.id, n.parent
            )));
        }
        if passthru(o) {
            return Err(NetworkError::Forbidden(format!(
                "macvlan network {} is already using parent interface {} in mode passthru",
                o.id, n.parent
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(driver: DriverKind, opts: &[(&str, &str)]) -> Network {
        let mut n = crate::predefined("n", driver);
        n.options = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        n
    }

    #[test]
    fn modes_and_dockers_errors() {
        let k = |n: &Network| link_kind(n).map_err(|e| e.to_string());
        assert_eq!(
            k(&net(DriverKind::Macvlan, &[])),
            Ok((LinkKind::Macvlan { parent: 0, mode: 4 }, false))
        );
        assert_eq!(
            k(&net(DriverKind::Macvlan, &[("macvlan_mode", "vepa")])),
            Ok((LinkKind::Macvlan { parent: 0, mode: 2 }, false))
        );
        assert_eq!(
            k(&net(
                DriverKind::Ipvlan,
                &[("ipvlan_mode", "l3"), ("ipvlan_flag", "private")]
            )),
            Ok((
                LinkKind::Ipvlan {
                    parent: 0,
                    mode: 1,
                    flags: 1
                },
                true
            ))
        );
        assert_eq!(
            k(&net(DriverKind::Macvlan, &[("macvlan_mode", "x")])),
            Err("requested macvlan mode 'x' is not valid, 'bridge' mode is the macvlan driver default".into())
        );
        assert!(k(&net(DriverKind::Ipvlan, &[("ipvlan_flag", "y")]))
            .is_err_and(|e| e.contains("'bridge' is the ipvlan driver default")));
    }

    #[test]
    fn vlan_names() {
        assert_eq!(
            vlan_of("eth0.10").map_err(|e| e.to_string()),
            Ok(("eth0", 10))
        );
        assert_eq!(
            vlan_of("bond0.1.20").map_err(|e| e.to_string()),
            Ok(("bond0.1", 20))
        );
        for (bad, msg) in [
            ("eth9", "invalid subinterface vlan name eth9"),
            ("eth0.x", "required interface name format"),
            ("eth0.0", "vlan id must be between 1-4094, received: 0"),
            (
                "eth0.4095",
                "vlan id must be between 1-4094, received: 4095",
            ),
        ] {
            let e = vlan_of(bad).map(|_| ()).map_err(|e| e.to_string());
            assert!(e.as_ref().is_err_and(|e| e.contains(msg)), "{bad}: {e:?}");
        }
        assert_eq!(
            dummy_name(DriverKind::Ipvlan, "0123456789abcdef"),
            "di-0123456789ab"
        );
    }

    #[test]
    fn parents_are_shared_except_in_passthru() {
        let mut a = net(DriverKind::Macvlan, &[]);
        a.parent = "eth0".into();
        let mut b = net(DriverKind::Macvlan, &[]);
        b.parent = "eth0".into();
        assert!(check_sharing(&b, std::slice::from_ref(&a)).is_ok());
        let mut p = net(DriverKind::Macvlan, &[("macvlan_mode", "passthru")]);
        p.parent = "eth0".into();
        assert!(check_sharing(&p, std::slice::from_ref(&a))
            .is_err_and(|e| e.to_string().starts_with("cannot use mode passthru")));
        assert!(check_sharing(&b, std::slice::from_ref(&p))
            .is_err_and(|e| e.to_string().ends_with("in mode passthru")));
        b.parent = "eth1".into();
        assert!(check_sharing(&b, std::slice::from_ref(&p)).is_ok());
    }
}
