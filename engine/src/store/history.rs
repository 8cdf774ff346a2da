//! What operators did: every deployment, `d/{id}` (who, when, how, what
//! changed, the source's hash) with its script files under `f/{id}` (for
//! diffs and rollbacks), the last id in `D`; and the audit log, `a/{seq}`
//! (deploys, rollbacks, pauses, resumes, erasures, replays), the last
//! sequence number in `A`. Both are append-only: nothing here is ever
//! rewritten or deleted, so they answer "who changed what, when".

use super::keys::{key, prefix_end};
use super::{Kv, Op, Result, Store, decode, encode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One deployment, as the history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: u64,
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub at: DateTime<Utc>,
    /// The token's name, or what deployed it (`scripts folder`).
    pub by: String,
    /// `api`, `folder`, `rollback`.
    pub how: String,
    /// The deployment rolled back to, for a rollback.
    pub rollback_of: Option<u64>,
    /// SHA-256 of the files (names and texts, sorted by name), hex.
    pub source_hash: String,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Every journey deployed, with its version.
    pub versions: BTreeMap<String, String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub at: DateTime<Utc>,
    /// The token's name.
    pub actor: String,
    /// `deploy`, `rollback`, `pause`, `resume`, `erase`, `replay`.
    pub action: String,
    /// What it acted on: a deployment id, a journey, a dead letter id, an
    /// erased user's keyed hash (never the erased id itself).
    pub target: String,
    /// Anything else worth keeping, in words.
    pub detail: String,
}

