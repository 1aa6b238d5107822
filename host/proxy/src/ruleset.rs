//! The `ip keelson` nftables table as data, and the two scripts that make the kernel's copy
//! equal to it: a full one (replace the whole table in one transaction, used at start and
//! after someone else changed the table) and a diff against the last applied state (only the
//! chains, sets and map elements that changed), which keeps a one-endpoint change small.
//!
//! Both are `nft -f` scripts; nft applies a script as one netlink batch, so packets see
//! either the old rules or the new ones, never a half-written table.

use std::collections::BTreeMap;
use std::fmt::Write;

/// The table's name (family `ip`).
pub const TABLE: &str = "keelson";

/// Maps and sets whose declarations are fixed; their elements are data.
pub(crate) const MAPS: &[(&str, &str)] = &[
    (
        "service-ips",
        "type ipv4_addr . inet_proto . inet_service : verdict;",
    ),
    (
        "no-endpoint-services",
        "type ipv4_addr . inet_proto . inet_service : verdict;",
    ),
    (
        "service-nodeports",
        "type inet_proto . inet_service : verdict;",
    ),
    (
        "no-endpoint-nodeports",
        "type inet_proto . inet_service : verdict;",
    ),
    ("ingress-isolated", "type ipv4_addr : verdict;"),
    ("egress-isolated", "type ipv4_addr : verdict;"),
];

/// Sets with fixed declarations.
pub(crate) const SETS: &[(&str, &str)] = &[
    ("nodeport-ips", "type ipv4_addr;"),
    ("pod-ips", "type ipv4_addr;"),
    // Holds 127.0.0.1 while the table is the proxy's: cheap to list, gone when someone
    // deletes the table or flushes the ruleset.
    ("canary", "type ipv4_addr;"),
];

/// One desired state of the table: everything that changes with the API's objects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Regular chains (no hook) and their rules, by name.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Dynamic sets (session affinity, NetworkPolicy peers) and their declaration body.
    pub sets: BTreeMap<String, String>,
    /// Elements of the fixed maps and sets: map name → key → value (empty for sets).
    pub elements: BTreeMap<String, BTreeMap<String, String>>,
    /// Rules of the fixed, hooked base chains that depend on configuration
    /// (e.g. whether NodePorts match the node's addresses or any local address).
    pub base: BTreeMap<String, Vec<String>>,
}

