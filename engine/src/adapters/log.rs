//! The `log` kind: each delivered message is one JSON line — its journal
//! record plus `idempotency_key` — appended to a file, or written to
//! stdout with `path = "-"`. For demos, and for seeing what would be sent.

use super::{
    Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt, unknown_settings,
};
use crate::config::ConfigError;
use crate::journal::Record;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use toml::Table;

pub struct LogKind;

impl ChannelKind for LogKind {
    fn name(&self) -> &'static str {
        "log"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: Vec::new(),
            accepted: None,
        }
    }

    fn validate(&self, path: &str, settings: &Table) -> Vec<ConfigError> {
        let mut errors = unknown_settings(path, settings, &["path"]);
        match settings.get("path") {
            None => {}
            Some(toml::Value::String(s)) if !s.is_empty() => {}
            Some(_) => errors.push(ConfigError {
                path: format!("{path}.path"),
                message: "must be a file path, or \"-\" for stdout".into(),
            }),
        }
        errors
    }

    fn build(&self, _name: &str, settings: &Table) -> Result<Arc<dyn Channel>, String> {
        let path = settings.get("path").and_then(|p| p.as_str()).unwrap_or("-");
        let target = if path == "-" {
            Target::Stdout
        } else {
            let path = PathBuf::from(path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            end_torn_line(&mut file)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Target::File(Mutex::new(file))
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
    fn deliver<'a>(&'a self, message: &'a Record, key: &'a str) -> Delivery<'a> {
        Box::pin(async move {
            let mut line = serde_json::to_value(message)
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            line["idempotency_key"] = serde_json::Value::String(key.to_string());
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

impl From<std::io::Error> for DeliveryError {
    fn from(e: std::io::Error) -> Self {
        DeliveryError::Retryable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::conformance::{check_kind, sample_send};

    #[tokio::test]
    async fn a_line_torn_by_a_crash_is_ended_before_the_next_one() {
        let dir = std::env::temp_dir().join(format!("waymark-log-torn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sent.jsonl");
        std::fs::write(&file, "{\"whole\":1}\n{\"torn").unwrap();
        let mut settings = Table::new();
        settings.insert("path".into(), file.display().to_string().into());
        let channel = LogKind.build("sms", &settings).unwrap();
        let message = sample_send("sms", Some("u1"), Some("T1"), serde_json::json!({}));
        channel.deliver(&message, "k1").await.unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["{\"whole\":1}", "{\"torn"]);
        let last: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(last["idempotency_key"], "k1");
        // A file that ends whole is left alone.
        LogKind.build("sms", &settings).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_log_kind_conforms_and_writes_one_line_per_delivery_with_its_key() {
        let dir = std::env::temp_dir().join(format!("waymark-log-kind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("sub/sent.jsonl");
        let mut settings = Table::new();
        settings.insert("path".into(), file.display().to_string().into());
        let message = sample_send("sms", Some("u1"), Some("T1"), serde_json::json!({ "n": 1 }));
        let delivered = check_kind(&LogKind, &settings, &message).await;
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), delivered.accepted);
        assert_eq!(lines[0]["idempotency_key"], delivered.key.as_str());
        assert_eq!(lines[0]["template"], "T1");
        assert_eq!(lines[0]["fields"], serde_json::json!({ "n": 1 }));
        assert_eq!(lines[1]["idempotency_key"], delivered.key.as_str());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
