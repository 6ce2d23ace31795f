//! mosquitto.conf: the lexer and the options culex honours so far, producing one typed
//! [`Config`]. Parsing works on text ([`Config::parse_str`]) so every option is testable
//! without files; [`Config::load`] adds the file access.
//!
//! No option is silently ignored: an option culex does not know is an error naming the
//! file, the line and the option (with a suggestion when it looks like a typo), and a
//! Mosquitto option culex does not implement yet is an error that says so.

use std::fmt;
use std::path::{Path, PathBuf};

/// The MQTT default port. [MQTT-4.2]
pub const DEFAULT_PORT: u16 = 1883;

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    /// `None`: every address (IPv4 and IPv6).
    pub bind_address: Option<String>,
    /// `max_connections` of this listener; `None` is unlimited (Mosquitto's -1).
    pub max_connections: Option<usize>,
    /// TLS: both `certfile` and `keyfile` make this a TLS listener.
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub require_certificate: bool,
    pub tls_version: Option<String>,
    pub crlfile: Option<PathBuf>,
}

impl Listener {
    pub fn new(
        port: u16,
        bind_address: Option<String>,
        max_connections: Option<usize>,
    ) -> Listener {
        Listener {
            port,
            bind_address,
            max_connections,
            certfile: None,
            keyfile: None,
            cafile: None,
            capath: None,
            require_certificate: false,
            tls_version: None,
            crlfile: None,
        }
    }
}

/// Which log lines are wanted (`log_type`). Mosquitto's default is error, warning, notice
/// and information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTypes {
    pub error: bool,
    pub warning: bool,
    pub notice: bool,
    pub information: bool,
    pub subscribe: bool,
    pub unsubscribe: bool,
    pub debug: bool,
}

impl Default for LogTypes {
    fn default() -> Self {
        LogTypes {
            error: true,
            warning: true,
            notice: true,
            information: true,
            subscribe: false,
            unsubscribe: false,
            debug: false,
        }
    }
}

impl LogTypes {
    pub fn all() -> LogTypes {
        LogTypes {
            error: true,
            warning: true,
            notice: true,
            information: true,
            subscribe: true,
            unsubscribe: true,
            debug: true,
        }
    }

    fn none() -> LogTypes {
        LogTypes {
            error: false,
            warning: false,
            notice: false,
            information: false,
            subscribe: false,
            unsubscribe: false,
            debug: false,
        }
    }
}

/// The whole configuration. Field names are the mosquitto.conf option names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Explicit listeners. Empty means the implicit default listener (see
    /// [`Config::effective_listeners`]).
    pub listeners: Vec<Listener>,
    /// `port` (deprecated in Mosquitto): the implicit default listener's port.
    pub port: Option<u16>,
    /// `bind_address` (deprecated): the implicit default listener's address.
    pub bind_address: Option<String>,
    /// `None`: Mosquitto 2's default, false once any listener is configured, true in the
    /// loopback-only mode without configuration.
    pub allow_anonymous: Option<bool>,
    pub allow_zero_length_clientid: bool,
    /// 0 means unlimited.
    pub max_inflight_messages: u16,
    /// 0 means unlimited.
    pub max_queued_messages: usize,
    /// 0 means unlimited.
    pub max_queued_bytes: usize,
    /// 3.1/3.1.1 clients asking for a longer keep alive are refused. 0 means unlimited.
    pub max_keepalive: u16,
    /// Global `max_connections` before any `listener` line: applies to the default listener.
    pub max_connections: Option<usize>,
    /// Largest PUBLISH payload accepted; 0 means the protocol's limit.
    pub message_size_limit: usize,
    /// Seconds between $SYS updates; 0 disables them.
    pub sys_interval: u32,
    pub log_type: LogTypes,
    pub connection_messages: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            port: None,
            bind_address: None,
            allow_anonymous: None,
            allow_zero_length_clientid: true,
            max_inflight_messages: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            max_keepalive: 65535,
            max_connections: None,
            message_size_limit: 0,
            sys_interval: 10,
            log_type: LogTypes::default(),
            connection_messages: true,
        }
    }
}

impl Config {
    /// Is this the loopback-only mode Mosquitto 2 runs in without a listener configured?
    pub fn is_local_only(&self) -> bool {
        self.listeners.is_empty() && self.port.is_none()
    }

