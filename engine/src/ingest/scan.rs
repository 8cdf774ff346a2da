//! A direct reader for the JSON text of a plain Segment message: the
//! top-level fields a `track` or `identify` is made of, borrowed from the
//! text, and its `properties` or `traits` built as values in the same pass.
//! It reads only what it can read exactly as the JSON parser would: keys
//! and strings without escapes, numbers, `true`, `false`, `null`, records
//! and lists; other fields' values are checked as JSON and skipped.
//! Anything else (an escape in what it reads, deep nesting, text that is
//! not JSON, a null `type`) makes it answer `None`,
//! and the caller reads the message the general way, which decides what
//! it is. Reading events is most of what `simulate` spends outside
//! the engine, and a general JSON parser over a message's few fields was
//! most of that.

use rust_decimal::Decimal;
use waymark_dsl::value::Value;

/// The fields of a plain message, as a parser reading them into options
/// would give them: absent and `null` are both `None`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Scanned<'a> {
    pub kind: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub event: Option<&'a str>,
    pub properties: Option<Value>,
    pub traits: Option<Value>,
    pub timestamp: Option<&'a str>,
    pub message_id: Option<&'a str>,
}

/// How deep records and lists may nest before the general reader is left
/// to decide (well under the JSON parser's own limit).
const DEPTH: usize = 32;

/// The message in `text`, or `None` for anything not read exactly.
pub(super) fn scan(text: &str) -> Option<Scanned<'_>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut out = Scanned::default();
    s.space();
    if s.peek() != Some(b'{') {
        return None;
    }
    // A repeated field keeps its last value, as the general path's map does.
    s.items(b'}', |s| {
        let key = s.name()?;
        let text = match key {
            "type" => &mut out.kind,
            "userId" => &mut out.user_id,
            "anonymousId" => &mut out.anonymous_id,
            "event" => &mut out.event,
            "timestamp" => &mut out.timestamp,
            "messageId" => &mut out.message_id,
            "properties" | "traits" => {
                let record = match s.value(0)? {
                    Value::Null => None,
                    v => Some(v),
                };
                *if key == "traits" {
                    &mut out.traits
                } else {
                    &mut out.properties
                } = record;
                return Some(());
            }
            _ => return s.skip(0),
        };
        *text = if s.eat_literal(b"null") {
            // The general path refuses a null type: let it say so.
            if key == "type" {
                return None;
            }
            None
        } else {
            Some(s.string()?)
        };
        Some(())
    })?;
    s.space();
    (s.at == s.bytes.len()).then_some(out)
}

/// The text of each item of a body `{"batch": [items…]}`, its other
/// fields checked as JSON and skipped; `None` for anything else (a body
/// that is not such an object, one whose `batch` is not an array or is
/// named twice, a name with an escape, deep nesting, text that is not
/// JSON), which the caller reads the general way. What it answers for is
/// valid JSON, so the caller's general path is left only what an item
/// says.
pub(super) fn batch_items(text: &str) -> Option<Vec<&str>> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut items = None;
    s.space();
    if s.peek() != Some(b'{') {
        return None;
    }
    s.items(b'}', |s| {
        if s.name()? != "batch" {
            return s.skip(0);
        }
        if items.is_some() || s.peek() != Some(b'[') {
            return None;
        }
        let mut found = Vec::new();
        s.items(b']', |s| {
            let start = s.at;
            s.skip(1)?;
            found.push(s.text.get(start..s.at)?);
            Some(())
        })?;
        items = Some(found);
        Some(())
    })?;
    s.space();
    if s.at != s.bytes.len() {
        return None;
    }
    items
}

