//! A record's fields: names to values, kept in name order, each name once.
//! An event's properties or a profile's traits hold a handful of fields,
//! and every event brings a record: kept in one vector sorted by name, a
//! record of one field is one small allocation, where a `BTreeMap` made a
//! node of eleven slots (over 600 bytes) for it. Lookups are a binary
//! search; fields are iterated, compared, written and read back in name
//! order, as a `BTreeMap` does, so a record stores and prints the same.

use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Default, PartialEq)]
pub struct Fields {
    /// Sorted by name, each name once.
    entries: Vec<(String, Value)>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.find(name).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`, giving back the value it replaced.
    pub fn insert(&mut self, name: String, value: Value) -> Option<Value> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name, value));
                None
            }
        }
    }

    /// The value of `name`, set to `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> Value) -> &mut Value {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (name.to_string(), make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.find(name).ok().map(|i| self.entries.remove(i).1)
    }

    /// In name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// In name order.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut Value)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Fields from pairs in any order; of a name given twice the last
    /// counts (as inserting them one by one would).
    fn from_pairs(mut entries: Vec<(String, Value)>) -> Fields {
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable: pairs of one name stay in the order given, and the
            // last of each run is the one kept.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Vec<(String, Value)> = Vec::with_capacity(entries.len());
            for pair in entries {
                match kept.last_mut() {
                    Some(last) if last.0 == pair.0 => *last = pair,
                    _ => kept.push(pair),
                }
            }
            entries = kept;
        }
        Fields { entries }
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Fields {
        Fields::from_pairs(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, Value); N]> for Fields {
    fn from(pairs: [(String, Value); N]) -> Fields {
        Fields::from_pairs(pairs.into())
    }
}

impl Extend<(String, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for Fields {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    /// In name order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of field names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    pairs.push(pair);
                }
                Ok(Fields::from_pairs(pairs))
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn fields_keep_name_order_and_the_last_of_a_name_as_a_btree_map_does() {
        let pairs = vec![
            ("b".to_string(), s("1")),
            ("a".to_string(), s("2")),
            ("b".to_string(), s("3")),
            ("c".to_string(), s("4")),
            ("a".to_string(), s("5")),
        ];
        let fields: Fields = pairs.clone().into_iter().collect();
        let map: BTreeMap<String, Value> = pairs.into_iter().collect();
        let got: Vec<_> = fields.iter().collect();
        let want: Vec<_> = map.iter().collect();
        assert_eq!(got, want);
        assert_eq!(fields.get("a"), Some(&s("5")));
        assert_eq!(format!("{fields:?}"), format!("{map:?}"));
    }

    #[test]
    fn fields_are_stored_as_the_map_they_replace() {
        let mut fields = Fields::new();
        let mut map = BTreeMap::new();
        for (k, v) in [("zeta", "1"), ("alpha", "2"), ("mid", "3"), ("alpha", "4")] {
            assert_eq!(
                fields.insert(k.into(), s(v)),
                map.insert(k.to_string(), s(v))
            );
        }
        assert_eq!(fields.remove("mid"), map.remove("mid"));
        assert_eq!(fields.remove("mid"), None);
        let bytes = rmp_serde::to_vec(&fields).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec(&map).unwrap());
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        let back: Fields = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, fields);
        // Unsorted and repeated names read back as inserting them would.
        let back: Fields = serde_json::from_str(
            r#"{"b": {"String": "1"}, "a": {"String": "2"}, "b": {"String": "3"}}"#,
        )
        .unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            vec![(&"a".to_string(), &s("2")), (&"b".to_string(), &s("3"))]
        );
    }
}
