//! JSON log lines for `log.format = "json"`, in tracing-subscriber's
//! shape (`timestamp`, `level`, `fields`, `target`, `spans`), except that a
//! field holding a list stays a JSON array: tracing records a `?list` as
//! its Debug text, which tracing-subscriber's own JSON writes as one
//! string (`"added":"[\"welcome\"]"`), so a log pipeline cannot read the
//! list. Here a Debug value that is a JSON array is written as that array;
//! anything else is written as tracing-subscriber would.

use serde_json::{Map, Value as Json};
use std::fmt;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use waymark_core::clock::Clock;

/// The event formatter; pair it with `.fmt_fields(JsonFields::new())` so
/// span fields are JSON too.
pub struct JsonLines {
    /// Where each line's `timestamp` comes from.
    clock: Arc<dyn Clock>,
}

impl JsonLines {
    pub fn new(clock: Arc<dyn Clock>) -> JsonLines {
        JsonLines { clock }
    }
}

/// A recorded field value: a Debug text that is a JSON array becomes the array.
fn debug_value(text: String) -> Json {
    if text.starts_with('[')
        && let Ok(list @ Json::Array(_)) = serde_json::from_str::<Json>(&text)
    {
        return list;
    }
    Json::String(text)
}

struct Fields(Map<String, Json>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), debug_value(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            self.clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("fields".into(), Json::Object(fields.0));
        line.insert("target".into(), meta.target().into());
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let mut object = Map::new();
                if let Some(recorded) = span.extensions().get::<FormattedFields<JsonFields>>()
                    && let Ok(Json::Object(map)) = serde_json::from_str::<Json>(recorded)
                {
                    object = map
                        .into_iter()
                        .map(|(k, v)| match v {
                            Json::String(s) => (k, debug_value(s)),
                            v => (k, v),
                        })
                        .collect();
                }
                object.insert("name".into(), span.name().into());
                spans.push(Json::Object(object));
            }
        }
        if let Some(last) = spans.last() {
            line.insert("span".into(), last.clone());
            line.insert("spans".into(), Json::Array(spans));
        }
        writeln!(writer, "{}", Json::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;
    use waymark_core::clock::ManualClock;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lists_in_json_logs_stay_arrays() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::new(Arc::new(ManualClock::new(
                "2025-11-10T12:00:00.123456Z".parse().unwrap(),
            ))))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("delivery", channel = "sms", keys = ?vec!["k1"]);
            let _entered = span.enter();
            let added = vec!["welcome".to_string(), "购物车 \"挽回\"".to_string()];
            let removed: Vec<String> = Vec::new();
            tracing::info!(added = ?added, removed = ?removed, journeys = 2, user = %"u1", journey = ?Some("welcome"), "scripts deployed");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Json = serde_json::from_str(text.trim()).unwrap();
        let fields = &line["fields"];
        assert_eq!(
            fields["added"],
            serde_json::json!(["welcome", "购物车 \"挽回\""]),
            "{line}"
        );
        assert_eq!(fields["removed"], serde_json::json!([]), "{line}");
        assert_eq!(fields["journeys"], 2, "{line}");
        assert_eq!(fields["user"], "u1", "{line}");
        assert_eq!(fields["journey"], "Some(\"welcome\")", "{line}");
        assert_eq!(fields["message"], "scripts deployed", "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["timestamp"], "2025-11-10T12:00:00.123456Z", "{line}");
        assert_eq!(line["span"]["channel"], "sms", "{line}");
        assert_eq!(line["span"]["keys"], serde_json::json!(["k1"]), "{line}");
    }
}
