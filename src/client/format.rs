//! How `culex_sub` and `culex_rr` print a message: plain, `-v`, or `-F format` with
//! Mosquitto's specifiers (`client/sub_client_output.c` of mosquitto 2.0), so the
//! output of a script is the same byte for byte.
//!
//! `%` specifiers take Mosquitto's optional flags: `-` (left align), `0` (zero pad), a
//! field width and a precision (`%-10.3t`). `@` specifiers are strftime's on the local
//! time (`@Y-@m-@d`, `@N` nanoseconds, `@@`); `\` escapes are `\\ \0 \a \e \n \r \t \v`.
//!
//! | spec | prints |
//! |------|--------|
//! | `%%` | `%` |
//! | `%t` `%p` `%q` `%r` `%l` `%m` | topic, payload, QoS, retain flag, payload length, packet id (0 for QoS 0) |
//! | `%x` `%X` | payload in lower/upper case hex |
//! | `%I` `%U` | ISO 8601 local time (`2024-01-02T03:04:05+0100`), Unix time with nanoseconds |
//! | `%j` `%J` | JSON object with the payload as a string / as JSON (`%J` needs a JSON payload) |
//! | `%A` `%C` `%D` `%E` `%F` `%P` `%R` `%S` | MQTT 5: topic alias, content type, correlation data, message expiry, payload format, user properties, response topic, subscription identifier |

use std::fmt::Write as _;

use jiff::ZonedDateTime as Zoned;

use super::Message;

/// Output options of the tools.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    pub format: Option<String>,
    pub verbose: bool,
    /// Newline after each message (not `-N`).
    pub eol: bool,
    pub pretty: bool,
}