/// The hooked chains: name and header.
const BASE_CHAINS: &[(&str, &str)] = &[
    (
        "nat-prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
    ),
    (
        "nat-output",
        "type nat hook output priority -100; policy accept;",
    ),
    (
        "nat-postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
    (
        "filter-prerouting",
        "type filter hook prerouting priority -110; policy accept;",
    ),
    (
        "filter-output",
        "type filter hook output priority -110; policy accept;",
    ),
    (
        "filter-forward",
        "type filter hook forward priority 0; policy accept;",
    ),
];

impl Ruleset {
    /// Adds a regular chain with its rules.
    pub fn chain(&mut self, name: String, rules: Vec<String>) {
        self.chains.insert(name, rules);
    }

    /// Adds an element to a fixed map or set.
    pub fn element(&mut self, map: &str, key: String, value: String) {
        self.elements
            .entry(map.to_string())
            .or_default()
            .insert(key, value);
    }

    /// A script replacing the whole table with this state, in one transaction.
    pub fn full_script(&self) -> String {
        let mut s = String::with_capacity(128 * self.chains.len() + 4096);
        // Creating first makes the delete valid whether or not the table exists.
        let _ = writeln!(s, "add table ip {TABLE}\ndelete table ip {TABLE}");
        let _ = writeln!(s, "table ip {TABLE} {{");
        for (name, decl) in MAPS {
            let _ = writeln!(s, "  map {name} {{ {decl} }}");
        }
        for (name, decl) in SETS {
            let _ = writeln!(s, "  set {name} {{ {decl} }}");
        }
        for (name, body) in &self.sets {
            let _ = writeln!(s, "  set {name} {{ {body} }}");
        }
        for name in self.chains.keys() {
            let _ = writeln!(s, "  chain {name} {{ }}");
        }
        for (name, header) in BASE_CHAINS {
            let _ = writeln!(s, "  chain {name} {{ {header} }}");
        }
        s.push_str("}\n");
        for (name, rules) in self.base.iter().chain(&self.chains) {
            for rule in rules {
                let _ = writeln!(s, "add rule ip {TABLE} {name} {rule}");
            }
        }
        for (map, elements) in &self.elements {
            add_elements(&mut s, map, elements.iter());
        }
        s
    }

    /// A script turning `old` (what the kernel holds) into `self`; empty when they are equal.
    pub fn diff_script(&self, old: &Ruleset) -> String {
        let mut s = String::new();
        if self.base != old.base {
            // Configuration changed: not worth a diff.
            return self.full_script();
        }
        for (name, body) in &self.sets {
            match old.sets.get(name) {
                Some(b) if b == body => {}
                Some(_) => return self.full_script(),
                None => {
                    let _ = writeln!(s, "add set ip {TABLE} {name} {{ {body} }}");
                }
            }
        }
        for name in self.chains.keys().filter(|n| !old.chains.contains_key(*n)) {
            let _ = writeln!(s, "add chain ip {TABLE} {name}");
        }
        for (name, rules) in &self.chains {
            match old.chains.get(name) {
                Some(r) if r == rules => continue,
                Some(_) => {
                    let _ = writeln!(s, "flush chain ip {TABLE} {name}");
                }
                None => {}
            }
            for rule in rules {
                let _ = writeln!(s, "add rule ip {TABLE} {name} {rule}");
            }
        }
        let empty = BTreeMap::new();
        let maps: std::collections::BTreeSet<&String> =
            self.elements.keys().chain(old.elements.keys()).collect();
        for map in maps {
            let new = self.elements.get(map).unwrap_or(&empty);
            let was = old.elements.get(map).unwrap_or(&empty);
            let gone: Vec<&String> = was
                .iter()
                .filter(|(k, v)| new.get(*k) != Some(v))
                .map(|(k, _)| k)
                .collect();
            if !gone.is_empty() {
                let _ = writeln!(
                    s,
                    "delete element ip {TABLE} {map} {{ {} }}",
                    gone.iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            add_elements(
                &mut s,
                map,
                new.iter().filter(|(k, v)| was.get(*k) != Some(v)),
            );
        }
        let removed: Vec<&String> = old
            .chains
            .keys()
            .filter(|n| !self.chains.contains_key(*n))
            .collect();
        // Removed chains may jump to each other: empty them all before deleting any.
        for name in &removed {
            let _ = writeln!(s, "flush chain ip {TABLE} {name}");
        }
        for name in &removed {
            let _ = writeln!(s, "delete chain ip {TABLE} {name}");
        }
        for name in old.sets.keys().filter(|n| !self.sets.contains_key(*n)) {
            let _ = writeln!(s, "delete set ip {TABLE} {name}");
        }
        s
    }
}

fn add_elements<'a>(
    s: &mut String,
    map: &str,
    elements: impl Iterator<Item = (&'a String, &'a String)>,
) {
    let items: Vec<String> = elements
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k} : {v}")
            }
        })
        .collect();
    // Batches keep each line within nft's parser limits.
    for chunk in items.chunks(512) {
        let _ = writeln!(s, "add element ip {TABLE} {map} {{ {} }}", chunk.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoints: &[&str]) -> Ruleset {
        let mut r = Ruleset::default();
        r.base.insert("services".into(), vec!["counter".into()]);
        let mut rules = Vec::new();
        for ep in endpoints {
            r.chain(format!("endpoint-{ep}"), vec![format!("dnat to {ep}")]);
            rules.push(format!("goto endpoint-{ep}"));
        }
        r.chain("service-a".into(), rules);
        r.element(
            "service-ips",
            "10.43.0.5 . tcp . 80".into(),
            "goto service-a".into(),
        );
        r
    }

    #[test]
    fn equal_states_need_no_script() {
        assert_eq!(sample(&["x"]).diff_script(&sample(&["x"])), "");
    }

    #[test]
    fn one_endpoint_change_touches_only_its_chains() {
        let old = sample(&["x", "y"]);
        let new = sample(&["x", "z"]);
        let script = new.diff_script(&old);
        assert_eq!(
            script.lines().collect::<Vec<_>>(),
            vec![
                "add chain ip keelson endpoint-z",
                "add rule ip keelson endpoint-z dnat to z",
                "flush chain ip keelson service-a",
                "add rule ip keelson service-a goto endpoint-x",
                "add rule ip keelson service-a goto endpoint-z",
                "flush chain ip keelson endpoint-y",
                "delete chain ip keelson endpoint-y",
            ]
        );
    }

    #[test]
    fn changed_map_values_are_replaced() {
        let old = sample(&["x"]);
        let mut new = sample(&["x"]);
        new.element(
            "service-ips",
            "10.43.0.5 . tcp . 80".into(),
            "goto reject-chain".into(),
        );
        let script = new.diff_script(&old);
        assert!(script.contains("delete element ip keelson service-ips { 10.43.0.5 . tcp . 80 }"));
        assert!(script.contains(
            "add element ip keelson service-ips { 10.43.0.5 . tcp . 80 : goto reject-chain }"
        ));
    }

    #[test]
    fn full_script_replaces_the_table_atomically() {
        let script = sample(&["x"]).full_script();
        assert!(script.starts_with("add table ip keelson\ndelete table ip keelson\n"));
        assert!(script.contains("  map service-ips { type ipv4_addr"));
        assert!(script.contains("  set nodeport-ips { type ipv4_addr; }"));
        assert!(script.contains("add rule ip keelson services counter"));
    }
}
