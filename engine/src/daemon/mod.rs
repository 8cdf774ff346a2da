//! `waymark run`: the long-lived daemon. It checks and deploys the scripts
//! (refusing to start on errors), opens the sled store, starts the writer
//! thread (group commit and timers), the outbox worker and the HTTP API,
//! and on SIGTERM or SIGINT stops taking requests and starting deliveries,
//! finishes the commits under way and the deliveries under way within a
//! grace period (the rest stay in the outbox), and returns.

mod health;
mod http;
pub mod metrics;
mod outbox;
mod routes;
mod serve;
pub(crate) mod staff_tasks;
mod ui;
mod writer;

use crate::channels::Registry;
use crate::config::Config;
use crate::runtime::Runtime;
use crate::store::{SledKv, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use waymark_core::clock::{Clock, SystemClock};
use waymark_core::deployment::{DeploySource, Deployment};
use waymark_dsl::{ChannelCatalog, ChannelSpec, Options};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Listening beyond this machine with nobody to authenticate.
    #[error(
        "listen = \"{listen}\" is not a loopback address, and there are no [[auth.tokens]]: add a token or listen on 127.0.0.1"
    )]
    OpenListen { listen: std::net::SocketAddr },
    /// The scripts folder could not be listed or read.
    #[error("scripts: {error:#}")]
    ScriptsUnreadable { error: anyhow::Error },
    #[error("channels.{channel}.kind: unknown kind `{kind}`")]
    UnknownKind { channel: String, kind: String },
    /// A channel whose settings were never read (a config loaded for
    /// `check`, with a secret left unset).
    #[error("channels.{channel}: its settings were not validated (a secret is unset)")]
    Unvalidated { channel: String },
    /// A kind refused to build a channel from its (valid) settings.
    #[error("channels.{channel}: {error}")]
    Channel {
        channel: String,
        error: waymark_channel::BuildError,
    },
    #[error("the scripts in {path} have errors:\n{rendered}")]
    Scripts { path: String, rendered: String },
    #[error("data dir {dir} is in use by another waymark{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse { dir: String, pid: Option<u32> },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where the core finds a channel's address, from what its kind says.
fn recipient(from: crate::channels::Recipient) -> waymark_core::deployment::Recipient {
    match from {
        crate::channels::Recipient::UserId => waymark_core::deployment::Recipient::UserId,
        crate::channels::Recipient::Trait(name) => waymark_core::deployment::Recipient::Trait(name),
        crate::channels::Recipient::TriggerEvent {
            event,
            property,
            within_secs,
            expired,
        } => waymark_core::deployment::Recipient::TriggerEvent {
            event,
            property,
            within_secs,
            expired,
        },
    }
}

/// A platform's per-customer cap as the core counts it: in China time.
fn platform_quota(cap: waymark_channel::CustomerCap) -> waymark_core::deployment::PlatformQuota {
    use waymark_dsl::plan::CalendarPeriod;
    waymark_core::deployment::PlatformQuota {
        group: cap.group,
        per: match cap.per {
            waymark_channel::CapPeriod::Month => CalendarPeriod::Month,
            waymark_channel::CapPeriod::Week => CalendarPeriod::Week,
            waymark_channel::CapPeriod::Day => CalendarPeriod::Day,
        },
        limit: None,
        tz: chrono_tz::Asia::Shanghai,
    }
}

/// The channel catalog `check` validates `send` steps against.
pub fn catalog(config: &Config, registry: &Registry) -> ChannelCatalog {
    let mut catalog = ChannelCatalog::default();
    for (name, channel) in &config.channels {
        if let Some(kind) = registry.get(&channel.kind) {
            let fields = kind.message_fields();
            catalog.insert(
                name.clone(),
                ChannelSpec {
                    kind: channel.kind.clone(),
                    required: fields.required.iter().map(|s| s.to_string()).collect(),
                    accepted: fields.accepted.map(|a| {
                        a.iter()
                            .map(|s| s.to_string())
                            .chain(["to".to_string()])
                            .collect()
                    }),
                    spends_grants: kind.spends_grants(),
                    answers: match kind.recipient() {
                        crate::channels::Recipient::TriggerEvent { event, .. } => Some(event),
                        _ => None,
                    },
                    confirmed_by_staff: kind.staff_trait().is_some(),
                },
            );
        }
    }
    catalog
}

