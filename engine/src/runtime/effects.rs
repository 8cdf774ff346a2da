//! What a batch's journal sets off besides itself: the sends it puts in
//! the outbox, the coupon codes it issues (for the store's code index) and
//! its journeys' stats. These are the runtime's to work out from the
//! records; the store writes what it is handed in the [`Batch`].
//!
//! Stats are folded per journey version from the batch's records onto the
//! stats as the batch before left them. [`Effects`] keeps those in memory
//! (the runtime is their only writer): a batch evaluated while the one
//! before it is still being applied builds on that one's.

use crate::store::{Batch, IssuedCode, Kv, StatsWrite, Store, StoreError};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use waymark_core::journal::{Kind, Record};
use waymark_core::stats::{Passage, VersionStats};

/// Journey stats as the last batch left them, per (journey, version).
#[derive(Debug, Default)]
pub struct Effects {
    stats: foldhash::HashMap<(String, String), VersionStats>,
}

impl Effects {
    /// Fills in what `batch`'s journal sets off: its sends, the codes it
    /// issues and its journeys' stats, reading stats the first time a
    /// version is touched.
    /// Days are counted in `zone` (the default policy's).
    pub fn fill<K: Kv>(
        &mut self,
        store: &Store<K>,
        batch: &mut Batch,
        zone: chrono_tz::Tz,
    ) -> Result<(), StoreError> {
        batch.sends = sends(&batch.journal);
        batch.codes = codes(&batch.journal);
        batch.stats = self.stats(store, &batch.journal, &batch.passages, zone)?;
        Ok(())
    }

    /// Forgets the stats kept (a batch built on them was not applied):
    /// they are read from the store again.
    pub fn forget(&mut self) {
        self.stats.clear();
    }

    /// The stats of every journey version the records and passages touch,
    /// with them added. Each version's stats are taken out of those kept,
    /// added to and put back, and copied once, for the write: copied out
    /// and in again, a rule's stats (a map of its days) were copied twice
    /// a batch, and its names once a record. A failure here or later in
    /// the batch forgets them all (`Runtime::forget_prepared`), so none
    /// is left half-added.
    fn stats<K: Kv>(
        &mut self,
        store: &Store<K>,
        journal: &[Record],
        passages: &[Passage],
        zone: chrono_tz::Tz,
    ) -> Result<Vec<StatsWrite>, StoreError> {
        let mut touched: BTreeMap<(&str, &str), VersionStats> = BTreeMap::new();
        for record in journal {
            if let (Some(journey), Some(version)) = (&record.journey, &record.version) {
                self.touch(&mut touched, store, journey, version)?
                    .add_in(record, zone);
            }
        }
        for p in passages {
            self.touch(&mut touched, store, &p.journey, &p.version)?
                .add_passage(p);
        }
        let mut writes = Vec::with_capacity(touched.len());
        for ((journey, version), stats) in touched {
            writes.push(StatsWrite {
                journey: journey.to_string(),
                version: version.to_string(),
                stats: stats.clone(),
            });
            self.stats
                .insert((journey.to_string(), version.to_string()), stats);
        }
        Ok(writes)
    }
}

impl Effects {
    /// The stats of a version in `touched`, taken there from those kept
    /// (as the batch before left them), or read, the first time.
    fn touch<'t, 'n, K: Kv>(
        &mut self,
        touched: &'t mut BTreeMap<(&'n str, &'n str), VersionStats>,
        store: &Store<K>,
        journey: &'n str,
        version: &'n str,
    ) -> Result<&'t mut VersionStats, StoreError> {
        match touched.entry((journey, version)) {
            Entry::Occupied(kept) => Ok(kept.into_mut()),
            Entry::Vacant(new) => {
                let k = (journey.to_string(), version.to_string());
                let before = match self.stats.remove(&k) {
                    Some(stats) => stats,
                    None => store.stats(journey, version)?,
                };
                Ok(new.insert(before))
            }
        }
    }
}

/// The records (by index) that are sends to deliver.
pub fn sends(journal: &[Record]) -> Vec<usize> {
    journal
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            // A tag mirrored to a platform is delivered like a send.
            r.kind == Kind::Send || matches!(r.kind, Kind::Tag | Kind::Untag) && r.channel.is_some()
        })
        .map(|(i, _)| i)
        .collect()
}

