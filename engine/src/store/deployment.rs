//! The deployment: the current plan `P`, its journeys' names, titles and
//! versions `C` (what reads answer from, decoding no plan), the paused
//! journeys `Q`, where the set came from `S`, and the journey versions
//! kept, `p/{journey}/{version}`: current ones and those that users are
//! still in or have a goal open on. A version's plan never changes, so a
//! stored one is not rewritten.

use super::keys::{key, prefix_end};
use super::{Kv, Op, Result, Store, StoreError, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use waymark_core::deployment::Deployment;

/// A journey of the current deployment, as reads list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedJourney {
    pub name: String,
    pub title: Option<String>,
    pub version: String,
}

impl<K: Kv> Store<K> {
    /// Stores the deployment: the current plan, the list of current
    /// journeys (what reads answer from), paused journeys, and the journey
    /// versions it keeps (so that instances finish on their version): new
    /// ones are written, and stored ones it no longer keeps are deleted.
    /// `extra` is written in the same batch (the deployment's history
    /// record and audit entry).
    pub fn save_deployment(&self, d: &Deployment, extra: Vec<Op>) -> Result<()> {
        self.wrote();
        let current: Vec<DeployedJourney> = d
            .plan
            .journeys
            .iter()
            .map(|j| DeployedJourney {
                name: j.name.clone(),
                title: j.title.clone(),
                version: j.version.clone(),
            })
            .collect();
        let mut ops = vec![
            Op::Put(b"P".to_vec(), encode(d.plan.as_ref())),
            Op::Put(b"C".to_vec(), encode(&current)),
            Op::Put(b"Q".to_vec(), encode(&d.paused)),
            Op::Put(b"W".to_vec(), encode(&d.sends_paused)),
            Op::Put(b"S".to_vec(), encode(&d.source)),
        ];
        let mut stored: HashSet<Vec<u8>> = self
            .kv
            .range(b"p/", &prefix_end(b"p/"), usize::MAX)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for v in d.versions() {
            let k = key("p", &[v.name.as_bytes(), v.version.as_bytes()]);
            if !stored.remove(&k) {
                ops.push(Op::Put(k, encode(v)));
            }
        }
        ops.extend(stored.into_iter().map(Op::Delete));
        ops.extend(extra);
        self.kv.apply(ops)?;
        self.kv.flush()
    }

    /// The journeys of the current deployment, read without decoding any
    /// plan (empty before the first deploy).
    pub fn deployed_journeys(&self) -> Result<Vec<DeployedJourney>> {
        match self.kv.get(b"C")? {
            Some(bytes) => decode(b"C", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// The paused journeys.
    pub fn paused_journeys(&self) -> Result<BTreeSet<String>> {
        match self.kv.get(b"Q")? {
            Some(bytes) => decode(b"Q", &bytes),
            None => Ok(Default::default()),
        }
    }

    /// The global pause of sends, if one is on.
    pub fn sends_paused(&self) -> Result<Option<waymark_core::deployment::SendsPaused>> {
        match self.kv.get(b"W")? {
            Some(bytes) => decode(b"W", &bytes),
            None => Ok(None),
        }
    }

    /// The journey versions stored, as (journey, version), from their keys
    /// alone.
    pub fn stored_versions(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .kv
            .range(b"p/", &prefix_end(b"p/"), usize::MAX)?
            .into_iter()
            .filter_map(|(k, _)| {
                let text = String::from_utf8_lossy(&k[2..]).into_owned();
                let (name, version) = text.rsplit_once('/')?;
                Some((name.to_string(), version.to_string()))
            })
            .collect())
    }

    /// The stored deployment, if one was saved.
    pub fn load_deployment(&self) -> Result<Option<Deployment>> {
        let Some(bytes) = self.kv.get(b"P")? else {
            return Ok(None);
        };
        let plan: waymark_dsl::plan::Plan = decode(b"P", &bytes)?;
        let mut d = Deployment::new(plan);
        // Saved with the plan, always.
        let part = |k: &'static [u8]| {
            self.kv.get(k)?.ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(k).into_owned(),
                message: "a deployment is saved with its paused journeys and source".into(),
            })
        };
        d.paused = decode(b"Q", &part(b"Q")?)?;
        d.sends_paused = decode(b"W", &part(b"W")?)?;
        d.source = decode(b"S", &part(b"S")?)?;
        for (k, v) in self.kv.range(b"p/", &prefix_end(b"p/"), usize::MAX)? {
            d.keep_version(decode(&k, &v)?);
        }
        Ok(Some(d))
    }
}
