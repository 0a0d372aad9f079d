//! Device access rules in a version-neutral form: v1 writes them to `devices.allow/deny`, v2
//! compiles them into an eBPF program.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::CgroupError;

/// Which device nodes a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    All,
    Char,
    Block,
}

/// `BPF_DEVCG_ACC_*` bit values, also used as the internal access mask.
pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
pub(crate) const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

const MAX_MAJOR: i64 = (1 << 12) - 1;
const MAX_MINOR: i64 = (1 << 20) - 1;

/// One validated rule; `None` major/minor is the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    pub kind: DevKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

impl DeviceRule {
    /// Validates an OCI rule. Absent type means all devices, absent access means `rwm`.
    pub(crate) fn from_oci(r: &LinuxDeviceCgroup) -> Result<DeviceRule, CgroupError> {
        let invalid = |reason: String| CgroupError::InvalidResource {
            field: "devices",
            reason,
        };
        let kind = match r.typ() {
            None | Some(LinuxDeviceType::A) => DevKind::All,
            // 'u' (unbuffered char) is a char device to the kernel.
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DevKind::Char,
            Some(LinuxDeviceType::B) => DevKind::Block,
            Some(LinuxDeviceType::P) => {
                return Err(invalid(
                    "the devices cgroup cannot filter FIFOs (type p)".into(),
                ))
            }
        };
        // Linux device numbers are 12-bit major, 20-bit minor.
        let num = |v: Option<i64>, what: &str, max: i64| match v {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) if n > max => Err(invalid(format!("{what} {n} is out of range"))),
            Some(n) => Ok(u32::try_from(n).ok()),
        };
        let mut access = 0;
        for c in r.access().as_deref().unwrap_or("rwm").chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                other => return Err(invalid(format!("bad access character {other:?}"))),
            };
        }
        Ok(DeviceRule {
            allow: r.allow(),
            kind,
            major: num(r.major(), "major", MAX_MAJOR)?,
            minor: num(r.minor(), "minor", MAX_MINOR)?,
            access,
        })
    }

    /// The rule in v1 `devices.allow`/`devices.deny` syntax, e.g. `c 1:3 rwm`.
    pub(crate) fn v1_line(&self) -> String {
        let kind = match self.kind {
            DevKind::All => 'a',
            DevKind::Char => 'c',
            DevKind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }

    /// True for `a *:* rwm`, which resets the whole list.
    pub(crate) fn is_catch_all(&self) -> bool {
        self.kind == DevKind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

pub(crate) fn rules_from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    rules.iter().map(DeviceRule::from_oci).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Result<DeviceRule, CgroupError> {
        let r: LinuxDeviceCgroup = serde_json::from_str(json).expect("json");
        DeviceRule::from_oci(&r)
    }

    #[test]
    fn oci_rules_become_v1_lines() {
        let deny_all = rule(r#"{"allow":false,"access":"rwm"}"#).expect("rule");
        assert_eq!(deny_all.v1_line(), "a *:* rwm");
        assert!(deny_all.is_catch_all());
        let null = rule(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#);
        assert_eq!(null.expect("rule").v1_line(), "c 1:3 rw");
        let wild = rule(r#"{"allow":true,"type":"u","major":136,"minor":-1,"access":"mwr"}"#);
        assert_eq!(wild.expect("rule").v1_line(), "c 136:* rwm");
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(rule(r#"{"allow":true,"access":"rwx"}"#).is_err());
        assert!(rule(r#"{"allow":true,"type":"p","access":"r"}"#).is_err());
        assert!(rule(r#"{"allow":true,"type":"c","major":99999999999,"access":"r"}"#).is_err());
    }
}
