//! The `log` kind: each delivered message is one JSON line — the journal's
//! `send` record shape: time, user, journey, version, step, channel, `to`,
//! template, fields and `idempotency_key` — appended to a file, or written to
//! stdout with `path = "-"`. For demos, and for seeing what would be sent.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use toml::Table;
use waymark_channel::ConfigError;
use waymark_channel::Message;
use waymark_channel::{
    BuildError, Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt,
    unknown_settings,
};

pub struct LogKind;

/// Where the log kind writes: `None` for stdout (`path = "-"`).
#[derive(Debug, Clone)]
pub struct LogSettings {
    path: Option<PathBuf>,
}

impl ChannelKind for LogKind {
    type Settings = LogSettings;

    fn name(&self) -> &'static str {
        "log"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: Vec::new(),
            accepted: None,
        }
    }

    fn settings(&self, path: &str, table: &Table) -> Result<LogSettings, Vec<ConfigError>> {
        let mut errors = unknown_settings(path, table, &["path"]);
        let file = match table.get("path") {
            None => None,
            Some(toml::Value::String(s)) if s == "-" => None,
            Some(toml::Value::String(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            Some(_) => {
                errors.push(ConfigError::new(
                    format!("{path}.path"),
                    "must be a file path, or \"-\" for stdout",
                ));
                None
            }
        };
        if errors.is_empty() {
            Ok(LogSettings { path: file })
        } else {
            Err(errors)
        }
    }

    fn build(&self, _name: &str, settings: LogSettings) -> Result<Arc<dyn Channel>, BuildError> {
        let io = |what: String| move |source| BuildError::Io { what, source };
        let target = match settings.path {
            None => Target::Stdout,
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(io(format!("create {}", dir.display())))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(&path)
                    .map_err(io(format!("open {}", path.display())))?;
                end_torn_line(&mut file).map_err(io(format!("write {}", path.display())))?;
                Target::File(Mutex::new(file))
            }
        };
        Ok(Arc::new(LogChannel { target }))
    }
}

/// Ends a line left without its newline (a process killed in the middle
/// of writing it), so the next record starts a line of its own. The torn
/// message was never recorded as delivered, so it is written again whole.
fn end_torn_line(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

enum Target {
    Stdout,
    File(Mutex<std::fs::File>),
}

struct LogChannel {
    target: Target,
}

impl Channel for LogChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let mut line = serde_json::to_value(message)
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            // The journal's shape: a `send` record with its key.
            line["kind"] = serde_json::Value::String("send".into());
            let mut text = line.to_string();
            text.push('\n');
            let written = match &self.target {
                Target::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
                Target::File(file) => file
                    .lock()
                    .map_err(|_| std::io::Error::other("log file lock poisoned"))?
                    .write_all(text.as_bytes()),
            };
            written.map_err(|e| DeliveryError::Retryable(e.to_string()))?;
            Ok(Receipt::default())
        })
    }
}
