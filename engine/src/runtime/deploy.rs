//! Deploying a script set, and pausing and resuming journeys: the
//! deployment is saved with the journey versions still in use, and
//! removed or resumed journeys reach their users page by page.

use super::{PAGE, Runtime};
use crate::store::{AuditEntry, DeploymentRecord, Kv, Op, Store, StoreError, source_hash};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::collections::HashSet;
use waymark_core::deployment::DeployReport;
use waymark_core::journal::Record;
use waymark_core::model::{Input, UserState};

/// Who deploys what, for the deployment history and the audit log.
#[derive(Debug, Clone)]
pub struct DeployMeta {
    /// The token's name, or `scripts folder`.
    pub by: String,
    pub how: DeployHow,
    /// The script files, by name.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployHow {
    /// The daemon's scripts folder at start.
    Folder,
    /// `POST /v1/deploy`.
    Api,
    /// `POST /v1/deployments/{id}/rollback`: the files of deployment `id`.
    Rollback(u64),
}

impl<K: Kv> Runtime<K> {
    /// Replaces the script set atomically (the caller has checked it).
    /// Changed journeys get a new version for new entries; instances finish
    /// on the version they started. Instances of removed journeys drain,
    /// unless `cancel_removed`, which ends them (`exit`, reason `cancelled`).
    pub fn deploy(
        &mut self,
        plan: waymark_dsl::plan::Plan,
        cancel_removed: bool,
        now: DateTime<Utc>,
    ) -> Result<(DeployReport, Vec<Record>), StoreError> {
        let (report, records, _) = self.deploy_recorded(plan, cancel_removed, now, None)?;
        Ok((report, records))
    }

    /// [`Runtime::deploy`], recorded: with `meta`, the deployment history
    /// gets a record (with the files) and the audit log an entry, in the
    /// batch that saves the deployment; answers the record's id. A folder
    /// deploy whose files are those of the latest record is not recorded
    /// again (every start deploys the folder).
    pub fn deploy_recorded(
        &mut self,
        plan: waymark_dsl::plan::Plan,
        cancel_removed: bool,
        now: DateTime<Utc>,
        meta: Option<DeployMeta>,
    ) -> Result<(DeployReport, Vec<Record>, Option<u64>), StoreError> {
        self.drain()?;
        let report = self.deployment.replace(plan);
        // Old versions no user is on are dropped: kept forever, every
        // deploy of a changed journey would grow the store and each load.
        // (Users are read only when there is an old version to decide on.)
        let plan = self.deployment.plan.clone();
        let old = self
            .deployment
            .versions()
            .any(|v| plan.journey(&v.name).is_none_or(|j| j.version != v.version));
        let in_use = if old {
            self.versions_in_use(now)?
        } else {
            HashSet::new()
        };
        let dropped = self.deployment.prune_versions(&in_use);
        if !dropped.is_empty() {
            tracing::debug!(
                dropped = dropped.len(),
                "journey versions no user is on were dropped"
            );
        }
        let (extra, recorded) = match meta {
            Some(meta) => self.history_ops(meta, &report, now)?,
            None => (Vec::new(), None),
        };
        self.store.save_deployment(&self.deployment, extra)?;
        let mut records = Vec::new();
        if cancel_removed && !report.removed.is_empty() {
            let removed = report.removed.clone();
            records = self.each_user(now, |_, user| {
                removed
                    .iter()
                    .map(|j| Input::Cancel {
                        user: user.to_string(),
                        journey: j.clone(),
                    })
                    .collect()
            })?;
        }
        Ok((report, records, recorded))
    }

    /// The history record and audit entry of a deployment, as writes.
    fn history_ops(
        &self,
        meta: DeployMeta,
        report: &DeployReport,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Op>, Option<u64>), StoreError> {
        let hash = source_hash(&meta.files);
        if matches!(meta.how, DeployHow::Folder)
            && self
                .store
                .latest_deployment()?
                .is_some_and(|d| d.source_hash == hash && d.how == "folder")
        {
            return Ok((Vec::new(), None));
        }
        let id = self.store.next_deployment_id()?;
        let (how, rollback_of) = match meta.how {
            DeployHow::Folder => ("folder", None),
            DeployHow::Api => ("api", None),
            DeployHow::Rollback(to) => ("rollback", Some(to)),
        };
        let record = DeploymentRecord {
            id,
            at: now,
            by: meta.by.clone(),
            how: how.into(),
            rollback_of,
            source_hash: hash,
            added: report.added.clone(),
            changed: report.changed.clone(),
            removed: report.removed.clone(),
            versions: self
                .deployment
                .plan
                .journeys
                .iter()
                .map(|j| (j.name.clone(), j.version.clone()))
                .collect(),
        };
        let mut detail = format!(
            "{} file(s); added {:?}, changed {:?}, removed {:?}",
            meta.files.len(),
            report.added,
            report.changed,
            report.removed
        );
        if let Some(to) = rollback_of {
            detail = format!("the files of deployment {to}; {detail}");
        }
        let entry = AuditEntry {
            seq: self.store.next_audit_seq()?,
            at: now,
            actor: meta.by,
            action: if rollback_of.is_some() {
                "rollback"
            } else {
                "deploy"
            }
            .into(),
            target: format!("deployment {id}"),
            detail,
        };
        let mut ops = Store::<K>::deployment_record_ops(&record, &meta.files);
        ops.extend(Store::<K>::audit_ops(&entry));
        Ok((ops, Some(id)))
    }