/// How the scripts folder differs from the deployed set, by journey.
#[derive(Debug, Default)]
struct Difference {
    only_in_folder: Vec<String>,
    only_deployed: Vec<String>,
    /// Journeys in both, at different versions.
    different: Vec<String>,
    /// Policies, rules, tasks or segments differ (tests do not count).
    others: bool,
}

impl Difference {
    fn between(deployed: &waymark_dsl::plan::Plan, folder: &waymark_dsl::plan::Plan) -> Difference {
        let mut d = Difference::default();
        for j in &folder.journeys {
            match deployed.journey(&j.name) {
                None => d.only_in_folder.push(j.name.clone()),
                Some(old) if old.version != j.version => d.different.push(j.name.clone()),
                Some(_) => {}
            }
        }
        for j in &deployed.journeys {
            if folder.journey(&j.name).is_none() {
                d.only_deployed.push(j.name.clone());
            }
        }
        let without_journeys = |p: &waymark_dsl::plan::Plan| waymark_dsl::plan::Plan {
            journeys: Vec::new(),
            tests: Vec::new(),
            ..p.clone()
        };
        d.others = without_journeys(deployed) != without_journeys(folder);
        d
    }

    fn is_empty(&self) -> bool {
        self.only_in_folder.is_empty()
            && self.only_deployed.is_empty()
            && self.different.is_empty()
            && !self.others
    }
}

/// Loads and checks the scripts of `dir` against the configured channels.
/// The scripts folder's plan, and its files by name (relative to the
/// folder) for the deployment history.
fn load_scripts(
    config: &Config,
    registry: &Registry,
) -> Result<(waymark_dsl::plan::Plan, BTreeMap<String, String>), StartError> {
    // A folder without scripts starts an empty deployment (scripts can be
    // deployed over HTTP later), unlike `waymark check`, which refuses it.
    let sources = crate::cli::journey_files_under(&config.scripts)
        .and_then(|files| crate::cli::load(&files))
        .map_err(|error| StartError::ScriptsUnreadable { error })?;
    let catalog = catalog(config, registry);
    let channels = (!config.channels.is_empty()).then_some(&catalog);
    let checked = waymark_dsl::compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels,
        },
    );
    let files = checked
        .sources
        .ids()
        .map(|id| {
            let file = checked.sources.get(id);
            let name = std::path::Path::new(&file.name)
                .strip_prefix(&config.scripts)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| file.name.clone());
            (name, file.text.clone())
        })
        .collect();
    match checked.plan {
        Some(plan) => Ok((plan, files)),
        None => Err(StartError::Scripts {
            path: config.scripts.display().to_string(),
            rendered: waymark_dsl::render::human(&checked.sources, &checked.diagnostics),
        }),
    }
}