/// The bytes that end a string without escapes, or make it one this
/// reader leaves alone: the closing quote, a backslash, a control
/// character.
static ENDS_PLAIN_STRING: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.eat_if(byte).then_some(())
    }

    fn eat_if(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn eat_literal(&mut self, literal: &[u8]) -> bool {
        let found = self.bytes[self.at..].starts_with(literal);
        if found {
            self.at += literal.len();
        }
        found
    }

    /// A string without escapes (or control characters, which JSON refuses
    /// unescaped), borrowed from the text.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = self.bytes[start..]
            .iter()
            .position(|&b| ENDS_PLAIN_STRING[usize::from(b)])?;
        self.at = start + len;
        self.eat(b'"')?;
        // Both ends are ASCII quotes, so these are character boundaries.
        self.text.get(start..start + len)
    }

    /// A number as the JSON parser gives it to a value: an integer that
    /// fits 64 bits as that integer; any other as the parser's own float
    /// (read by the parser itself, so it rounds as it does), then made a
    /// value as the general path makes one.
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        self.skip_number()?;
        let text = self.text.get(start..self.at)?;
        let integer = !text.contains(['.', 'e', 'E']) && text != "-0";
        if integer {
            if let Ok(n) = text.parse::<i64>() {
                return Some(Value::Number(Decimal::from(n)));
            }
            if let Ok(n) = text.parse::<u64>() {
                return Some(Value::Number(Decimal::from(n)));
            }
        }
        let float: f64 = serde_json::from_str(text).ok()?;
        Some(
            serde_json::Number::from_f64(float)
                .map(|n| Value::from_json(&serde_json::Value::Number(n)))
                .unwrap_or(Value::Null),
        )
    }

    /// The items of the record or list whose opening bracket is next, each
    /// read by `item`, up to its `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.at += 1;
        self.space();
        if self.eat_if(close) {
            return Some(());
        }
        loop {
            item(self)?;
            self.space();
            if !self.eat_if(b',') {
                return self.eat(close);
            }
            self.space();
        }
    }

    /// A record's `"name":` before a value.
    fn name(&mut self) -> Option<&'a str> {
        let name = self.string()?;
        self.space();
        self.eat(b':')?;
        self.space();
        Some(name)
    }

    /// A value, built as the general reader builds it.
    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth >= DEPTH {
            return None;
        }
        Some(match self.peek()? {
            b'"' => Value::String(self.string()?.to_string()),
            b'{' => {
                let mut pairs = Vec::new();
                self.items(b'}', |s| {
                    let key = s.name()?;
                    pairs.push((key.to_string(), s.value(depth + 1)?));
                    Some(())
                })?;
                // A repeated name keeps its last value, as JSON objects
                // read into a map do.
                Value::Record(pairs.into_iter().collect())
            }
            b'[' => {
                let mut items = Vec::new();
                self.items(b']', |s| {
                    items.push(s.value(depth + 1)?);
                    Some(())
                })?;
                Value::List(items)
            }
            b't' if self.eat_literal(b"true") => Value::Bool(true),
            b'f' if self.eat_literal(b"false") => Value::Bool(false),
            b'n' if self.eat_literal(b"null") => Value::Null,
            _ => self.number()?,
        })
    }

    /// Checks one JSON value of a field nobody reads, and steps over it.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth >= DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.items(b'}', |s| {
                s.skip_string()?;
                s.space();
                s.eat(b':')?;
                s.space();
                s.skip(depth + 1)
            }),
            b'[' => self.items(b']', |s| s.skip(depth + 1)),
            b't' if self.eat_literal(b"true") => Some(()),
            b'f' if self.eat_literal(b"false") => Some(()),
            b'n' if self.eat_literal(b"null") => Some(()),
            _ => self.skip_number(),
        }
    }

    /// A string with any valid escapes.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        // Surrogates are left to the general reader, which
                        // checks that they pair up.
                        b'u' => {
                            let hex = self.bytes.get(self.at + 1..self.at + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit)
                                || matches!(hex[0], b'd' | b'D')
                            {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                0..0x20 => return None,
                _ => self.at += 1,
            }
        }
    }

    /// A number in JSON's grammar, any size.
    fn skip_number(&mut self) -> Option<()> {
        let digits = |s: &mut Scanner| {
            let start = s.at;
            while let Some(b'0'..=b'9') = s.peek() {
                s.at += 1;
            }
            (s.at > start).then_some(())
        };
        self.eat_if(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => digits(self)?,
            _ => return None,
        }
        if self.eat_if(b'.') {
            digits(self)?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if !self.eat_if(b'+') {
                self.eat_if(b'-');
            }
            digits(self)?;
        }
        // `01` is not a number, and neither is `1x`.
        match self.peek() {
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.') => None,
            _ => Some(()),
        }
    }
}