/// Checks a `-F` format as Mosquitto does before connecting; the error text is its.
pub fn check(format: &str) -> Result<(), String> {
    let b = format.as_bytes();
    let len = b.len();
    let incomplete = || Err("Error: Incomplete format specifier.\n".to_owned());
    let mut i = 0;
    while i < len {
        match b[i] {
            b'%' => {
                if i == len - 1 {
                    return incomplete();
                }
                if b[i + 1] == b'0' || b[i + 1] == b'-' {
                    i += 1;
                    if i == len - 1 {
                        return incomplete();
                    }
                }
                while b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    if i == len - 1 {
                        return incomplete();
                    }
                }
                if b.get(i + 1) == Some(&b'.') {
                    i += 1;
                    if i == len - 1 {
                        return incomplete();
                    }
                    while b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                        if i == len - 1 {
                            return incomplete();
                        }
                    }
                }
                let spec = b.get(i + 1).copied().unwrap_or(0);
                if !b"%ACDEFIlmPpqRSrtjJUxX".contains(&spec) {
                    return Err(format!(
                        "Error: Invalid format specifier '{}'.\n",
                        char::from(spec)
                    ));
                }
                i += 1;
            }
            b'@' => {
                if i == len - 1 {
                    return incomplete();
                }
                i += 1;
            }
            b'\\' => {
                if i == len - 1 {
                    return Err("Error: Incomplete escape specifier.\n".to_owned());
                }
                if !b"\\0aenrtv".contains(&b[i + 1]) {
                    return Err(format!(
                        "Error: Invalid escape specifier '{}'.\n",
                        char::from(b[i + 1])
                    ));
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Appends what the tools print for `message` received at `now`; returns the error
/// lines Mosquitto prints to stderr for it (a `%J` payload that is not JSON).
pub fn render(
    out: &mut Vec<u8>,
    options: &OutputOptions,
    message: &Message,
    now: &Zoned,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(format) = &options.format {
        formatted(out, format, options.pretty, message, now, &mut errors);
        if options.eol {
            out.push(b'\n');
        }
    } else if options.verbose {
        if message.payload.is_empty() {
            if options.eol {
                out.extend_from_slice(message.topic.as_bytes());
                out.extend_from_slice(b" (null)\n");
            }
        } else {
            out.extend_from_slice(message.topic.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&message.payload);
            if options.eol {
                out.push(b'\n');
            }
        }
    } else if !message.payload.is_empty() {
        // Mosquitto prints nothing at all for an empty payload without -v.
        out.extend_from_slice(&message.payload);
        if options.eol {
            out.push(b'\n');
        }
    }
    errors
}

#[derive(Clone, Copy)]
struct Spec {
    left: bool,
    pad: u8,
    width: usize,
    precision: Option<usize>,
}

fn formatted(
    out: &mut Vec<u8>,
    format: &str,
    pretty: bool,
    m: &Message,
    now: &Zoned,
    errors: &mut Vec<String>,
) {
    let b = format.as_bytes();
    let len = b.len();
    let mut i = 0;
    while i < len {
        match b[i] {
            b'%' => {
                let mut spec = Spec {
                    left: false,
                    pad: b' ',
                    width: 0,
                    precision: None,
                };
                if i < len - 1 {
                    i += 1;
                    if b[i] == b'-' {
                        spec.left = true;
                        if i < len - 1 {
                            i += 1;
                        }
                    }
                    if b[i] == b'0' {
                        spec.pad = b'0';
                        if i < len - 1 {
                            i += 1;
                        }
                    }
                    while i < len - 1 && b[i].is_ascii_digit() {
                        spec.width = spec.width * 10 + usize::from(b[i] - b'0');
                        i += 1;
                    }
                    if b[i] == b'.' && i < len - 1 {
                        i += 1;
                        let mut p = 0;
                        while i < len - 1 && b[i].is_ascii_digit() {
                            p = p * 10 + usize::from(b[i] - b'0');
                            i += 1;
                        }
                        spec.precision = Some(p);
                    }
                    percent(out, b[i], spec, pretty, m, now, errors);
                }
            }
            b'@' => {
                if i < len - 1 {
                    i += 1;
                    match b[i] {
                        b'@' => out.push(b'@'),
                        b'N' => {
                            let _ = write!(Bytes(out), "{:09}", now.subsec_nanosecond());
                        }
                        c => {
                            let fmt = format!("%{}", char::from(c));
                            if let Ok(s) = jiff::fmt::strtime::format(fmt.as_bytes(), now) {
                                out.extend_from_slice(s.as_bytes());
                            }
                        }
                    }
                }
            }
            b'\\' => {
                if i < len - 1 {
                    i += 1;
                    match b[i] {
                        b'\\' => out.push(b'\\'),
                        b'0' => out.push(0),
                        b'a' => out.push(0x07),
                        b'e' => out.push(0x1b),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'v' => out.push(0x0b),
                        _ => {}
                    }
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
}

fn percent(
    out: &mut Vec<u8>,
    c: u8,
    spec: Spec,
    pretty: bool,
    m: &Message,
    now: &Zoned,
    errors: &mut Vec<String>,
) {
    let p = &m.properties;
    match c {
        b'%' => out.push(b'%'),
        b'A' => int_or_blank(out, p.topic_alias.map(i64::from), spec),
        b'C' => str_or_blank(out, p.content_type.as_deref(), spec),
        b'D' => {
            if let Some(data) = &p.correlation_data {
                out.extend_from_slice(data);
            }
        }
        b'E' => int_or_blank(out, p.message_expiry_interval.map(i64::from), spec),
        b'F' => int_or_blank(out, p.payload_format_indicator.map(i64::from), spec),
        b'I' => {
            let s = iso8601(now);
            string(out, &s, spec);
        }
        b'j' | b'J' => {
            if let Err(e) = json(out, m, now, c == b'j', pretty) {
                errors.push(e);
            }
        }
        b'l' => int(out, m.payload.len() as i64, spec),
        b'm' => int(out, m.packet_id.map_or(0, |id| i64::from(id.get())), spec),
        b'P' => {
            for (n, (k, v)) in p.user_properties.iter().enumerate() {
                if n > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(k.as_bytes());
                out.push(b':');
                out.extend_from_slice(v.as_bytes());
            }
        }
        b'p' => payload(out, &m.payload, Hex::No, spec),
        b'q' => out.push(b'0' + m.qos as u8),
        b'R' => {
            if let Some(t) = &p.response_topic {
                string(out, t, spec);
            }
        }
        b'r' => out.push(if m.retain { b'1' } else { b'0' }),
        b'S' => int_or_blank(
            out,
            p.subscription_identifiers.first().map(|v| i64::from(*v)),
            spec,
        ),
        b't' => string(out, &m.topic, spec),
        b'U' => {
            let _ = write!(
                Bytes(out),
                "{}.{:09}",
                now.timestamp().as_second(),
                now.subsec_nanosecond()
            );
        }
        b'x' => payload(out, &m.payload, Hex::Lower, spec),
        b'X' => payload(out, &m.payload, Hex::Upper, spec),
        _ => {}
    }
}

/// `strftime("%FT%T%z")` on the local time.
fn iso8601(now: &Zoned) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%z", now).unwrap_or_default()
}

/// An `fmt::Write` over the output bytes.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn pad(out: &mut Vec<u8>, byte: u8, n: usize) {
    out.resize(out.len() + n, byte);
}

/// printf's `%d`, `%-Nd`, `%0Nd`, `%Nd`.
fn int(out: &mut Vec<u8>, value: i64, spec: Spec) {
    let digits = value.to_string();
    let fill = spec.width.saturating_sub(digits.len());
    if spec.left {
        out.extend_from_slice(digits.as_bytes());
        pad(out, b' ', fill);
    } else if spec.pad == b'0' {
        let (sign, digits) = match digits.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("", digits.as_str()),
        };
        out.extend_from_slice(sign.as_bytes());
        pad(out, b'0', fill);
        out.extend_from_slice(digits.as_bytes());
    } else {
        pad(out, b' ', fill);
        out.extend_from_slice(digits.as_bytes());
    }
}

fn int_or_blank(out: &mut Vec<u8>, value: Option<i64>, spec: Spec) {
    match value {
        Some(v) => int(out, v, spec),
        None => pad(out, spec.pad, spec.width),
    }
}

fn str_or_blank(out: &mut Vec<u8>, value: Option<&str>, spec: Spec) {
    match value {
        Some(v) => string(out, v, spec),
        None => pad(out, b' ', spec.width),
    }
}

/// printf's `%s` with width and precision (bytes, as C counts them).
fn string(out: &mut Vec<u8>, value: &str, spec: Spec) {
    let bytes = value.as_bytes();
    let bytes = match spec.precision {
        Some(p) if p < bytes.len() => &bytes[..p],
        _ => bytes,
    };
    let fill = spec.width.saturating_sub(bytes.len());
    if !spec.left {
        pad(out, b' ', fill);
    }
    out.extend_from_slice(bytes);
    if spec.left {
        pad(out, b' ', fill);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hex {
    No,
    Lower,
    Upper,
}

/// Mosquitto's `write_payload`: a width also truncates the payload (in hex, to half as
/// many bytes); the precision is ignored.
fn payload(out: &mut Vec<u8>, payload: &[u8], hex: Hex, spec: Spec) {
    let mut len = payload.len();
    let padlen;
    if spec.width > 0 {
        len = len.min(spec.width);
        if hex != Hex::No {
            len /= 2;
            padlen = spec.width - len * 2;
        } else {
            padlen = spec.width - len;
        }
    } else {
        padlen = 0;
    }
    if !spec.left {
        pad(out, spec.pad, padlen);
    }
    let bytes = &payload[..len];
    match hex {
        Hex::No => out.extend_from_slice(bytes),
        Hex::Lower => {
            for b in bytes {
                let _ = write!(Bytes(out), "{b:02x}");
            }
        }
        Hex::Upper => {
            for b in bytes {
                let _ = write!(Bytes(out), "{b:02X}");
            }
        }
    }
    if spec.left {
        pad(out, b' ', padlen);
    }
}

/// `%j` (payload as a string) and `%J` (payload that is JSON), as Mosquitto 2.0 built
/// with cJSON prints them.
fn json(
    out: &mut Vec<u8>,
    m: &Message,
    now: &Zoned,
    escaped: bool,
    pretty: bool,
) -> Result<(), String> {
    // strftime "%Y-%m-%dT%H:%M:%S.000000Z%z" with the microseconds written over the
    // zeros: "2020-05-06T21:48:00.123456Z+0100".
    let tst = format!(
        "{}.{:06}Z{}",
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S", now).unwrap_or_default(),
        now.subsec_nanosecond() / 1000,
        jiff::fmt::strtime::format("%z", now).unwrap_or_default()
    );
    let payload = if m.payload.is_empty() {
        Json::Null
    } else if escaped {
        // cJSON_CreateString reads the payload as a C string: it ends at a NUL.
        let end = m
            .payload
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(m.payload.len());
        Json::String(m.payload[..end].to_vec())
    } else {
        match parse_json(&m.payload) {
            Some(v) => v,
            None => {
                return Err(format!(
                    "Error: Message payload is not valid JSON on topic {}.\n",
                    m.topic
                ))
            }
        }
    };
    let mut fields = vec![
        ("tst".to_owned(), Json::String(tst.into_bytes())),
        (
            "topic".to_owned(),
            Json::String(m.topic.as_bytes().to_vec()),
        ),
        ("qos".to_owned(), Json::Number(m.qos as u8 as f64)),
        (
            "retain".to_owned(),
            Json::Number(f64::from(u8::from(m.retain))),
        ),
        (
            "payloadlen".to_owned(),
            Json::Number(m.payload.len() as f64),
        ),
    ];
    if let Some(id) = m.packet_id {
        fields.push(("mid".to_owned(), Json::Number(f64::from(id.get()))));
    }
    let props = json_properties(m);
    if !props.is_empty() {
        fields.push(("properties".to_owned(), Json::Object(props)));
    }
    fields.push(("payload".to_owned(), payload));
    let mut s = Vec::new();
    print_json(&mut s, &Json::Object(fields), pretty, 0);
    out.extend_from_slice(&s);
    Ok(())
}

/// The "properties" object of %j/%J: in wire order when known (Mosquitto prints them as
/// received), else in the specification's order. User properties form one
/// "user-properties" object where the first of them was.
fn json_properties(m: &Message) -> Vec<(String, Json)> {
    let p = &m.properties;
    let order: Vec<u8> = if m.property_order.is_empty() {
        vec![0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x23, 0x26]
    } else {
        m.property_order.clone()
    };
    let text = |s: &str| Json::String(s.as_bytes().to_vec());
    let mut v = Vec::new();
    let mut subscription_ids = p.subscription_identifiers.iter();
    let mut users_done = false;
    for id in order {
        match id {
            0x01 => {
                if let Some(x) = p.payload_format_indicator {
                    v.push((
                        "payload-format-indicator".into(),
                        Json::Number(f64::from(x)),
                    ));
                }
            }
            0x02 => {
                if let Some(x) = p.message_expiry_interval {
                    v.push(("message-expiry-interval".into(), Json::Number(f64::from(x))));
                }
            }
            0x03 => {
                if let Some(x) = &p.content_type {
                    v.push(("content-type".into(), text(x)));
                }
            }
            0x08 => {
                if let Some(x) = &p.response_topic {
                    v.push(("response-topic".into(), text(x)));
                }
            }
            0x09 => {
                if let Some(x) = &p.correlation_data {
                    // cJSON_CreateString reads it as a C string.
                    let end = x.iter().position(|b| *b == 0).unwrap_or(x.len());
                    v.push(("correlation-data".into(), Json::String(x[..end].to_vec())));
                }
            }
            0x0b => {
                let ids: Vec<u32> = if m.property_order.is_empty() {
                    subscription_ids.by_ref().copied().collect()
                } else {
                    subscription_ids.next().copied().into_iter().collect()
                };
                for x in ids {
                    v.push(("subscription-identifier".into(), Json::Number(f64::from(x))));
                }
            }
            0x23 => {
                if let Some(x) = p.topic_alias {
                    v.push(("topic-alias".into(), Json::Number(f64::from(x))));
                }
            }
            0x26 if !users_done && !p.user_properties.is_empty() => {
                users_done = true;
                let users = p
                    .user_properties
                    .iter()
                    .map(|(k, val)| (k.clone(), text(val)))
                    .collect();
                v.push(("user-properties".into(), Json::Object(users)));
            }
            _ => {}
        }
    }
    v
}

/// Just enough JSON for `%J`: parse a payload, print it as cJSON does.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    /// Bytes, printed raw except for what JSON must escape (cJSON keeps UTF-8 as is).
    String(Vec<u8>),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn print_json(out: &mut Vec<u8>, v: &Json, pretty: bool, depth: usize) {
    match v {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Json::Number(n) => {
            // cJSON: an integral value in int range as "%d", else "%1.15g"-ish.
            if n.fract() == 0.0 && n.abs() < 2_147_483_648.0 {
                let _ = write!(Bytes(out), "{}", *n as i64);
            } else {
                let _ = write!(Bytes(out), "{n}");
            }
        }
        Json::String(s) => json_string(out, s),
        Json::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.extend_from_slice(if pretty { b", " } else { b"," });
                }
                print_json(out, item, pretty, depth + 1);
            }
            out.push(b']');
        }
        Json::Object(fields) => {
            out.push(b'{');
            if pretty {
                out.push(b'\n');
            }
            for (n, (k, item)) in fields.iter().enumerate() {
                if pretty {
                    pad(out, b'\t', depth + 1);
                }
                json_string(out, k.as_bytes());
                out.push(b':');
                if pretty {
                    out.push(b'\t');
                }
                print_json(out, item, pretty, depth + 1);
                if n + 1 < fields.len() {
                    out.push(b',');
                }
                if pretty {
                    out.push(b'\n');
                }
            }
            if pretty {
                pad(out, b'\t', depth);
            }
            out.push(b'}');
        }
    }
}

fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                let _ = write!(Bytes(out), "\\u{b:04x}");
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Parses a whole JSON text (leading and trailing whitespace allowed).
fn parse_json(bytes: &[u8]) -> Option<Json> {
    let mut p = Parser { b: bytes, i: 0 };
    let v = p.value(0)?;
    p.ws();
    (p.i == bytes.len()).then_some(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

/// Nesting deeper than this is refused (cJSON's CJSON_NESTING_LIMIT is 1000).
const JSON_NESTING_LIMIT: usize = 1000;

impl Parser<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > JSON_NESTING_LIMIT {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'n' => self.eat(b"null").then_some(Json::Null),
            b't' => self.eat(b"true").then_some(Json::Bool(true)),
            b'f' => self.eat(b"false").then_some(Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b"]") {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b"]") {
                        return Some(Json::Array(items));
                    }
                    if !self.eat(b",") {
                        return None;
                    }
                }
            }
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.eat(b"}") {
                    return Some(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return None;
                    }
                    let v = self.value(depth + 1)?;
                    fields.push((String::from_utf8_lossy(&key).into_owned(), v));
                    self.ws();
                    if self.eat(b"}") {
                        return Some(Json::Object(fields));
                    }
                    if !self.eat(b",") {
                        return None;
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Number)
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        if !self.eat(b"\"") {
            return None;
        }
        let mut s = Vec::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(s),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => s.push(e),
                        b'b' => s.push(0x08),
                        b'f' => s.push(0x0c),
                        b'n' => s.push(b'\n'),
                        b'r' => s.push(b'\r'),
                        b't' => s.push(b'\t'),
                        b'u' => {
                            let hex = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
                            let code = u32::from_str_radix(hex, 16).ok()?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0; 4];
                            s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                _ => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OwnedProperties;
    use crate::protocol::{PacketId, QoS};

    fn message(payload: &[u8]) -> Message {
        Message {
            topic: "a/b".into(),
            payload: payload.to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
            dup: false,
            packet_id: PacketId::new(7),
            properties: OwnedProperties::default(),
            property_order: Vec::new(),
        }
    }

    /// 2026-11-25 15:34:16.333134567 in UTC.
    fn now() -> Zoned {
        "2026-11-25T15:34:16.333134567Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
    }

    fn render_with(format: &str, m: &Message) -> Vec<u8> {
        let options = OutputOptions {
            format: Some(format.into()),
            eol: true,
            ..OutputOptions::default()
        };
        let mut out = Vec::new();
        render(&mut out, &options, m, &now());
        out
    }

    fn text(format: &str, payload: &[u8]) -> String {
        String::from_utf8(render_with(format, &message(payload))).unwrap()
    }

    #[test]
    fn basic_specifiers() {
        assert_eq!(
            render_with("%t %p %q %r %l %m %% %x %X", &message(b"hi\xff")),
            b"a/b hi\xff 1 1 3 7 % 6869ff 6869FF\n"
        );
    }

    /// Widths, flags and precision, compared with mosquitto_sub 2.0.11's output.
    #[test]
    fn widths_and_padding_follow_mosquitto() {
        assert_eq!(
            text("%5l|%-5l|%05l|%10.3p|%-6t|%.1t|%8x|", b"hi \"there\"\\"),
            "   11|11   |00011|hi \"there\"|a/b   |a|68692022|\n"
        );
        assert_eq!(text("%10.3p|", b""), "          |\n");
        assert_eq!(text("%A|%3E|%C|", b""), "|   ||\n");
    }

    #[test]
    fn time_specifiers() {
        assert_eq!(
            text("%I|%U|@Y-@m-@d @H:@M:@S @N @@", b"x"),
            "2026-11-25T15:34:16+0000|1795620856.333134567|2026-11-25 15:34:16 333134567 @\n"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            render_with(r"\t\n\\\0\e%t", &message(b"")),
            b"\t\n\\\0\x1ba/b\n"
        );
    }

    /// Output of mosquitto_sub 2.0.11 (built with cJSON) for the same messages.
    #[test]
    fn json_matches_mosquitto() {
        let mut m = message(b"hi \"there\"\\");
        m.qos = QoS::AtMostOnce;
        m.retain = false;
        m.packet_id = None;
        m.topic = "t".into();
        assert_eq!(
            String::from_utf8(render_with("%j", &m)).unwrap(),
            "{\"tst\":\"2026-11-25T15:34:16.333134Z+0000\",\"topic\":\"t\",\"qos\":0,\"retain\":0,\"payloadlen\":11,\"payload\":\"hi \\\"there\\\"\\\\\"}\n"
        );
        m.payload = b"{ \"a\" : [1, 2.5, true, null] }".to_vec();
        assert_eq!(
            String::from_utf8(render_with("%J", &m)).unwrap(),
            "{\"tst\":\"2026-11-25T15:34:16.333134Z+0000\",\"topic\":\"t\",\"qos\":0,\"retain\":0,\"payloadlen\":30,\"payload\":{\"a\":[1,2.5,true,null]}}\n"
        );
        m.payload = b"a\x01\xffb".to_vec();
        assert_eq!(
            render_with("%j", &m),
            b"{\"tst\":\"2026-11-25T15:34:16.333134Z+0000\",\"topic\":\"t\",\"qos\":0,\"retain\":0,\"payloadlen\":4,\"payload\":\"a\\u0001\xffb\"}\n"
        );
        // Not JSON: nothing printed for %J, an error for stderr.
        let options = OutputOptions {
            format: Some("%J|".into()),
            eol: true,
            ..OutputOptions::default()
        };
        let mut out = Vec::new();
        let errors = render(&mut out, &options, &m, &now());
        assert_eq!(out, b"|\n");
        assert_eq!(
            errors,
            ["Error: Message payload is not valid JSON on topic t.\n"]
        );
        m.payload.clear();
        assert_eq!(
            String::from_utf8(render_with("%j", &m)).unwrap(),
            "{\"tst\":\"2026-11-25T15:34:16.333134Z+0000\",\"topic\":\"t\",\"qos\":0,\"retain\":0,\"payloadlen\":0,\"payload\":null}\n"
        );
    }

    #[test]
    fn json_includes_mid_and_v5_properties() {
        let mut m = message(b"x");
        m.properties.content_type = Some("text/plain".into());
        m.properties.user_properties = vec![("k".into(), "v".into())];
        assert_eq!(
            String::from_utf8(render_with("%j", &m)).unwrap(),
            "{\"tst\":\"2026-11-25T15:34:16.333134Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":1,\"payloadlen\":1,\"mid\":7,\"properties\":{\"content-type\":\"text/plain\",\"user-properties\":{\"k\":\"v\"}},\"payload\":\"x\"}\n"
        );
        assert_eq!(render_with("%C %P", &m), b"text/plain k:v\n");
        // In wire order when it is known, as mosquitto_sub prints them.
        m.property_order = vec![0x26, 0x03];
        assert_eq!(
            String::from_utf8(render_with("%j", &m)).unwrap(),
            "{\"tst\":\"2026-11-25T15:34:16.333134Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":1,\"payloadlen\":1,\"mid\":7,\"properties\":{\"user-properties\":{\"k\":\"v\"},\"content-type\":\"text/plain\"},\"payload\":\"x\"}\n"
        );
        assert_eq!(text("%C %P", b""), " \n");
    }

    #[test]
    fn plain_and_verbose_output() {
        let mut options = OutputOptions {
            eol: true,
            ..OutputOptions::default()
        };
        let mut out = Vec::new();
        render(&mut out, &options, &message(b"p"), &now());
        render(&mut out, &options, &message(b""), &now());
        options.verbose = true;
        render(&mut out, &options, &message(b"p"), &now());
        render(&mut out, &options, &message(b""), &now());
        options.eol = false;
        render(&mut out, &options, &message(b"\x00\xff"), &now());
        assert_eq!(out, b"p\na/b p\na/b (null)\na/b \x00\xff");
    }

    #[test]
    fn bad_formats_get_mosquittos_messages() {
        assert_eq!(check("%t %p"), Ok(()));
        assert_eq!(
            check("%"),
            Err("Error: Incomplete format specifier.\n".into())
        );
        assert_eq!(
            check("%k"),
            Err("Error: Invalid format specifier 'k'.\n".into())
        );
        assert_eq!(
            check("\\k"),
            Err("Error: Invalid escape specifier 'k'.\n".into())
        );
        assert_eq!(
            check("@"),
            Err("Error: Incomplete format specifier.\n".into())
        );
    }
}