    /// The listeners to open: the explicit ones, or the default listener. Without any
    /// configuration, Mosquitto 2 listens on the loopback addresses only.
    pub fn effective_listeners(&self) -> Vec<Listener> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        let port = self.port.unwrap_or(DEFAULT_PORT);
        match (&self.bind_address, self.port) {
            (Some(addr), _) => vec![Listener::new(
                port,
                Some(addr.clone()),
                self.max_connections,
            )],
            (None, Some(_)) => vec![Listener::new(port, None, self.max_connections)],
            (None, None) => ["127.0.0.1", "::1"]
                .iter()
                .map(|a| Listener::new(port, Some((*a).to_string()), self.max_connections))
                .collect(),
        }
    }

    /// `allow_anonymous` with Mosquitto 2's default applied.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.is_local_only())
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            kind: ErrorKind::Io(e.to_string()),
        })?;
        Config::parse_str(&text, path)
    }

    /// Parses configuration text; `file` is used in error messages only.
    pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut saw_log_type = false;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |kind| ConfigError {
                file: file.to_path_buf(),
                line: index + 1,
                kind,
            };
            let (name, value) = match line.split_once(char::is_whitespace) {
                Some((n, v)) => (n, v.trim()),
                None => (line, ""),
            };
            if name == "log_type" && !saw_log_type {
                // As Mosquitto: the first log_type line replaces the default set.
                saw_log_type = true;
                config.log_type = LogTypes::none();
            }
            config.apply(name, value).map_err(err)?;
        }
        Ok(config)
    }

    fn apply(&mut self, name: &str, value: &str) -> Result<(), ErrorKind> {
        match name {
            "listener" => {
                let mut words = value.split_whitespace();
                let port = parse_port(words.next().unwrap_or(""), name)?;
                let bind_address = words.next().map(str::to_string);
                if words.next().is_some() {
                    return Err(ErrorKind::Invalid(
                        name.into(),
                        "expected 'listener PORT [ADDRESS]'".into(),
                    ));
                }
                if port == 0 {
                    return Err(ErrorKind::NotSupported("listener 0 (unix sockets)".into()));
                }
                self.listeners
                    .push(Listener::new(port, bind_address, self.max_connections));
            }
            "port" => self.port = Some(parse_port(value, name)?),
            "bind_address" => self.bind_address = Some(one_word(value, name)?.to_string()),
            "allow_anonymous" => self.allow_anonymous = Some(parse_bool(value, name)?),
            "allow_zero_length_clientid" => {
                self.allow_zero_length_clientid = parse_bool(value, name)?
            }
            "connection_messages" => self.connection_messages = parse_bool(value, name)?,
            "max_inflight_messages" => self.max_inflight_messages = parse_num(value, name)?,
            "max_queued_messages" => self.max_queued_messages = parse_num(value, name)?,
            "max_queued_bytes" => self.max_queued_bytes = parse_num(value, name)?,
            "max_keepalive" => self.max_keepalive = parse_num(value, name)?,
            "message_size_limit" => {
                let limit: usize = parse_num(value, name)?;
                if limit > crate::protocol::frame::MAX_REMAINING_LENGTH {
                    return Err(ErrorKind::Invalid(name.into(), "at most 268435455".into()));
                }
                self.message_size_limit = limit;
            }
            "sys_interval" => self.sys_interval = parse_num(value, name)?,
            "max_connections" => {
                let n: i64 = parse_num(value, name)?;
                let limit = if n < 0 { None } else { Some(n as usize) };
                match self.listeners.last_mut() {
                    Some(listener) => listener.max_connections = limit,
                    None => self.max_connections = limit,
                }
            }
            "certfile"
            | "keyfile"
            | "cafile"
            | "capath"
            | "crlfile"
            | "require_certificate"
            | "tls_version" => {
                let Some(listener) = self.listeners.last_mut() else {
                    return Err(ErrorKind::Invalid(
                        name.into(),
                        "belongs to a listener: put it after a 'listener' line".into(),
                    ));
                };
                let path = || Some(PathBuf::from(value));
                match name {
                    "certfile" => listener.certfile = path(),
                    "keyfile" => listener.keyfile = path(),
                    "cafile" => listener.cafile = path(),
                    "capath" => listener.capath = path(),
                    "crlfile" => listener.crlfile = path(),
                    "require_certificate" => {
                        listener.require_certificate = parse_bool(value, name)?
                    }
                    _ => match one_word(value, name)? {
                        v @ ("tlsv1.2" | "tlsv1.3") => listener.tls_version = Some(v.into()),
                        v => {
                            return Err(ErrorKind::Invalid(
                                name.into(),
                                format!("'{v}': culex supports tlsv1.2 and tlsv1.3"),
                            ))
                        }
                    },
                }
            }
            "log_type" => {
                let t = &mut self.log_type;
                match one_word(value, name)? {
                    "error" => t.error = true,
                    "warning" => t.warning = true,
                    "notice" => t.notice = true,
                    "information" => t.information = true,
                    "subscribe" => t.subscribe = true,
                    "unsubscribe" => t.unsubscribe = true,
                    "debug" => t.debug = true,
                    "websockets" => {}
                    "all" => *t = LogTypes::all(),
                    "none" => *t = LogTypes::none(),
                    other => {
                        return Err(ErrorKind::Invalid(
                            name.into(),
                            format!("unknown log type '{other}'"),
                        ))
                    }
                }
            }
            "persistence" => {
                if parse_bool(value, name)? {
                    return Err(ErrorKind::NotSupported("persistence true".into()));
                }
            }
            "log_dest" => match one_word(value, name)? {
                "stderr" => {}
                other => return Err(ErrorKind::NotSupported(format!("log_dest {other}"))),
            },
            _ if MOSQUITTO_OPTIONS.contains(&name) => {
                return Err(ErrorKind::NotSupported(name.into()))
            }
            _ => return Err(ErrorKind::Unknown(name.into(), suggest(name))),
        }
        Ok(())
    }
}