/// The HTTP API with each ingest call's inputs handed to `accept` instead
/// of the writer thread: nothing is committed, and admin commands are
/// answered as if shutting down. For fuzzing the request path in-process
/// (the `fuzzing` feature, which only `fuzz/` turns on) and the router's
/// unit tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn api_without_writer(
    store: Store<SledKv>,
    tokens: Vec<crate::config::Token>,
    mut accept: impl FnMut(Vec<waymark_core::model::Input>) -> Result<(), crate::store::StoreError>
    + Send
    + 'static,
) -> axum::Router {
    let (commands, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Ends when the router, which holds every sender, is dropped.
        for command in receiver {
            if let writer::Command::Ingest { inputs, reply } = command {
                let _ = reply.send(accept(inputs).map_err(writer::WriterError::ingest));
            }
        }
    });
    http::router(http::AppState {
        writer: commands,
        store: Arc::new(store),
        tokens: Arc::new(tokens),
        channels: None,
        limits: Default::default(),
        evidence_bytes: crate::config::DEFAULT_EVIDENCE_BYTES,
        health: Default::default(),
        clock: Arc::new(SystemClock),
        sessions: Default::default(),
        callbacks: Default::default(),
        tag_pulls: Default::default(),
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config, registry: Registry) -> Result<(), StartError> {
    if config.tokens.is_empty() && !config.listen.ip().is_loopback() {
        return Err(StartError::OpenListen {
            listen: config.listen,
        });
    }
    if config.tokens.is_empty() {
        tracing::warn!(listen = %config.listen, "no [[auth.tokens]] configured: listening on loopback only, without authentication");
    }
    let (plan, files) = load_scripts(&config, &registry)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let pid_file = config.data_dir.join("waymark.pid");
    let kv = match SledKv::open_with_cache(&config.data_dir.join("store"), config.store_cache_bytes)
    {
        Ok(kv) => kv,
        Err(crate::store::StoreError::InUse { .. }) => {
            return Err(StartError::InUse {
                dir: config.data_dir.display().to_string(),
                pid: std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok()),
            });
        }
        Err(e) => return Err(e.into()),
    };
    kv.set_write_buffer_bytes(config.store_write_buffer_bytes);
    // Only for the message above: the store's own lock is what excludes.
    let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));
    let store = Store::open(kv.clone())?;
    let stored = store.load_deployment()?;
    let folder = DeploySource::Folder(
        std::fs::canonicalize(&config.scripts)
            .unwrap_or_else(|_| config.scripts.clone())
            .display()
            .to_string(),
    );
    // The stored set is the truth: the folder replaces it only if it came
    // from the folder (or there is none), so a restart never undoes a
    // deploy made over the API.
    let deploy_folder = stored.as_ref().is_none_or(|d| d.source == folder);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut deployment = stored.unwrap_or_else(|| Deployment::new(Default::default()));
    deployment.coupon_secret = store.coupon_secret()?;
    deployment.consent = config.consent.rules.clone();
    let mut runtime = Runtime::new(store, deployment);
    runtime.set_user_cache(config.user_cache);
    runtime.set_identity(config.identity.clone());
    metrics::user_cache(0, config.user_cache);
    metrics::store_cache(config.store_cache_bytes);
    metrics::write_buffer(kv.write_buffer_bytes(), config.store_write_buffer_bytes);
    runtime
        .store
        .set_dedup_filter_bytes(config.dedup_filter_bytes);
    metrics::dedup_filters(0, config.dedup_filter_bytes);
    runtime.store.set_max_user_bytes(config.limits.user_state);
    runtime.start_schedules_at(clock.now());
    if deploy_folder {
        runtime.deployment.source = folder;
        let meta = crate::runtime::DeployMeta {
            by: "scripts folder".into(),
            how: crate::runtime::DeployHow::Folder,
            files,
        };
        let (report, records, _) =
            runtime.deploy_recorded(plan.clone(), false, clock.now(), Some(meta))?;
        metrics::records(&records);
        tracing::info!(added = ?report.added, changed = ?report.changed, removed = ?report.removed, journeys = plan.journeys.len(), "scripts deployed");
        for warning in &report.warnings {
            tracing::warn!("{warning}");
        }
    } else {
        let difference = Difference::between(&runtime.deployment.plan, &plan);
        if difference.is_empty() {
            tracing::info!(deployed_by = %runtime.deployment.source, journeys = plan.journeys.len(), "keeping the deployed set, which the scripts folder matches");
        } else {
            tracing::warn!(
                deployed_by = %runtime.deployment.source,
                scripts = %config.scripts.display(),
                only_in_folder = ?difference.only_in_folder,
                only_deployed = ?difference.only_deployed,
                different = ?difference.different,
                other_declarations_differ = difference.others,
                "the scripts folder differs from the set last deployed by {}; keeping the deployed set (deploy the folder over the API to use it)",
                runtime.deployment.source
            );
        }
    }
    let plan = runtime.deployment.plan.as_ref().clone();
    let health = Arc::new(health::Health::default());
    health.deployed();

    // Channels: the configured ones, or a `log` channel on stdout for every
    // channel the scripts send on.
    let mut configured = config.channels.clone();
    if configured.is_empty() {
        let used = plan.channels_used();
        for name in used {
            let stdout = crate::channels::AnyKind::validate(
                &crate::channels::LogKind,
                &format!("channels.{name}"),
                &toml::Table::new(),
            )
            .expect("the log kind takes no settings");
            configured.insert(
                name,
                crate::config::Channel {
                    kind: "log".into(),
                    settings: toml::Table::new(),
                    validated: Some(stdout),
                    rate_limit: None,
                    concurrency: 1,
                    retry: config.retry,
                },
            );
        }
    }
    let mut channels = BTreeMap::new();
    // Channels whose sends a staff member confirms: a runner each, started
    // once the writer is.
    let mut runners = Vec::new();
    // Per platform account, the runners told when a customer's tags change.
    let mut tag_pulls: BTreeMap<String, Vec<tokio::sync::mpsc::Sender<staff_tasks::Ask>>> =
        BTreeMap::new();
    // Per platform account, the lock its runners' calls take in turn.
    let mut serial_calls: BTreeMap<String, Arc<tokio::sync::Mutex<()>>> = BTreeMap::new();
    for (name, c) in &configured {
        let kind = registry
            .get(&c.kind)
            .ok_or_else(|| StartError::UnknownKind {
                channel: name.clone(),
                kind: c.kind.clone(),
            })?;
        runtime
            .deployment
            .recipients
            .insert(name.clone(), recipient(kind.recipient()));
        if kind.spends_grants() {
            runtime.deployment.grant_channels.insert(name.clone());
        }
        if let Some(staff_trait) = kind.staff_trait() {
            runtime
                .deployment
                .staff_traits
                .insert(name.clone(), staff_trait.to_string());
        }
        let validated = c
            .validated
            .as_ref()
            .ok_or_else(|| StartError::Unvalidated {
                channel: name.clone(),
            })?;
        let channel = kind
            .build(name, validated)
            .map_err(|error| StartError::Channel {
                channel: name.clone(),
                error,
            })?;
        let staff = match channel.staff_tasks() {
            Some(tasks) => {
                if let Some(cap) = tasks.customer_cap() {
                    runtime
                        .deployment
                        .platform_quotas
                        .insert(name.clone(), platform_quota(cap));
                }
                let tags = tasks.synced_tags();
                if let (false, crate::channels::Recipient::Trait(address), Some(staff)) =
                    (tags.is_empty(), kind.recipient(), kind.staff_trait())
                {
                    runtime.deployment.tag_syncs.insert(
                        name.clone(),
                        waymark_core::deployment::TagSync {
                            tags,
                            address,
                            staff: staff.to_string(),
                        },
                    );
                }
                let (asks, taken) = tokio::sync::mpsc::channel(64);
                tag_pulls
                    .entry(tasks.account().to_string())
                    .or_default()
                    .push(asks.clone());
                let serial = serial_calls
                    .entry(tasks.account().to_string())
                    .or_default()
                    .clone();
                runners.push((name.clone(), channel.clone(), taken, serial));
                Some(asks)
            }
            None => None,
        };
        channels.insert(
            name.clone(),
            outbox::ChannelRuntime {
                channel,
                retry: c.retry,
                rate: c.rate_limit,
                permits: Arc::new(tokio::sync::Semaphore::new(c.concurrency as usize)),
                recent: Default::default(),
                spends_grants: kind.spends_grants(),
                urgent: matches!(
                    kind.recipient(),
                    crate::channels::Recipient::TriggerEvent { .. }
                ),
                staff,
            },
        );
    }

    let (commands, receiver) = std::sync::mpsc::channel();
    let writer = writer::spawn(
        runtime,
        clock.clone(),
        config.flush_interval,
        receiver,
        health.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let reader = Arc::new(Store::new(kv.clone()));
    let mut staff_runners = tokio::task::JoinSet::new();
    for (name, channel, joins, serial) in runners {
        let runner = staff_tasks::Runner {
            name,
            channel,
            store: reader.clone(),
            writer: commands.clone(),
            clock: clock.clone(),
            serial,
        };
        staff_runners.spawn(runner.run(joins, stopped.clone()));
    }
    let worker = {
        let (reader, clock, health) = (reader.clone(), clock.clone(), health.clone());
        let writer = commands.clone();
        let grace = config.shutdown_grace;
        tokio::spawn(async move {
            health.outbox(true);
            outbox::run(reader, writer, Arc::new(channels), clock, stopped, grace).await;
            health.outbox(false);
        })
    };
    let channels = (!config.channels.is_empty()).then(|| Arc::new(catalog(&config, &registry)));
    let state = http::AppState {
        writer: commands.clone(),
        store: reader,
        tokens: Arc::new(config.tokens.clone()),
        channels,
        limits: config.limits,
        evidence_bytes: config.consent.evidence_bytes,
        health,
        clock: clock.clone(),
        sessions: Default::default(),
        callbacks: Arc::new(http::receivers(&config.callbacks)),
        tag_pulls: Arc::new(tag_pulls),
    };
    for c in &config.callbacks {
        if !config.identity.identifiers.contains(&c.identifier) {
            tracing::warn!(
                app = %c.name,
                identifier = %c.identifier,
                "callbacks.{}.{}: `{}` is not in identity.identifiers, so its pushes stay on their own profiles ({}:…) instead of reaching the members who identify with it",
                c.platform.name(),
                c.name,
                c.identifier,
                c.platform.name(),
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| StartError::Listen {
            addr: config.listen.to_string(),
            error,
        })?;
    #[cfg(unix)]
    let hangups = tokio::spawn(ignore_hangups());
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "waymark is running");
    let stop_deliveries = stop.clone();
    let stopping = async move {
        shutdown_signal().await;
        // No new delivery starts from here; those under way get the grace
        // period while requests and commits finish.
        let _ = stop_deliveries.send(true);
    };
    serve::serve(listener, http::router(state), config.http, stopping).await;
    #[cfg(unix)]
    hangups.abort();
    tracing::info!(
        grace_ms = config.shutdown_grace.as_millis() as u64,
        "stopping: finishing commits, and deliveries under way within the grace period"
    );
    let _ = stop.send(true);
    // The worker first: a delivery settled in the grace period (given up
    // on, or a replay delivered) is journaled through the writer.
    let _ = worker.await;
    // A runner in a call gets the grace period too; what it was doing is
    // in the store already, and is taken up again at the next start.
    let runners_done = async { while staff_runners.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, runners_done)
        .await
        .is_err()
    {
        staff_runners.abort_all();
    }
    let _ = commands.send(writer::Command::Shutdown);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    kv_flush(&kv);
    tracing::info!("stopped");
    Ok(())
}

fn kv_flush(kv: &SledKv) {
    use crate::store::Kv;
    if let Err(e) = kv.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
}

/// SIGHUP's default action ends a process; a daemon whose terminal or
/// supervisor sends one must keep running. Reload is not supported yet, so
/// each one is logged and otherwise ignored.
#[cfg(unix)]
async fn ignore_hangups() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; one would stop the daemon");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::warn!(
            "SIGHUP received and ignored: reloading is not supported; restart to redeploy the scripts folder or change the log level"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
