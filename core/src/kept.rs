//! A part of a user's state together with the bytes it was last stored
//! as, kept until the part changes. A user's whole state is written after
//! every event that changes anything, and most of it (the traits, the
//! journeys' memos, the tasks' progress) did not change: with the bytes
//! kept, writing such a part is a copy, not an encoding. Reading the part
//! goes through `Deref`; anything that can change it goes through
//! `DerefMut`, which forgets the bytes, so they are never stale (a `&mut`
//! taken and not used to change anything only costs the next write an
//! encoding: look before taking one). Each event's history
//! keeps its bytes too (`history.rs`), and goes further: it is read from
//! the store as bytes and decoded only when first used.

use std::cell::OnceCell;
use std::ops::{Deref, DerefMut};

#[derive(Default)]
pub struct Kept<T> {
    value: T,
    bytes: OnceCell<Box<[u8]>>,
}

impl<T> Kept<T> {
    pub fn new(value: T) -> Kept<T> {
        Kept {
            value,
            bytes: OnceCell::new(),
        }
    }

    pub fn into_inner(self) -> T {
        self.value
    }

    /// The stored form kept, if the part did not change since it was made.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.bytes.get().map(|b| &b[..])
    }

    /// Appends the part's stored form to `out`: the bytes kept if it did
    /// not change since they were made, else what `encode` writes (and
    /// those bytes are kept).
    pub fn write_to<E>(
        &self,
        out: &mut Vec<u8>,
        encode: impl FnOnce(&mut Vec<u8>, &T) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.bytes.get() {
            Some(bytes) => out.extend_from_slice(bytes),
            None => {
                // Written in place, then copied once into a box of its size.
                let start = out.len();
                encode(out, &self.value)?;
                let _ = self.bytes.set(out[start..].into());
            }
        }
        Ok(())
    }
}

impl<T> Deref for Kept<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Kept<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.bytes.take();
        &mut self.value
    }
}

impl<T: Clone> Clone for Kept<T> {
    fn clone(&self) -> Kept<T> {
        Kept {
            value: self.value.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

/// Equal when the parts are: the bytes are a copy of what the part says.
impl<T: PartialEq> PartialEq for Kept<T> {
    fn eq(&self, other: &Kept<T>) -> bool {
        self.value == other.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: serde::Serialize> serde::Serialize for Kept<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Kept<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kept<T>, D::Error> {
        T::deserialize(d).map(Kept::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(k: &Kept<Vec<u32>>, encodings: &mut u32) -> Vec<u8> {
        let mut out = Vec::new();
        k.write_to(&mut out, |out, v| {
            *encodings += 1;
            rmp_serde::encode::write(out, v)
        })
        .unwrap();
        out
    }

    #[test]
    fn the_bytes_are_kept_until_the_part_changes() {
        let mut encodings = 0;
        let mut k = Kept::new(vec![1u32, 2]);
        let first = stored(&k, &mut encodings);
        assert_eq!(first, rmp_serde::to_vec(&vec![1u32, 2]).unwrap());
        assert_eq!(stored(&k, &mut encodings), first);
        assert_eq!(encodings, 1, "written again from the bytes kept");
        assert_eq!(k.len(), 2, "reading keeps them");
        assert_eq!(stored(&k, &mut encodings), first);
        assert_eq!(encodings, 1);
        k.push(3);
        let changed = stored(&k, &mut encodings);
        assert_eq!(encodings, 2, "a change is encoded");
        assert_eq!(changed, rmp_serde::to_vec(&vec![1u32, 2, 3]).unwrap());
        let copy = k.clone();
        assert_eq!(stored(&copy, &mut encodings), changed);
        assert_eq!(encodings, 2, "a copy has the bytes too");
        assert_eq!(copy, k);
    }
}
