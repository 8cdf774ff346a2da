//! Journey stats, `k/{journey}/{version}`: one [`VersionStats`] per journey
//! version. The store writes them as it is given them; what a batch's
//! records add to them is the runtime's to work out (`runtime::effects`).

use super::keys::{key, prefix_end};
use super::{Kv, Op, Result, Store, decode, encode};
use waymark_core::stats::VersionStats;

/// A journey version's stats as a batch leaves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsWrite {
    pub journey: String,
    pub version: String,
    pub stats: VersionStats,
}

impl<K: Kv> Store<K> {
    /// A journey version's stats.
    pub fn stats(&self, journey: &str, version: &str) -> Result<VersionStats> {
        let k = key("k", &[journey.as_bytes(), version.as_bytes()]);
        Ok(self
            .kv
            .get(&k)?
            .map(|b| decode(&k, &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every version's stats of a journey, by version.
    pub fn journey_stats(&self, journey: &str) -> Result<Vec<(String, VersionStats)>> {
        let prefix = key("k", &[journey.as_bytes(), b""]);
        self.kv
            .range(&prefix, &prefix_end(&prefix), usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    decode(&k, &v)?,
                ))
            })
            .collect()
    }

    pub(super) fn write_stats(stats: &[StatsWrite], ops: &mut Vec<Op>) {
        for s in stats {
            ops.push(Op::Put(
                key("k", &[s.journey.as_bytes(), s.version.as_bytes()]),
                encode(&s.stats),
            ));
        }
    }
}