    /// The journey versions some user is in, or has a goal still open on
    /// (the goal's window outlives the instance), read page by page.
    fn versions_in_use(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<HashSet<(String, String)>, StoreError> {
        let mut in_use = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.users_after(after.as_deref(), PAGE)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for user in &page {
                let Some(state) = self.store.user(user)? else {
                    continue;
                };
                for i in &state.instances {
                    in_use.insert((i.journey.clone(), i.version.clone()));
                }
                for (name, memo) in state.journeys.iter() {
                    if let Some(goal) = memo.open_goal.as_ref().filter(|g| g.until >= now) {
                        in_use.insert((name.clone(), goal.version.clone()));
                    }
                }
            }
            after = Some(last);
        }
        Ok(in_use)
    }

    /// Pauses a journey: no new entries (each refused one `skipped`, reason `paused`);
    /// instances hold at their next step until it resumes.
    pub fn pause(&mut self, journey: &str) -> Result<(), StoreError> {
        self.drain()?;
        self.deployment.paused.insert(journey.to_string());
        self.store.save_deployment(&self.deployment, Vec::new())
    }

    /// Resumes a paused journey; held instances go on at once.
    pub fn resume(&mut self, journey: &str, now: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        self.drain()?;
        self.deployment.paused.remove(journey);
        self.store.save_deployment(&self.deployment, Vec::new())?;
        let journey = journey.to_string();
        self.each_user(now, |state, user| {
            let held = state.is_some_and(|s| {
                s.instances
                    .iter()
                    .any(|i| i.journey == journey && i.wait == waymark_core::model::Wait::Held)
            });
            if held {
                vec![Input::Wake {
                    user: user.to_string(),
                }]
            } else {
                Vec::new()
            }
        })
    }

    /// Stops every non-transactional send at once (an operator's global
    /// pause): each is held, `deferred` with reason `global_pause`, until
    /// [`Runtime::resume_sends`], or dropped (`suppressed`) if `drop`.
    /// Journeys keep running.
    pub fn pause_sends(
        &mut self,
        by: &str,
        drop: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.drain()?;
        self.deployment.sends_paused = Some(waymark_core::deployment::SendsPaused {
            since: now,
            by: by.to_string(),
            drop,
        });
        self.store.save_deployment(&self.deployment, Vec::new())
    }

    /// Ends the global pause; sends held by it go on at once.
    pub fn resume_sends(&mut self, now: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        self.drain()?;
        self.deployment.sends_paused = None;
        self.store.save_deployment(&self.deployment, Vec::new())?;
        self.each_user(now, |state, user| {
            let held = state.is_some_and(|s| {
                s.instances
                    .iter()
                    .any(|i| i.wait == waymark_core::model::Wait::Held)
            });
            if held {
                vec![Input::Wake {
                    user: user.to_string(),
                }]
            } else {
                Vec::new()
            }
        })
    }

    /// Whether sends are globally paused, and how.
    pub fn sends_paused(&self) -> Option<&waymark_core::deployment::SendsPaused> {
        self.deployment.sends_paused.as_ref()
    }

    /// Feeds the inputs `f` makes for each stored user, page by page.
    fn each_user(
        &mut self,
        now: DateTime<Utc>,
        f: impl Fn(Option<&UserState>, &str) -> Vec<Input>,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.users_after(after.as_deref(), PAGE)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            let mut inputs = Vec::new();
            for user in &page {
                let state = self.store.user(user)?;
                inputs.extend(f(state.as_ref(), user));
            }
            if !inputs.is_empty() {
                records.extend(self.ingest(&inputs, now)?);
            }
            after = Some(last);
        }
        Ok(records)
    }
}
