//! Who uses which volume: a set of container ids per volume name (never a bare counter, so a
//! double release cannot underflow and a reference can be named in errors).

use std::collections::{BTreeMap, BTreeSet};

/// Name -> ids of the containers referencing it.
#[derive(Debug, Default, Clone)]
pub struct Refs(BTreeMap<String, BTreeSet<String>>);

impl Refs {
    /// Records that `id` uses `name` (idempotent).
    pub fn add(&mut self, name: &str, id: &str) {
        self.0
            .entry(name.to_string())
            .or_default()
            .insert(id.to_string());
    }

    /// Drops `id`'s use of `name` (idempotent).
    pub fn release(&mut self, name: &str, id: &str) {
        if let Some(s) = self.0.get_mut(name) {
            s.remove(id);
            if s.is_empty() {
                self.0.remove(name);
            }
        }
    }

    /// The ids using `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets a removed volume.
    pub fn forget(&mut self, name: &str) {
        self.0.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_not_counters() {
        let mut r = Refs::default();
        r.add("v", "a");
        r.add("v", "a");
        r.add("v", "b");
        assert_eq!(r.users("v"), ["a", "b"]);
        r.release("v", "a");
        r.release("v", "a");
        assert_eq!(r.users("v"), ["b"]);
        r.release("v", "b");
        r.release("v", "b");
        assert!(r.users("v").is_empty());
    }
}
