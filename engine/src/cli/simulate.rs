//! `waymark simulate`: the real engine on a virtual clock and a temporary
//! store, fed recorded events (Segment-shaped JSON lines, in timestamp
//! order). Prints every record as a timeline (or JSON lines), then a
//! per-journey summary. The same inputs give byte-identical output. A long
//! run shows its progress on stderr when that is a terminal (`--quiet`
//! turns it off). `--report FILE.html` also writes the HTML report of the
//! run (see [`super::report`]).

use super::progress::Progress;
use crate::ingest::Message;
use crate::preview::{NumberedUser, Preview, SeenIds, UserNumbers};
use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Args;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::Input;

#[derive(Args)]
pub struct SimulateArgs {
    /// Journey files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Events, one Segment-shaped JSON object per line.
    #[arg(long)]
    pub events: PathBuf,
    /// How long to run past the last event (a duration such as 30d; 0d stops at it).
    #[arg(long, default_value = "30d")]
    pub until: String,
    /// `human` (a timeline) or `json` (journal records, one per line).
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    pub format: String,
    /// Time zone for the human timeline.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// No progress on stderr (shown for long event files when stderr is a
    /// terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Also write a self-contained HTML report here: each journey's
    /// drawing painted with what its steps did, its numbers, split arms.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// A trait that identifies a person, as `identity.identifiers` in the
    /// daemon's config: an identify setting a value another profile holds
    /// merges the two (repeat for several).
    #[arg(long = "identifier", value_name = "TRAIT")]
    pub identifiers: Vec<String>,
}

