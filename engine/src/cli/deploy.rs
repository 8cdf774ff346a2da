//! `waymark deploy`: sends a script set to a running daemon. It checks the
//! scripts here first, then asks the daemon what the deploy would change
//! (`POST /v1/deploy?dry_run=true`: the source diff, the steps added,
//! changed and removed, and how many users wait at each changed or removed
//! step and what happens to them), prints that, and deploys unless
//! `--dry-run`.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct DeployArgs {
    /// Files or directories (every `.journey` inside, recursively): the
    /// whole set to deploy; a journey left out is removed.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The daemon, e.g. http://127.0.0.1:7878.
    #[arg(long)]
    pub url: String,
    /// An `admin` token; default: the environment variable WAYMARK_TOKEN.
    #[arg(long, env = "WAYMARK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print what would change; deploy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// End the running instances of journeys the deploy removes (default:
    /// they finish on their version).
    #[arg(long)]
    pub cancel_removed: bool,
}

/// The files to send, named as the daemon's history will show them: by
/// path within a directory given, by file name for a file given.
fn files(paths: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for path in paths {
        let found = super::journey_files_under(path)?;
        anyhow::ensure!(
            !found.is_empty(),
            "no `.journey` files in {}",
            path.display()
        );
        for file in found {
            let name = if path.is_dir() {
                file.strip_prefix(path)
                    .unwrap_or(&file)
                    .display()
                    .to_string()
            } else {
                file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if out.insert(name.clone(), text).is_some() {
                bail!("two files would be sent as `{name}`: give their common folder instead");
            }
        }
    }
    Ok(out)
}

pub fn run(args: &DeployArgs) -> Result<ExitCode> {
    // Checked here first: errors point at the files on this machine.
    if super::plan_of(&args.paths)?.is_none() {
        return Ok(ExitCode::from(1));
    }
    let files = files(&args.paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(send(args, files))
}

async fn send(args: &DeployArgs, files: BTreeMap<String, String>) -> Result<ExitCode> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // A preview reads every user in the journeys a deploy changes.
        .timeout(Duration::from_secs(300))
        .build()?;
    let base = args.url.trim_end_matches('/');
    let body = json!({"files": files, "cancel_removed": args.cancel_removed});
    let post = |dry_run: bool| {
        let mut request = client
            .post(format!(
                "{base}/v1/deploy{}",
                if dry_run { "?dry_run=true" } else { "" }
            ))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = &args.token {
            request = request.bearer_auth(token);
        }
        request
    };
    let preview = answer(post(true).send().await, base).await?;
    if let Err(code) = refused(&preview) {
        return Ok(code);
    }
    print!("{}", preview.1["text"].as_str().unwrap_or_default());
    if args.dry_run {
        println!("dry run: nothing deployed");
        return Ok(ExitCode::SUCCESS);
    }
    let done = answer(post(false).send().await, base).await?;
    if let Err(code) = refused(&done) {
        return Ok(code);
    }
    let list = |key: &str| {
        done.1[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    println!(
        "deployed as deployment {}: added {}; changed {}; removed {}",
        done.1["deployment"],
        list("added"),
        list("changed"),
        list("removed")
    );
    for w in done.1["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", w.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer's status and JSON body.
async fn answer(
    sent: reqwest::Result<reqwest::Response>,
    base: &str,
) -> Result<(reqwest::StatusCode, Json)> {
    let response = sent.with_context(|| format!("cannot reach the daemon at {base}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("reading the daemon's answer")?;
    let json = serde_json::from_str(&text)
        .with_context(|| format!("the daemon answered {status} with a body that is not JSON"))?;
    Ok((status, json))
}

/// Prints a refusal (the scripts' diagnostics for a 422) and says how to
/// exit: 1 for scripts the daemon refused, 2 for anything else.
fn refused((status, body): &(reqwest::StatusCode, Json)) -> Result<(), ExitCode> {
    if status.is_success() {
        return Ok(());
    }
    let error = &body["error"];
    eprintln!(
        "the daemon refused ({status}): {}: {}",
        error["field"].as_str().unwrap_or("?"),
        error["message"].as_str().unwrap_or("?")
    );
    for d in body["diagnostics"]["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        eprintln!(
            "{}:{}:{}: {}[{}]: {}",
            d["file"].as_str().unwrap_or("?"),
            d["line"],
            d["column"],
            d["severity"].as_str().unwrap_or("error"),
            d["code"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or("")
        );
    }
    Err(ExitCode::from(
        if *status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            1
        } else {
            2
        },
    ))
}
