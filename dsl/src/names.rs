//! Maps keyed by a name, of which a record or a user holds a handful (a
//! record's fields, a user's traits, the event names their history
//! keeps): one vector sorted by name, exactly as long as it needs to be.
//! A `BTreeMap` allocated a node with room for eleven entries (over 600
//! bytes for values) for a map of one or two: every event brings a record
//! of a field or two, and a daemon's user keeps two per event name in
//! their history; memory first touched is memory the system zeroes.
//! Iterated, compared, printed and stored in name order, as a `BTreeMap`
//! is, in the same bytes.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, PartialEq)]
pub struct NameMap<V> {
    /// Sorted by name, each name once.
    entries: Vec<(String, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            entries: Vec::new(),
        }
    }
}

impl<V> NameMap<V> {
    pub fn new() -> Self {
        NameMap::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// Where `name` is, if it is there. A user holds a handful of names,
    /// so they are scanned, lengths first: most names are told apart by
    /// their length alone, with no call to compare bytes, where a binary
    /// search compared bytes at every step (a tenth of `simulate`'s
    /// engine on the peers workload).
    fn position(&self, name: &str) -> Option<usize> {
        if self.entries.len() > 8 {
            return self.find(name).ok();
        }
        self.entries
            .iter()
            .position(|(k, _)| k.len() == name.len() && k.as_bytes() == name.as_bytes())
    }

    /// The entries in name order.
    pub fn as_slice(&self) -> &[(String, V)] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.position(name).map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`, giving back the value it replaced.
    pub fn insert(&mut self, name: String, value: V) -> Option<V> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.find(name).ok().map(|i| self.entries.remove(i).1)
    }

    /// The value of `name`, set to `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (name.to_string(), make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// In name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// As a `BTreeMap`.
    pub fn to_map(&self) -> BTreeMap<String, V>
    where
        V: Clone,
    {
        self.entries.iter().cloned().collect()
    }
}

impl<V: fmt::Debug> fmt::Debug for NameMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A name given twice keeps its last value, as a map's insert does.
impl<V> FromIterator<(String, V)> for NameMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(items: I) -> Self {
        let mut entries: Vec<(String, V)> = items.into_iter().collect();
        if entries.is_sorted_by(|a, b| a.0 < b.0) {
            return NameMap { entries };
        }
        // Stable: of equal names, the last given is last, and kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(String, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        kept.shrink_to_fit();
        NameMap { entries: kept }
    }
}

impl<V, const N: usize> From<[(String, V); N]> for NameMap<V> {
    fn from(entries: [(String, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<V> IntoIterator for NameMap<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;

    /// In name order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a NameMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, V)>,
        fn(&'a (String, V)) -> (&'a String, &'a V),
    >;

    /// In name order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<V> From<BTreeMap<String, V>> for NameMap<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        NameMap {
            entries: map.into_iter().collect(),
        }
    }
}

impl<V: Serialize> Serialize for NameMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for NameMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = NameMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<NameMap<V>, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                // Written in name order, so usually sorted already.
                if entries.is_sorted_by(|a, b| a.0 < b.0) {
                    Ok(NameMap { entries })
                } else {
                    Ok(entries.into_iter().collect())
                }
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use proptest::prelude::*;

    type Traits = NameMap<Value>;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn keeps_names_in_order_and_each_once() {
        let mut t = Traits::new();
        assert_eq!(t.insert("tier".into(), s("gold")), None);
        assert_eq!(t.insert("city".into(), s("Xian")), None);
        assert_eq!(t.insert("tier".into(), s("bronze")), Some(s("gold")));
        let names: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["city", "tier"]);
        assert_eq!(t.get("tier"), Some(&s("bronze")));
        assert_eq!(t.get("nope"), None);
        *t.get_or_insert_with("age", || Value::Null) = s("30");
        assert!(t.get_or_insert_with("age", || s("never")) == &s("30"));
        assert_eq!(t.remove("city"), Some(s("Xian")));
        assert!(!t.contains_key("city"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value() {
        let t: Traits = [("a".to_string(), s("1")), ("a".to_string(), s("2"))]
            .into_iter()
            .collect();
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("a"), Some(&s("2")));
    }

    proptest! {
        /// Any sequence of sets and removals leaves what a `BTreeMap`
        /// would, and both store as the same bytes.
        #[test]
        fn behaves_and_stores_as_a_map(ops in prop::collection::vec((0u8..6, any::<Option<u8>>()), 0..40)) {
            let mut traits = Traits::new();
            let mut map = BTreeMap::new();
            for (name, value) in ops {
                let name = format!("t{name}");
                match value {
                    Some(v) => prop_assert_eq!(
                        traits.insert(name.clone(), Value::Number(rust_decimal::Decimal::from(v))),
                        map.insert(name, Value::Number(rust_decimal::Decimal::from(v)))
                    ),
                    None => prop_assert_eq!(traits.remove(&name), map.remove(&name)),
                }
            }
            prop_assert_eq!(&traits.to_map(), &map);
            let bytes = rmp_serde::to_vec_named(&traits).unwrap();
            prop_assert_eq!(&bytes, &rmp_serde::to_vec_named(&map).unwrap());
            let back: Traits = rmp_serde::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, traits);
        }
    }

    #[test]
    fn collected_or_read_unsorted_names_end_as_a_btree_map_does() {
        let pairs = vec![
            ("b".to_string(), s("1")),
            ("a".to_string(), s("2")),
            ("b".to_string(), s("3")),
            ("c".to_string(), s("4")),
            ("a".to_string(), s("5")),
        ];
        let names: NameMap<Value> = pairs.clone().into_iter().collect();
        let map: BTreeMap<String, Value> = pairs.into_iter().collect();
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            map.iter().collect::<Vec<_>>()
        );
        assert_eq!(format!("{names:?}"), format!("{map:?}"));
        assert_eq!(
            serde_json::to_string(&names).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        // Read back from a map written unsorted, with a name twice.
        let back: NameMap<Value> = serde_json::from_str(
            r#"{"b": {"String": "1"}, "a": {"String": "2"}, "b": {"String": "3"}}"#,
        )
        .unwrap();
        assert_eq!(
            back,
            NameMap::from([("a".into(), s("2")), ("b".into(), s("3"))])
        );
    }
}