pub fn run(args: &SimulateArgs) -> Result<ExitCode> {
    match simulate(args) {
        // `simulate … | head`: the reader has all it wanted.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        outcome => outcome,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn simulate(args: &SimulateArgs) -> Result<ExitCode> {
    let Some(until) = waymark_dsl::parser::parse_duration(&args.until) else {
        bail!(
            "--until: `{}` is not a duration such as 30d, 12h or 0d",
            args.until
        );
    };
    let tz = waymark_dsl::schedule::parse_time_zone(&args.tz)
        .map_err(|e| anyhow::anyhow!("--tz: {}", e.message))?;
    let Some(plan) = super::plan_of(&args.paths)? else {
        return Ok(ExitCode::from(1));
    };
    let report_plan = args.report.is_some().then(|| plan.clone());
    let name = args.events.display().to_string();
    let file = std::fs::File::open(&args.events).with_context(|| format!("cannot read {name}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut preview = Preview::new(Deployment::new(plan));
    if args.report.is_some() {
        preview.count_steps();
    }
    preview.set_identity(crate::config::Identity {
        identifiers: args.identifiers.clone(),
        ..Default::default()
    });
    let json = args.format == "json";
    let mut records = Vec::new();
    let mut progress = (!args.quiet && std::io::stderr().is_terminal())
        .then(|| Progress::new(size, std::time::Instant::now()));
    let mut unsupported: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    // The simulated time: starts at the first event's time and moves with
    // the events, as the wall clock does under the daemon.
    let mut clock: Option<DateTime<Utc>> = None;
    let mut first: Option<DateTime<Utc>> = None;
    let mut count = 0u64;
    let mut duplicates = 0u64;
    let report = args.report.is_some();
    // Three threads: one reads and parses lines, this one runs the engine,
    // one writes the records. The order of everything (the records, which
    // error stops the run) is the file's.
    let mut summary = std::thread::scope(|scope| -> Result<Summary> {
        // At most a thousand lines parsed ahead (see [`CHUNK`]).
        let (sender, parsed) = std::sync::mpsc::sync_channel::<Vec<Line>>(4);
        // Chunks go back to the reading thread to be freed there: memory
        // freed on the thread that allocated it is reused at once, where
        // memory freed across threads was the allocator's slow path.
        let (give_back, used) = std::sync::mpsc::channel::<Vec<Line>>();
        let reader = BufReader::with_capacity(1 << 16, file);
        std::thread::Builder::new()
            .name("read events".into())
            .spawn_scoped(scope, || read_lines(reader, sender, used, &name))
            .context("cannot start the thread reading events")?;
        let (to_writer, written) = std::sync::mpsc::sync_channel::<Vec<Record>>(16);
        // Written batches come back whole, and their records are freed
        // here, on the thread that made them, as the batch is filled again.
        // Freed on the writer's thread, they left the allocator's pages of
        // this thread empty, to be given back to the system and faulted in
        // again (zeroed) a few milliseconds later.
        let (give_back_records, done) = std::sync::mpsc::channel::<Vec<Record>>();
        let writer = std::thread::Builder::new()
            .name("write records".into())
            .spawn_scoped(scope, move || {
                write_records(written, give_back_records, json, tz, report)
            })
            .context("cannot start the thread writing records")?;
        // A batch the writer is done with, emptied to fill again, if any:
        // the others it has given back are freed.
        let refill = || {
            let mut spare: Option<Vec<Record>> = None;
            while let Ok(mut written) = done.try_recv() {
                written.clear();
                spare = Some(written);
            }
            spare
        };
        // Records of a long run of timers or a schedule's whole audience go
        // to the writer a page at a time, not all at the end.
        let mut hand_over = |records: &mut Vec<Record>| {
            if records.len() >= 4096 {
                let next = refill().unwrap_or_default();
                let _ = to_writer.send(std::mem::replace(records, next));
            }
        };
        // What the writer says when it stopped early (stdout closed).
        let writer_stopped =
            |writer: std::thread::ScopedJoinHandle<'_, Result<Summary>>| match writer.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(anyhow::anyhow!("the thread writing records stopped")),
            };
        'lines: for chunk in parsed {
            for (i, line) in chunk.iter().enumerate() {
                // The users of the inputs a few lines on are fetched while
                // this one runs (the engine waits mostly on memory).
                if let Some((_, who)) = ahead(&chunk, i + MEMBER_AHEAD) {
                    preview.prefetch_member(who);
                }
                if let Some((_, who)) = ahead(&chunk, i + LISTS_AHEAD) {
                    preview.prefetch_lists(who);
                }
                if let Some((input, who)) = ahead(&chunk, i + EVENT_AHEAD) {
                    preview.prefetch_event(who, input);
                }
                if let Some(progress) = &mut progress
                    && let Some(status) = progress.line(line.len, clock, std::time::Instant::now())
                {
                    eprint!("\r{status}\x1b[K");
                }
                let (number, input, at) = match &line.what {
                    What::Blank => continue,
                    &What::Duplicate(at) => {
                        duplicates += 1;
                        (line.number, None, at)
                    }
                    What::Bad(message) => {
                        let _ = to_writer.send(std::mem::take(&mut records));
                        bail!("{message}")
                    }
                    &What::Unsupported(kind) => {
                        // Taken but not acted on, as the daemon does.
                        unsupported.entry(kind).or_default().push(line.number);
                        continue;
                    }
                    What::Input(input, at, who) => (line.number, Some((input, who)), *at),
                };
                let now = *clock.get_or_insert_with(|| {
                    preview.start_schedules_at(at);
                    at
                });
                if at < now {
                    let _ = to_writer.send(std::mem::take(&mut records));
                    bail!(
                        "{name}:{number}: timestamp {} is before the previous event's; events must be in timestamp order",
                        show(at, chrono_tz::UTC)
                    );
                }
                first.get_or_insert(at);
                clock = Some(at);
                preview.advance_to_paged(at, &mut records, &mut hand_over);
                if let Some((input, who)) = input {
                    preview.handle_numbered(Some(who), input, at, &mut records);
                }
                count += 1;
            }
            let _ = give_back.send(chunk);
            if !records.is_empty() {
                // A written batch to fill again, or one as large.
                let next = refill().unwrap_or_else(|| Vec::with_capacity(records.len() * 2));
                if to_writer
                    .send(std::mem::replace(&mut records, next))
                    .is_err()
                {
                    break 'lines;
                }
            }
        }
        if let Some(last) = clock {
            let end = last + Duration::seconds(until as i64);
            preview.advance_to_paged(end, &mut records, &mut hand_over);
        }
        if to_writer.send(records).is_err() {
            return writer_stopped(writer);
        }
        drop(to_writer);
        match writer.join() {
            Ok(summary) => summary,
            Err(_) => bail!("the thread writing records stopped"),
        }
    })?;
    if let Some(progress) = &progress
        && progress.shown()
    {
        eprintln!(
            "\r{}\x1b[K",
            progress.finished(count, std::time::Instant::now())
        );
    }
    let (Some(first), Some(last)) = (first, clock) else {
        bail!("{name}: no events")
    };
    for (kind, lines) in &unsupported {
        let shown: Vec<String> = lines.iter().take(10).map(|n| n.to_string()).collect();
        let more = if lines.len() > 10 { ", …" } else { "" };
        eprintln!(
            "note: {} `{kind}` message(s) taken but not acted on (not supported yet): {name} line {}{more}",
            lines.len(),
            shown.join(", ")
        );
    }
    if let (Some(path), Some(plan)) = (&args.report, &report_plan) {
        let run = super::report::Run {
            scripts: &args.paths,
            script_files: super::journey_files(&args.paths)?.len(),
            events: &args.events,
            first,
            last,
            end: last + Duration::seconds(until as i64),
            until: &args.until,
            events_run: count,
            duplicates,
            not_acted_on: unsupported.values().map(|l| l.len() as u64).sum(),
            users: preview.members(),
            tz,
            fired: summary.fired(),
        };
        let mut figures = summary.figures.take().expect("kept for the report");
        for (journey, steps) in preview.step_counts() {
            figures.add_step_counts(journey, steps);
        }
        super::report::write(path, plan, &run, &figures)?;
    }
    let mut out = std::io::stdout().lock();
    if json {
        eprint!("{}", summary.render());
    } else {
        writeln!(out)?;
        write!(out, "{}", summary.render())?;
    }
    out.flush()?;
    // Every member's state is freed with the process: walking a hundred
    // thousand of them to free each allocation first is time spent after
    // the answer is out.
    std::mem::forget(preview);
    Ok(ExitCode::SUCCESS)
}

/// Writes batches of records as they come, as a timeline or JSON lines,
/// and counts them for the summary.
fn write_records(
    batches: std::sync::mpsc::Receiver<Vec<Record>>,
    written: std::sync::mpsc::Sender<Vec<Record>>,
    json: bool,
    tz: chrono_tz::Tz,
    report: bool,
) -> Result<Summary> {
    // Lines are written into memory and handed to stdout a batch at a
    // time: the JSON writer makes several small writes per field, which
    // a `Vec` takes inline where a buffered writer checks its room for each.
    let mut stdout = std::io::stdout().lock();
    let mut out: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut summary = Summary {
        figures: report.then(Default::default),
        ..Summary::default()
    };
    for batch in batches {
        for r in &batch {
            if json {
                serde_json::to_writer(&mut out, r)?;
                out.push(b'\n');
            } else {
                writeln!(out, "{}", timeline_line(r, tz))?;
            }
            summary.add(r);
            if out.len() >= 1 << 16 {
                stdout.write_all(&out)?;
                out.clear();
            }
        }
        let _ = written.send(batch);
    }
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(summary)
}

/// One line of the events file, read and parsed.
struct Line {
    number: usize,
    /// Its length with the newline, for progress.
    len: usize,
    what: What,
}

enum What {
    Blank,
    /// An input to run at its time, its user numbered on the reading
    /// thread in the order the engine will first meet them.
    Input(Input, DateTime<Utc>, NumberedUser),
    /// An event or identify whose message id was seen within the dedup
    /// window: dropped, as the daemon drops it, once the clock is there.
    Duplicate(DateTime<Utc>),
    /// A message taken but not acted on, of this kind.
    Unsupported(&'static str),
    /// Why the line stops the run.
    Bad(String),
}

/// How many lines go to the engine thread at once. Small, and few of
/// them in flight: a line is read by the engine soon after it was parsed,
/// while it is still in the cache the two threads share. Sixteen chunks
/// of 1,024 lines in flight (about 11 MB of parsed events) were evicted
/// before the engine came to them: a quarter of its misses to main memory
/// on the peers workload were properties and lines read back.
const CHUNK: usize = 256;

/// Reads and parses the events file into chunks of lines, until the end,
/// a line that stops the run, or the engine thread stops listening.
fn read_lines(
    mut reader: impl BufRead,
    sender: std::sync::mpsc::SyncSender<Vec<Line>>,
    used: std::sync::mpsc::Receiver<Vec<Line>>,
    name: &str,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    // Message ids are checked and users numbered here, off the engine's
    // thread (see [`look_up`]).
    let mut seen = SeenIds::default();
    let mut users = UserNumbers::default();
    // A line is read where the reader's buffer holds it, found with a
    // vectorised search; one that runs past the buffer's end is gathered
    // in `spill` first.
    let mut spill: Vec<u8> = Vec::new();
    let mut number = 0;
    // The lines of a chunk are parsed first; then, in order, their message
    // ids are checked and their users numbered, each lookup started a few
    // lines ahead: both tables are far larger than the caches.
    let mut lookups: Vec<Lookup> = Vec::with_capacity(CHUNK);
    let what_of = |bytes: &[u8], number: usize| match std::str::from_utf8(bytes) {
        Ok(text) => parse_line(text.trim_end_matches('\r'), name, number),
        Err(_) => Parsed::Other(What::Bad(format!(
            "{name}:{number}: the line is not UTF-8 text"
        ))),
    };
    fn push(chunk: &mut Vec<Line>, lookups: &mut Vec<Lookup>, line: (usize, usize, Parsed)) {
        let (number, len, parsed) = line;
        let mut take = |input: Input, at, len| {
            lookups.push(Lookup::of(chunk.len(), &input));
            let what = What::Input(input, at, NumberedUser::default());
            chunk.push(Line { number, len, what });
        };
        match parsed {
            Parsed::Input(input, at) => take(input, at, len),
            Parsed::Merged(merge, input, at) => {
                // Two inputs of one line: its length counts once.
                take(merge, at, 0);
                take(input, at, len);
            }
            Parsed::Other(what) => chunk.push(Line { number, len, what }),
        }
    }
    loop {
        let (what, len) = match reader.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => (
                Parsed::Other(What::Bad(format!("cannot read {name}: {e}"))),
                0,
            ),
            Ok([]) if spill.is_empty() => break,
            Ok([]) => {
                // The last line, without a newline.
                number += 1;
                let what = what_of(&spill, number);
                let len = std::mem::take(&mut spill).len();
                (what, len)
            }
            Ok(buffer) => match memchr::memchr(b'\n', buffer) {
                None => {
                    spill.extend_from_slice(buffer);
                    let n = buffer.len();
                    reader.consume(n);
                    continue;
                }
                Some(end) => {
                    number += 1;
                    let line = if spill.is_empty() {
                        &buffer[..end]
                    } else {
                        spill.extend_from_slice(&buffer[..end]);
                        &spill[..]
                    };
                    // Its length with the newline, for progress.
                    let (what, len) = (what_of(line, number), line.len() + 1);
                    spill.clear();
                    reader.consume(end + 1);
                    (what, len)
                }
            },
        };
        let stop = matches!(what, Parsed::Other(What::Bad(_)));
        push(&mut chunk, &mut lookups, (number, len, what));
        if stop || chunk.len() == CHUNK {
            look_up(&mut chunk, &mut lookups, &mut seen, &mut users);
            // Inputs the engine is done with are freed here.
            while let Ok(spent) = used.try_recv() {
                drop(spent);
            }
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if sender.send(full).is_err() || stop {
                return;
            }
        }
    }
    if !chunk.is_empty() {
        look_up(&mut chunk, &mut lookups, &mut seen, &mut users);
        let _ = sender.send(chunk);
    }
}

/// An input line's lookups: its message id's hash, if it has one, and
/// its user's.
struct Lookup {
    line: usize,
    id: Option<u64>,
    user: u64,
}

impl Lookup {
    fn of(line: usize, input: &Input) -> Lookup {
        let id = input.message_id();
        Lookup {
            line,
            id: id.map(|id| crate::store::id_hash(id.as_bytes())),
            user: UserNumbers::hash(input.user()),
        }
    }
}

/// The input of line `i` of a chunk, with its user's number.
fn ahead(chunk: &[Line], i: usize) -> Option<(&Input, &NumberedUser)> {
    match chunk.get(i).map(|l| &l.what) {
        Some(What::Input(input, _, who)) => Some((input, who)),
        _ => None,
    }
}

/// How many lines ahead of its input the engine asks for a member's state,
/// then the lists of its event names and traits, then the bytes of those
/// trait names and the event's own history: each needs the one before it
/// in cache, so each is asked for well after it. On the peers workload
/// (engine CPU, medians of 6 interleaved runs): no hints 0.755 s, 8/4/2
/// lines 0.680 s, 16/8/4 0.655 s, 24/12/4 0.655 s; the trait names' bytes
/// took 16/8/4 from 0.665 to 0.630 s (10 runs).
const MEMBER_AHEAD: usize = 16;
const LISTS_AHEAD: usize = 8;
const EVENT_AHEAD: usize = 4;

/// How many lines ahead a lookup is started (16 left the reader 5% less
/// time than 8 on the peers workload).
const LOOK_AHEAD: usize = 16;

/// Checks the message ids of a chunk's inputs, in order (every input runs
/// at its own timestamp, and an earlier one stops the run, so this is the
/// check the engine would make), and numbers the users of those that are
/// new in the order the engine meets them (duplicates never reach it).
fn look_up(
    chunk: &mut [Line],
    lookups: &mut Vec<Lookup>,
    seen: &mut SeenIds,
    users: &mut UserNumbers,
) {
    let mut touched = 0;
    for ahead in lookups.iter().take(LOOK_AHEAD) {
        touched ^= ahead.id.map_or(0, |h| seen.touch(h)) ^ users.touch(ahead.user);
    }
    for (i, lookup) in lookups.iter().enumerate() {
        if let Some(ahead) = lookups.get(i + LOOK_AHEAD) {
            touched ^= ahead.id.map_or(0, |h| seen.touch(h)) ^ users.touch(ahead.user);
        }
        let line = &mut chunk[lookup.line];
        let What::Input(_, at, who) = &mut line.what else {
            continue;
        };
        if let Some(id) = lookup.id
            && !seen.insert_hash(id, *at)
        {
            line.what = What::Duplicate(*at);
            continue;
        }
        *who = users.number_hash(lookup.user);
    }
    std::hint::black_box(touched);
    lookups.clear();
}

/// A line parsed, before its message id and user are looked at.
enum Parsed {
    Input(Input, DateTime<Utc>),
    /// A merge of two ids, then the input that carried both.
    Merged(Input, Input, DateTime<Utc>),
    Other(What),
}

fn parse_line(line: &str, name: &str, number: usize) -> Parsed {
    if line.trim().is_empty() {
        return Parsed::Other(What::Blank);
    }
    match crate::ingest::input_from_text(line) {
        Ok((Message::Input(input), at)) => Parsed::Input(input, at),
        Ok((Message::Merged(merge, input), at)) => Parsed::Merged(merge, input, at),
        Ok((Message::Unsupported { kind, .. }, _)) => Parsed::Other(What::Unsupported(kind)),
        Err(e) => Parsed::Other(What::Bad(format!("{name}:{number}: {e}"))),
    }
}

fn show(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    if tz == chrono_tz::UTC {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        t.with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }
}

/// One record as a marketer reads it.
fn timeline_line(r: &Record, tz: chrono_tz::Tz) -> String {
    let mut what = match r.kind {
        Kind::Send => format!(
            "send {}{}{}",
            r.channel.as_deref().unwrap_or("?"),
            r.template
                .as_ref()
                .map(|t| format!(" template {t}"))
                .unwrap_or_default(),
            r.fields
                .as_ref()
                .filter(|f| f.as_object().is_some_and(|o| !o.is_empty()))
                .map(|f| format!(" {f}"))
                .unwrap_or_default()
        ),
        Kind::Suppressed => format!(
            "suppressed{} ({})",
            r.channel
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            r.reason.as_deref().unwrap_or("?")
        ),
        Kind::Deferred => format!(
            "deferred{} until {} ({})",
            r.channel
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            r.until.map(|u| show(u, tz)).unwrap_or_default(),
            r.reason.as_deref().unwrap_or("?")
        ),
        Kind::Coupon => format!(
            "coupon {} code {}",
            r.coupon.as_deref().unwrap_or("?"),
            r.code.as_deref().unwrap_or("?")
        ),
        Kind::Points => format!(
            "points {} (balance {}){}",
            r.delta.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            r.balance
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            r.reason
                .as_ref()
                .map(|x| format!(" {x}"))
                .unwrap_or_default()
        ),
        Kind::Tag | Kind::Untag => {
            format!("{} {}", r.kind.as_str(), r.tag.as_deref().unwrap_or("?"))
        }
        Kind::Set => format!(
            "set user.{} = {}",
            r.path.as_deref().unwrap_or("?"),
            r.value.as_ref().map(|v| v.to_string()).unwrap_or_default()
        ),
        Kind::Emit => format!("emit {}", r.event.as_deref().unwrap_or("?")),
        Kind::Reward => format!("reward {}", r.task.as_deref().unwrap_or("?")),
        Kind::Enter => format!("enter (on {})", r.event.as_deref().unwrap_or("?")),
        Kind::Goal => format!("goal (on {})", r.event.as_deref().unwrap_or("?")),
        Kind::Exit => format!("exit ({})", r.reason.as_deref().unwrap_or("?")),
        Kind::Error => format!("ERROR {}", r.message.as_deref().unwrap_or("?")),
        Kind::Split => format!(
            "split {}: arm {}",
            r.split.as_deref().unwrap_or("?"),
            r.arm.as_deref().unwrap_or("?")
        ),
        Kind::Skipped => format!("skipped ({})", r.reason.as_deref().unwrap_or("?")),
        Kind::Failed => format!(
            "failed {} after {} attempts ({})",
            r.channel.as_deref().unwrap_or("?"),
            r.attempts.unwrap_or(0),
            r.reason.as_deref().unwrap_or("?")
        ),
        Kind::Delivered => format!(
            "delivered {} on replay",
            r.channel.as_deref().unwrap_or("?")
        ),
        Kind::Outcome => format!(
            "outcome {} of {}: {}",
            r.channel.as_deref().unwrap_or("?"),
            r.staff.as_deref().unwrap_or("?"),
            r.reason.as_deref().unwrap_or("?")
        ),
        Kind::Merged => format!(
            "merged {} ({})",
            r.merged.as_deref().unwrap_or("?"),
            r.reason.as_deref().unwrap_or("?")
        ),
        Kind::Consent => {
            let (granted, source) = r
                .consent
                .as_ref()
                .map_or((false, "?"), |c| (c.granted, c.source.as_str()));
            format!(
                "consent {} {} ({source})",
                r.channel.as_deref().unwrap_or("?"),
                if granted { "granted" } else { "revoked" }
            )
        }
    };
    if let Some(line) = r.line {
        what.push_str(&format!("  [line {line}]"));
    }
    format!(
        "{}  {:<10} {:<18} {}",
        show(r.at, tz),
        r.user,
        r.journey.as_deref().unwrap_or("-"),
        what
    )
}

/// What the run did per journey, rule and task, printed after it.
#[derive(Default)]
struct Summary {
    journeys: BTreeMap<String, Counts>,
    /// The figures of the report, when one is asked for.
    figures: Option<super::report::Figures>,
}

#[derive(Default)]
struct Counts {
    /// A rule's (records of version `rule`): it enters nobody, it fires.
    rule: bool,
    entered: u64,
    /// A rule's firings: its runs that did something, told apart by
    /// their user and instance number.
    fired: u64,
    last_firing: Option<(String, u64)>,
    goals: u64,
    sends: u64,
    errors: u64,
    suppressed: BTreeMap<String, u64>,
}

impl Summary {
    fn add(&mut self, r: &Record) {
        if let Some(figures) = &mut self.figures {
            figures.add(r);
        }
        let Some(journey) = &r.journey else { return };
        if !self.journeys.contains_key(journey.as_str()) {
            self.journeys.insert(journey.to_string(), Counts::default());
        }
        let c = self
            .journeys
            .get_mut(journey.as_str())
            .expect("just inserted");
        if r.version.as_deref() == Some("rule") {
            c.rule = true;
            // A firing's records come together, on its event; a condition
            // that failed to evaluate (an `error` record) fired nothing.
            let firing = r
                .instance
                .filter(|_| r.kind != Kind::Error)
                .map(|i| (r.user.as_str(), i));
            if firing.is_some() && firing != c.last_firing.as_ref().map(|(u, i)| (u.as_str(), *i)) {
                c.fired += 1;
                c.last_firing = firing.map(|(u, i)| (u.to_string(), i));
            }
        }
        match r.kind {
            Kind::Enter => c.entered += 1,
            Kind::Goal => c.goals += 1,
            Kind::Send => c.sends += 1,
            Kind::Error => c.errors += 1,
            Kind::Suppressed => {
                *c.suppressed
                    .entry(r.reason.clone().unwrap_or_default())
                    .or_default() += 1
            }
            _ => {}
        }
    }

    /// Each rule's firings.
    fn fired(&self) -> BTreeMap<String, u64> {
        self.journeys
            .iter()
            .filter(|(_, c)| c.rule)
            .map(|(name, c)| (name.clone(), c.fired))
            .collect()
    }

    /// Journeys (and tasks), then rules, each in a table as wide as its
    /// longest name.
    fn render(&self) -> String {
        let mut out = String::from("summary\n");
        for rules in [false, true] {
            let rows: Vec<(&String, &Counts)> = self
                .journeys
                .iter()
                .filter(|(_, c)| c.rule == rules)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let (title, first) = if rules {
                ("rule", "fired")
            } else {
                ("journey", "entered")
            };
            let width = rows
                .iter()
                .map(|(name, _)| name.chars().count())
                .chain([20])
                .max()
                .unwrap_or(20);
            out.push_str(&format!(
                "  {title:<width$} {first:>8} {:>6} {:>6} {:>6}  suppressed\n",
                "goals", "sends", "errors"
            ));
            for (name, c) in rows {
                let suppressed: Vec<String> = c
                    .suppressed
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                out.push_str(&format!(
                    "  {name:<width$} {:>8} {:>6} {:>6} {:>6}  {}\n",
                    if rules { c.fired } else { c.entered },
                    c.goals,
                    c.sends,
                    c.errors,
                    if suppressed.is_empty() {
                        "-".to_string()
                    } else {
                        suppressed.join(", ")
                    }
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `text` as `read_lines` reads it through a buffer of
    /// `buffer` bytes: (number, length with its newline, what it is).
    fn lines(text: &[u8], buffer: usize) -> Vec<(usize, usize, String)> {
        let reader = std::io::BufReader::with_capacity(buffer, text);
        let (sender, chunks) = std::sync::mpsc::sync_channel(16);
        let (_give_back, used) = std::sync::mpsc::channel();
        read_lines(reader, sender, used, "events.jsonl");
        chunks
            .into_iter()
            .flatten()
            .map(|l| {
                let what = match l.what {
                    What::Blank => "blank".to_string(),
                    What::Input(input, _, _) => format!("input {}", input.user()),
                    What::Duplicate(_) => "duplicate".to_string(),
                    What::Unsupported(kind) => format!("unsupported {kind}"),
                    What::Bad(why) => format!("bad {why}"),
                };
                (l.number, l.len, what)
            })
            .collect()
    }

    #[test]
    fn lines_are_read_whole_wherever_the_buffer_ends() {
        let track = |user: &str, id: &str| {
            format!(
                r#"{{"type":"track","userId":"{user}","event":"e","messageId":"{id}","timestamp":"2025-11-01T00:00:00Z"}}"#
            )
        };
        let long = format!(
            r#"{{"type":"track","userId":"c","event":"e","properties":{{"pad":"{}"}},"messageId":"3","timestamp":"2025-11-01T00:00:00Z"}}"#,
            "x".repeat(300)
        );
        let text = format!(
            "{}\r\n\n{}\n{}\n{}\n{}",
            track("a", "1"),
            track("b", "2"),
            long,
            track("d", "2"),
            track("e", "4")
        );
        let expected = vec![
            (1, track("a", "1").len() + 2, "input a".to_string()),
            (2, 1, "blank".to_string()),
            (3, track("b", "2").len() + 1, "input b".to_string()),
            (4, long.len() + 1, "input c".to_string()),
            (5, track("d", "2").len() + 1, "duplicate".to_string()),
            // The last line has no newline.
            (6, track("e", "4").len(), "input e".to_string()),
        ];
        // Buffers smaller than a line, than the long line, and larger than all.
        for buffer in [7, 64, 1 << 16] {
            assert_eq!(lines(text.as_bytes(), buffer), expected, "buffer {buffer}");
        }
    }

    #[test]
    fn ids_are_checked_and_users_numbered_in_order_across_chunks() {
        let track = |user: &str, id: &str| {
            format!(
                r#"{{"type":"track","userId":"{user}","event":"e","messageId":"{id}","timestamp":"2025-11-01T00:00:00Z"}}"#
            )
        };
        // Users u0..u99 in turn over several chunks, each line its own id,
        // but every 7th line repeats an id from a chunk or more before;
        // the user of a repeat is one met nowhere else ("dup…").
        let count = 3 * CHUNK + 11;
        let mut text = String::new();
        for i in 0..count {
            let line = if i % 7 == 6 && i > CHUNK {
                track(&format!("dup{i}"), &format!("m{}", i - CHUNK - 1))
            } else {
                track(&format!("u{}", i % 100), &format!("m{i}"))
            };
            text.push_str(&line);
            text.push('\n');
        }
        let reader = std::io::BufReader::new(text.as_bytes());
        let (sender, chunks) = std::sync::mpsc::sync_channel(16);
        let (_give_back, used) = std::sync::mpsc::channel();
        read_lines(reader, sender, used, "events.jsonl");
        let mut numbers = std::collections::HashMap::new();
        let mut read = 0;
        for line in chunks.into_iter().flatten() {
            let i = line.number - 1;
            read += 1;
            match line.what {
                What::Duplicate(_) => assert!(i % 7 == 6 && i > CHUNK, "line {i}"),
                What::Input(input, _, who) => {
                    assert!(!input.user().starts_with("dup"), "line {i}");
                    let first = *numbers
                        .entry(input.user().to_string())
                        .or_insert(who.number);
                    assert_eq!(who.number, first, "{} keeps its number", input.user());
                }
                _ => panic!("line {i}"),
            }
        }
        assert_eq!(read, count);
        // Numbered in the order first met, duplicates never numbered.
        let mut order: Vec<(u32, String)> = numbers.into_iter().map(|(u, n)| (n, u)).collect();
        order.sort();
        let expected: Vec<(u32, String)> = (0..100).map(|n| (n, format!("u{n}"))).collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn a_line_that_is_not_utf8_stops_the_run_at_its_number() {
        let bad: &[u8] = b"{\"type\":\"track\",\"userId\":\"\xff\"}";
        let text = [b"\n", bad, b"\n{}\n"].concat();
        for buffer in [5, 1 << 16] {
            let read = lines(&text, buffer);
            assert_eq!(read.len(), 2, "reading stops at the bad line: {read:?}");
            assert_eq!(
                read[1],
                (
                    2,
                    bad.len() + 1,
                    "bad events.jsonl:2: the line is not UTF-8 text".to_string()
                )
            );
        }
    }

    fn record(user: &str, journey: &str, version: &str, kind: Kind, instance: u64) -> Record {
        let at = "2025-11-01T00:00:00Z".parse().unwrap();
        let mut r = Record::new(at, user, kind);
        r.journey = Some(journey.into());
        r.version = Some(version.into());
        r.instance = Some(instance);
        r
    }

    #[test]
    fn rules_are_counted_by_firings_and_long_names_keep_the_columns() {
        let rule = "r10_platinum_checkout_view_long";
        let mut summary = Summary::default();
        for r in [
            record("u1", "welcome", "v1", Kind::Enter, 0),
            record("u1", "welcome", "v1", Kind::Send, 0),
            // Two actions of one firing, then two more firings.
            record("u1", rule, "rule", Kind::Emit, 1),
            record("u1", rule, "rule", Kind::Tag, 1),
            record("u1", rule, "rule", Kind::Emit, 2),
            record("u2", rule, "rule", Kind::Emit, 1),
            record("u3", rule, "rule", Kind::Error, 1),
        ] {
            summary.add(&r);
        }
        let text = summary.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "summary");
        assert!(lines[1].starts_with("  journey "), "{text}");
        assert!(lines[2].starts_with("  welcome "), "{text}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>()[1..5],
            ["1", "0", "1", "0"]
        );
        assert!(lines[3].starts_with("  rule "), "{text}");
        let fired: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(fired[..3], [rule, "3", "0"], "{text}");
        assert_eq!(fired[4], "1", "the error is counted as one: {text}");
        // Every column of the rules' table lines up under its heading.
        let heading = lines[3].find("fired").unwrap() + "fired".len();
        assert_eq!(lines[4].find(" 3 ").unwrap() + 2, heading, "{text}");
    }
}