/// The coupon codes the records issue, and to whom.
pub fn codes(journal: &[Record]) -> Vec<IssuedCode> {
    journal
        .iter()
        .filter_map(|r| match (r.kind, &r.coupon, &r.code) {
            (Kind::Coupon, Some(coupon), Some(code)) => Some(IssuedCode {
                coupon: coupon.clone(),
                code: code.clone(),
                user: r.user.to_string(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;

    fn record(kind: Kind, journey: Option<&str>) -> Record {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut r = Record::new(at, "u", kind);
        r.journey = journey.map(Into::into);
        r.version = journey.map(|_| "v1".into());
        r
    }

    #[test]
    fn sends_and_codes_come_from_the_records_that_are_them() {
        let mut coupon = record(Kind::Coupon, None);
        coupon.coupon = Some("NEW10".into());
        coupon.code = Some("NEW10-A".into());
        let journal = vec![
            record(Kind::Enter, Some("j")),
            record(Kind::Send, Some("j")),
            coupon,
            record(Kind::Send, None),
        ];
        assert_eq!(sends(&journal), [1, 3]);
        assert_eq!(
            codes(&journal),
            [IssuedCode {
                coupon: "NEW10".into(),
                code: "NEW10-A".into(),
                user: "u".into(),
            }]
        );
    }

    #[test]
    fn stats_build_on_the_batch_before_until_forgotten() {
        let store = Store::new(MemoryKv::default());
        let mut effects = Effects::default();
        let mut batch = Batch {
            journal: vec![
                record(Kind::Enter, Some("j")),
                record(Kind::Send, Some("j")),
            ],
            ..Batch::default()
        };
        batch.passages.push(Passage {
            journey: "j".into(),
            version: "v1".into(),
            step: waymark_dsl::plan::StepId(3),
            arms: None,
            passed: false,
        });
        effects.fill(&store, &mut batch, chrono_tz::UTC).unwrap();
        assert_eq!(batch.stats.len(), 1);
        assert_eq!(
            batch.stats[0].stats.steps["s3"].entered, 1,
            "a passage counts"
        );
        assert_eq!(
            (batch.stats[0].stats.entered, batch.stats[0].stats.sends),
            (1, 1)
        );
        // Not applied: the next batch still counts the first one's.
        let mut next = Batch {
            journal: vec![record(Kind::Enter, Some("j"))],
            ..Batch::default()
        };
        effects.fill(&store, &mut next, chrono_tz::UTC).unwrap();
        assert_eq!(next.stats[0].stats.entered, 2);
        // Forgotten: read from the store, which has neither.
        effects.forget();
        effects.fill(&store, &mut next, chrono_tz::UTC).unwrap();
        assert_eq!(next.stats[0].stats.entered, 1);
    }

    /// Records of several journeys, interleaved, each counted on its own
    /// stats, and each journey's next batch building on its own.
    #[test]
    fn stats_of_journeys_interleaved_in_a_batch_are_each_their_own() {
        let store = Store::new(MemoryKv::default());
        let mut effects = Effects::default();
        let kinds = [Kind::Enter, Kind::Send, Kind::Enter, Kind::Send, Kind::Send];
        let mut batch = Batch {
            journal: kinds
                .iter()
                .enumerate()
                .map(|(i, &kind)| record(kind, Some(["a", "b"][i % 2])))
                .collect(),
            ..Batch::default()
        };
        effects.fill(&store, &mut batch, chrono_tz::UTC).unwrap();
        let counts = |b: &Batch| -> Vec<(String, u64, u64)> {
            b.stats
                .iter()
                .map(|w| (w.journey.clone(), w.stats.entered, w.stats.sends))
                .collect()
        };
        // a: enter, enter, send; b: send, send.
        assert_eq!(counts(&batch), [("a".into(), 2, 1), ("b".into(), 0, 2)]);
        let mut next = Batch {
            journal: vec![
                record(Kind::Enter, Some("b")),
                record(Kind::Send, Some("a")),
            ],
            ..Batch::default()
        };
        effects.fill(&store, &mut next, chrono_tz::UTC).unwrap();
        assert_eq!(counts(&next), [("a".into(), 2, 2), ("b".into(), 1, 2)]);
    }
}