/// Options of Mosquitto 2.0/2.1 that culex does not implement yet: refused by name, so a
/// user knows it is culex's gap, not their typo.
const MOSQUITTO_OPTIONS: &[&str] = &[
    "acl_file",
    "address",
    "addresses",
    "allow_duplicate_messages",
    "auth_plugin",
    "auth_plugin_deny_special_chars",
    "auto_id_prefix",
    "autosave_interval",
    "autosave_on_changes",
    "bind_interface",
    "bridge_attempt_unsubscribe",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_protocol_version",
    "check_retain_source",
    "ciphers",
    "ciphers_tls1.3",
    "cleansession",
    "clientid_prefixes",
    "connection",
    "dhparamfile",
    "global_max_clients",
    "global_max_connections",
    "http_dir",
    "include_dir",
    "log_facility",
    "log_timestamp",
    "log_timestamp_format",
    "max_inflight_bytes",
    "max_packet_size",
    "max_qos",
    "max_topic_alias",
    "memory_limit",
    "mount_point",
    "password_file",
    "per_listener_settings",
    "persistence_file",
    "persistence_location",
    "persistent_client_expiration",
    "pid_file",
    "plugin",
    "protocol",
    "psk_file",
    "psk_hint",
    "queue_qos0_messages",
    "retain_available",
    "set_tcp_nodelay",
    "socket_domain",
    "topic",
    "upgrade_outgoing_qos",
    "use_identity_as_username",
    "use_subject_as_username",
    "use_username_as_clientid",
    "user",
];

const KNOWN: &[&str] = &[
    "listener",
    "port",
    "bind_address",
    "allow_anonymous",
    "allow_zero_length_clientid",
    "connection_messages",
    "max_inflight_messages",
    "max_queued_messages",
    "max_queued_bytes",
    "max_keepalive",
    "message_size_limit",
    "sys_interval",
    "max_connections",
    "log_type",
    "persistence",
    "log_dest",
];

fn suggest(name: &str) -> Option<String> {
    KNOWN
        .iter()
        .chain(MOSQUITTO_OPTIONS)
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn one_word<'v>(value: &'v str, name: &str) -> Result<&'v str, ErrorKind> {
    let mut words = value.split_whitespace();
    match (words.next(), words.next()) {
        (Some(w), None) => Ok(w),
        _ => Err(ErrorKind::Invalid(name.into(), "expected one value".into())),
    }
}

fn parse_bool(value: &str, name: &str) -> Result<bool, ErrorKind> {
    match one_word(value, name)? {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ErrorKind::Invalid(
            name.into(),
            "expected 'true' or 'false'".into(),
        )),
    }
}

fn parse_num<T: std::str::FromStr>(value: &str, name: &str) -> Result<T, ErrorKind> {
    one_word(value, name)?.parse().map_err(|_| {
        ErrorKind::Invalid(name.into(), format!("'{value}' is not a valid number here"))
    })
}

fn parse_port(value: &str, name: &str) -> Result<u16, ErrorKind> {
    parse_num(value, name)
}