/// The SHA-256 of a script set, over names and texts in name order.
pub fn source_hash(files: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, text) in files {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn counter<K: Kv>(kv: &K, name: &[u8]) -> Result<u64> {
    Ok(match kv.get(name)? {
        Some(b) if b.len() == 8 => u64::from_be_bytes(b.try_into().unwrap_or([0; 8])),
        _ => 0,
    })
}

impl<K: Kv> Store<K> {
    /// The id the next deployment gets.
    pub fn next_deployment_id(&self) -> Result<u64> {
        Ok(counter(&self.kv, b"D")? + 1)
    }

    /// The sequence number the next audit entry gets.
    pub fn next_audit_seq(&self) -> Result<u64> {
        Ok(counter(&self.kv, b"A")? + 1)
    }

    /// The writes that record a deployment with its files: for the batch
    /// that saves the deployment itself.
    pub(crate) fn deployment_record_ops(
        record: &DeploymentRecord,
        files: &BTreeMap<String, String>,
    ) -> Vec<Op> {
        let id = record.id.to_be_bytes();
        vec![
            Op::Put(key("d", &[&id]), encode(record)),
            Op::Put(key("f", &[&id]), encode(files)),
            Op::Put(b"D".to_vec(), id.to_vec()),
        ]
    }

    /// The writes that append an audit entry.
    pub(crate) fn audit_ops(entry: &AuditEntry) -> Vec<Op> {
        let seq = entry.seq.to_be_bytes();
        vec![
            Op::Put(key("a", &[&seq]), encode(entry)),
            Op::Put(b"A".to_vec(), seq.to_vec()),
        ]
    }

    /// Appends an audit entry on its own, durably; answers its number.
    pub fn append_audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<u64> {
        let entry = AuditEntry {
            seq: self.next_audit_seq()?,
            at,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        };
        self.kv.apply(Self::audit_ops(&entry))?;
        self.kv.flush()?;
        Ok(entry.seq)
    }

    /// Deployments, newest first: at most `limit`, those before `before`
    /// (an id) when given.
    pub fn deployments(&self, before: Option<u64>, limit: usize) -> Result<Vec<DeploymentRecord>> {
        let end = match before {
            Some(id) => key("d", &[&id.to_be_bytes()]),
            None => prefix_end(b"d/"),
        };
        let all = self.kv.range(b"d/", &end, usize::MAX)?;
        all.iter()
            .rev()
            .take(limit)
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// One deployment with its files.
    pub fn deployment(
        &self,
        id: u64,
    ) -> Result<Option<(DeploymentRecord, BTreeMap<String, String>)>> {
        let k = key("d", &[&id.to_be_bytes()]);
        let Some(bytes) = self.kv.get(&k)? else {
            return Ok(None);
        };
        let record = decode(&k, &bytes)?;
        let fk = key("f", &[&id.to_be_bytes()]);
        let files = match self.kv.get(&fk)? {
            Some(b) => decode(&fk, &b)?,
            None => BTreeMap::new(),
        };
        Ok(Some((record, files)))
    }

    /// The latest deployment, if any.
    pub fn latest_deployment(&self) -> Result<Option<DeploymentRecord>> {
        Ok(self.deployments(None, 1)?.pop())
    }

    /// Audit entries after `after` (a sequence number), oldest first, at
    /// most `limit`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let from = key("a", &[&after.saturating_add(1).to_be_bytes()]);
        self.kv
            .range(&from, &prefix_end(b"a/"), limit)?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// How the audit log names an erased user: a keyed hash of the id
    /// under the store's secret (HMAC-SHA-256, 16 bytes hex), so the log
    /// keeps no personal data yet shows, to whoever has the id and the
    /// daemon, that this id was erased.
    pub fn erased_user_tag(&self, id: &str) -> Result<String> {
        use hmac::{KeyInit, Mac};
        let secret = self.coupon_secret()?;
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&secret.0)
            .expect("HMAC takes a key of any length");
        mac.update(b"waymark erased user\0");
        mac.update(id.as_bytes());
        let bytes = mac.finalize().into_bytes();
        Ok(bytes[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The last audit sequence number used (0 before any).
    pub fn last_audit_seq(&self) -> Result<u64> {
        counter(&self.kv, b"A")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;

    fn store() -> Store<MemoryKv> {
        Store::open(MemoryKv::default()).unwrap()
    }

    fn record(id: u64) -> DeploymentRecord {
        DeploymentRecord {
            id,
            at: "2026-12-01T00:00:00Z".parse().unwrap(),
            by: "ops".into(),
            how: "api".into(),
            rollback_of: None,
            source_hash: "h".into(),
            added: vec![],
            changed: vec![],
            removed: vec![],
            versions: BTreeMap::new(),
        }
    }

    #[test]
    fn deployments_list_newest_first_and_keep_their_files() {
        let s = store();
        for id in 1..=3 {
            assert_eq!(s.next_deployment_id().unwrap(), id);
            let files = BTreeMap::from([("a.journey".to_string(), format!("v{id}"))]);
            s.kv.apply(Store::<MemoryKv>::deployment_record_ops(
                &record(id),
                &files,
            ))
            .unwrap();
        }
        let ids: Vec<u64> = s
            .deployments(None, 10)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [3, 2, 1]);
        let ids: Vec<u64> = s
            .deployments(Some(3), 1)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [2]);
        let (_, files) = s.deployment(2).unwrap().unwrap();
        assert_eq!(files["a.journey"], "v2");
        assert!(s.deployment(9).unwrap().is_none());
    }

    #[test]
    fn the_audit_log_pages_forward_from_a_sequence_number() {
        let s = store();
        let at = "2026-12-01T00:00:00Z".parse().unwrap();
        for i in 0..5 {
            let seq = s
                .append_audit(at, "ops", "pause", &format!("j{i}"), "")
                .unwrap();
            assert_eq!(seq, i + 1);
        }
        let page: Vec<String> = s
            .audit(2, 2)
            .unwrap()
            .into_iter()
            .map(|e| e.target)
            .collect();
        assert_eq!(page, ["j2", "j3"]);
        assert_eq!(s.last_audit_seq().unwrap(), 5);
    }

    #[test]
    fn the_source_hash_depends_on_names_and_texts() {
        let one = BTreeMap::from([("a".to_string(), "bc".to_string())]);
        let two = BTreeMap::from([("ab".to_string(), "c".to_string())]);
        assert_ne!(source_hash(&one), source_hash(&two));
        assert_eq!(source_hash(&one).len(), 64);
    }
}