/// A configuration error with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Io(String),
    /// An option nobody knows, with a suggestion.
    Unknown(String, Option<String>),
    /// A Mosquitto option (or value) culex does not implement yet.
    NotSupported(String),
    /// A known option with a bad value: option, explanation.
    Invalid(String, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}: ", self.file.display(), self.line)?;
        }
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "cannot read the configuration: {e}"),
            ErrorKind::Unknown(name, Some(s)) => {
                write!(f, "unknown option '{name}' (did you mean '{s}'?)")
            }
            ErrorKind::Unknown(name, None) => write!(f, "unknown option '{name}'"),
            ErrorKind::NotSupported(what) => {
                write!(
                    f,
                    "'{what}' is a Mosquitto option culex does not support yet"
                )
            }
            ErrorKind::Invalid(name, why) => write!(f, "invalid value for '{name}': {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_str(text, Path::new("test.conf"))
    }

    #[test]
    fn empty_config_listens_on_loopback_only_and_allows_anonymous() {
        let c = parse("# nothing\n\n").unwrap();
        let l = c.effective_listeners();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].bind_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(l[1].bind_address.as_deref(), Some("::1"));
        assert!(l.iter().all(|l| l.port == 1883));
        assert!(c.allows_anonymous());
    }

    #[test]
    fn a_listener_turns_anonymous_off_by_default_as_mosquitto_2() {
        let c = parse("listener 1884\n").unwrap();
        assert!(!c.allows_anonymous());
        assert_eq!(
            c.effective_listeners(),
            vec![Listener::new(1884, None, None)]
        );
        let c = parse("listener 1884 127.0.0.1\nallow_anonymous true\n").unwrap();
        assert!(c.allows_anonymous());
        assert_eq!(c.listeners[0].bind_address.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn max_connections_applies_to_the_listener_before_it() {
        let c = parse("max_connections 5\nlistener 1\nlistener 2\nmax_connections 7\n").unwrap();
        assert_eq!(c.listeners[0].max_connections, Some(5));
        assert_eq!(c.listeners[1].max_connections, Some(7));
        let c = parse("listener 1\nmax_connections -1\n").unwrap();
        assert_eq!(c.listeners[0].max_connections, None);
    }

    #[test]
    fn limits_are_parsed() {
        let c = parse(
            "max_inflight_messages 5\nmax_queued_messages 7\nmax_queued_bytes 100\nmax_keepalive 60\nmessage_size_limit 1000\nsys_interval 1\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.max_inflight_messages,
                c.max_queued_messages,
                c.max_queued_bytes,
                c.max_keepalive,
                c.message_size_limit,
                c.sys_interval
            ),
            (5, 7, 100, 60, 1000, 1)
        );
    }

    #[test]
    fn unknown_option_names_file_line_and_suggestion() {
        let e = parse("\nmax_queued_mesages 10\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:2: unknown option 'max_queued_mesages' (did you mean 'max_queued_messages'?)"
        );
    }

    #[test]
    fn unsupported_mosquitto_option_says_so() {
        let e = parse("password_file /etc/x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:1: 'password_file' is a Mosquitto option culex does not support yet"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for text in [
            "allow_anonymous yes",
            "max_keepalive 70000",
            "listener",
            "listener abc",
            "port 1 2",
            "log_type chatty",
            "message_size_limit 268435456",
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, 1, "{text}");
            assert!(matches!(e.kind, ErrorKind::Invalid(..)), "{text}: {e}");
        }
    }

    #[test]
    fn tls_options_belong_to_the_listener_before_them() {
        let c = parse("listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\nrequire_certificate true\ntls_version tlsv1.3\n").unwrap();
        let l = &c.listeners[0];
        assert_eq!(l.certfile.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(l.keyfile.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(l.cafile.as_deref(), Some(Path::new("/ca.pem")));
        assert!(l.require_certificate);
        assert_eq!(l.tls_version.as_deref(), Some("tlsv1.3"));
        let e = parse("certfile /c.pem\n").unwrap_err();
        assert_eq!(e.to_string(), "test.conf:1: invalid value for 'certfile': belongs to a listener: put it after a 'listener' line");
        assert!(parse("listener 1\ntls_version tlsv1.1\n").is_err());
    }

    #[test]
    fn log_type_accumulates_like_mosquitto() {
        let c = parse("log_type subscribe\n").unwrap();
        assert!(c.log_type.subscribe && !c.log_type.error);
        let c = parse("log_type none\nlog_type subscribe\n").unwrap();
        assert!(c.log_type.subscribe && !c.log_type.error);
        let c = parse("log_type all\n").unwrap();
        assert_eq!(c.log_type, LogTypes::all());
    }
}
