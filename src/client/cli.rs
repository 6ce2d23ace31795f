//! The command lines of `culex_pub`, `culex_sub` and `culex_rr`, with Mosquitto's
//! flags, meanings and error texts (`client/client_shared.c` of mosquitto 2.0), so that
//! scripts written for `mosquitto_pub`/`mosquitto_sub`/`mosquitto_rr` keep working.
//!
//! Parsing is a hand-written sequential scan, as Mosquitto's is, not getopts: `-D` takes
//! three or four values (`-D publish user-property name value`), defaults files give
//! "option rest-of-line" pairs, and later options override earlier ones. Nothing here
//! reads a file or the environment: the binaries pass the defaults file's lines in.

use std::time::Duration;

use super::OwnedProperties;
use crate::protocol::{
    is_property_allowed, property_name, PacketType, PropertyContext, ProtocolVersion, QoS,
};
use crate::topic;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Pub,
    Sub,
    Rr,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Pub => "culex_pub",
            Tool::Sub => "culex_sub",
            Tool::Rr => "culex_rr",
        }
    }
}

/// Where the payload of `culex_pub`/`culex_rr` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSource {
    None,
    /// `-m`
    Message(Vec<u8>),
    /// `-f`
    File(String),
    /// `-s`: all of standard input, one message.
    Stdin,
    /// `-l`: one message per line of standard input.
    StdinLines,
    /// `-n`: an empty payload.
    Null,
}

/// Everything the command line (and the defaults file) said.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub tool: Tool,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `--unix`: a Unix socket path instead of host and port.
    pub unix: Option<String>,
    pub bind_address: Option<String>,
    pub version: ProtocolVersion,
    pub id: Option<String>,
    pub id_prefix: Option<String>,
    pub keep_alive: u16,
    pub clean_session: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub will_topic: Option<String>,
    pub will_payload: Option<Vec<u8>>,
    pub will_qos: QoS,
    pub will_retain: bool,
    pub qos: QoS,
    pub retain: bool,
    /// `-t`: filters for sub, the topic for pub and rr (the last one given).
    pub topics: Vec<String>,
    pub filter_outs: Vec<String>,
    pub unsubscribe_topics: Vec<String>,
    pub payload: PayloadSource,
    pub repeat_count: u32,
    pub repeat_delay: Duration,
    pub max_inflight: u16,
    pub msg_count: Option<u32>,
    pub timeout: Option<u32>,
    pub exit_after_subscribe: bool,
    pub no_retain: bool,
    pub retained_only: bool,
    pub remove_retained: bool,
    pub retain_as_published: bool,
    pub eol: bool,
    pub verbose: bool,
    pub pretty: bool,
    pub format: Option<String>,
    pub debug: bool,
    pub quiet: bool,
    pub nodelay: bool,
    /// `-x`, `None` when not given; `u32::MAX` never expires.
    pub session_expiry_interval: Option<u32>,
    pub response_topic: Option<String>,
    pub connect_properties: OwnedProperties,
    pub publish_properties: OwnedProperties,
    pub subscribe_properties: OwnedProperties,
    pub unsubscribe_properties: OwnedProperties,
    pub disconnect_properties: OwnedProperties,
    pub will_properties: OwnedProperties,
    pub cafile: Option<String>,
    pub capath: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub insecure: bool,
    pub tls_version: Option<String>,
    pub tls_alpn: Option<String>,
    pub tls_use_os_certs: bool,
}

/// Why the command line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `--help`: print the usage, exit 1 (as Mosquitto does).
    Help,
    /// An error text exactly as Mosquitto prints it (trailing newlines included); the
    /// caller adds "Use '... --help' to see usage."
    Invalid(String),
    /// An error after which Mosquitto prints the whole usage instead of the hint.
    InvalidWithUsage(String),
}

impl Config {
    pub fn new(tool: Tool) -> Config {
        Config {
            tool,
            host: None,
            port: None,
            unix: None,
            bind_address: None,
            version: if tool == Tool::Rr {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            },
            id: None,
            id_prefix: None,
            keep_alive: 60,
            clean_session: true,
            username: None,
            password: None,
            will_topic: None,
            will_payload: None,
            will_qos: QoS::AtMostOnce,
            will_retain: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topics: Vec::new(),
            filter_outs: Vec::new(),
            unsubscribe_topics: Vec::new(),
            payload: PayloadSource::None,
            repeat_count: 1,
            repeat_delay: Duration::ZERO,
            max_inflight: super::DEFAULT_MAX_INFLIGHT,
            msg_count: if tool == Tool::Rr { Some(1) } else { None },
            timeout: None,
            exit_after_subscribe: false,
            no_retain: false,
            retained_only: false,
            remove_retained: false,
            retain_as_published: false,
            eol: true,
            verbose: false,
            pretty: false,
            format: None,
            debug: false,
            quiet: false,
            nodelay: false,
            session_expiry_interval: None,
            response_topic: None,
            connect_properties: OwnedProperties::default(),
            publish_properties: OwnedProperties::default(),
            subscribe_properties: OwnedProperties::default(),
            unsubscribe_properties: OwnedProperties::default(),
            disconnect_properties: OwnedProperties::default(),
            will_properties: OwnedProperties::default(),
            cafile: None,
            capath: None,
            cert: None,
            key: None,
            insecure: false,
            tls_version: None,
            tls_alpn: None,
            tls_use_os_certs: false,
        }
    }

    /// Parses the defaults file's lines (`option value`, `#` comments), then `args`
    /// (without the program name), then checks the combination.
    pub fn parse(tool: Tool, defaults: &str, args: &[String]) -> Result<Config, ArgsError> {
        let mut config = Config::new(tool);
        for line in defaults.lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            // Mosquitto: strtok(line, " ") then the rest of the line as one argument.
            let line = line.trim_start_matches(' ');
            if line.is_empty() {
                continue;
            }
            let words: Vec<String> = match line.split_once(' ') {
                Some((option, rest)) => {
                    let rest = rest.trim_start_matches(' ');
                    if rest.is_empty() {
                        vec![option.to_owned()]
                    } else {
                        vec![option.to_owned(), rest.to_owned()]
                    }
                }
                None => vec![line.to_owned()],
            };
            config.scan(&words)?;
        }
        config.scan(args)?;
        config.check()?;
        Ok(config)
    }

    /// The port to connect to: `-p`, else 8883 with TLS, else 1883.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.uses_tls() { 8883 } else { 1883 })
    }

    pub fn uses_tls(&self) -> bool {
        self.cafile.is_some() || self.capath.is_some() || self.tls_use_os_certs
    }

    /// The client id: `-i`, else `-I` plus the process id, else what Mosquitto 2.0's
    /// tools send: an empty id for the broker to assign in 3.1.1 and 5.0, and
    /// `mosq-` with 18 random characters in 3.1, which has no assigned ids.
    pub fn client_id(&self, pid: u32, random: impl FnOnce() -> String) -> String {
        if let Some(id) = &self.id {
            id.clone()
        } else if let Some(prefix) = &self.id_prefix {
            format!("{prefix}{pid}")
        } else if self.version == ProtocolVersion::V31 {
            format!("mosq-{}", random())
        } else {
            String::new()
        }
    }

    /// Applies command-line words to the configuration, Mosquitto's flags in order.
    ///
    /// A table: one match arm per flag (about 60), so it is longer than the 150 lines a
    /// function otherwise gets; each arm is its flag's whole meaning.
    fn scan(&mut self, args: &[String]) -> Result<(), ArgsError> {
        let tool = self.tool;
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_str();
            // The value after an option, or Mosquitto's "given but no X specified".
            let mut value = |what: &str| -> Result<String, ArgsError> {
                match args.get(i + 1) {
                    Some(v) => {
                        i += 1;
                        Ok(v.clone())
                    }
                    None => Err(invalid(format!(
                        "Error: {arg} argument given but no {what} specified.\n\n"
                    ))),
                }
            };
            let unknown = || invalid(format!("Error: Unknown option '{arg}'.\n"));
            match arg {
                "-A" => self.bind_address = Some(value("address")?),
                "--cafile" => self.cafile = Some(value("file")?),
                "--capath" => self.capath = Some(value("directory")?),
                "--cert" => self.cert = Some(value("file")?),
                "--key" => self.key = Some(value("file")?),
                "--insecure" => self.insecure = true,
                "--tls-version" => self.tls_version = Some(value("version")?),
                "--tls-alpn" => self.tls_alpn = Some(value("protocol")?),
                "--tls-use-os-certs" => self.tls_use_os_certs = true,
                "-C" if tool == Tool::Sub => {
                    let count = atoi(&value("count")?);
                    if count < 1 {
                        return Err(invalid(format!(
                            "Error: Invalid message count \"{count}\".\n\n"
                        )));
                    }
                    self.msg_count = u32::try_from(count).ok();
                }
                "-c" | "--disable-clean-session" => self.clean_session = false,
                "-d" | "--debug" => self.debug = true,
                "-D" | "--property" => {
                    let rest = &args[i + 1..];
                    let used = self.parse_property(rest)?;
                    i += used;
                    self.version = ProtocolVersion::V5;
                }
                "-e" if tool == Tool::Rr => {
                    let topic = value("response topic")?;
                    if !topic::is_valid_name(&topic) {
                        return Err(invalid(format!(
                            "Error: Invalid response topic '{topic}', does it contain '+' or '#'?\n"
                        )));
                    }
                    self.response_topic = Some(topic);
                }
                "-E" if tool == Tool::Sub => self.exit_after_subscribe = true,
                "-f" | "--file" if tool != Tool::Sub => {
                    self.only_one_payload()?;
                    self.payload = PayloadSource::File(value("file")?);
                }
                "-F" if tool != Tool::Pub => {
                    let format = value("format")?;
                    super::format::check(&format).map_err(invalid)?;
                    self.format = Some(format);
                }
                "--help" => return Err(ArgsError::Help),
                "-h" | "--host" => self.host = Some(value("host")?),
                "-i" | "--id" => {
                    if self.id_prefix.is_some() {
                        return Err(invalid(
                            "Error: -i and -I argument cannot be used together.\n\n".into(),
                        ));
                    }
                    self.id = Some(value("id")?);
                }
                "-I" | "--id-prefix" => {
                    if self.id.is_some() {
                        return Err(invalid(
                            "Error: -i and -I argument cannot be used together.\n\n".into(),
                        ));
                    }
                    self.id_prefix = Some(value("id prefix")?);
                }
                "-k" | "--keepalive" => {
                    let k = atoi(&value("keepalive")?);
                    if !(5..=65_535).contains(&k) {
                        return Err(invalid("Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n".into()));
                    }
                    self.keep_alive = u16::try_from(k).unwrap_or(u16::MAX);
                }
                "-L" | "--url" => {
                    let url = value("URL")?;
                    self.parse_url(&url)?;
                }
                "-l" | "--stdin-line" if tool == Tool::Pub => {
                    self.only_one_payload()?;
                    self.payload = PayloadSource::StdinLines;
                }
                "-m" | "--message" if tool != Tool::Sub => {
                    self.only_one_payload()?;
                    self.payload = PayloadSource::Message(value("message")?.into_bytes());
                }
                "-M" => {
                    let v = args.get(i + 1).ok_or_else(|| {
                        invalid(
                            "Error: -M argument given but max_inflight not specified.\n\n".into(),
                        )
                    })?;
                    i += 1;
                    let m = atoi(v);
                    if m < 1 {
                        return Err(invalid(
                            "Error: Maximum inflight messages must be greater than 0.\n\n".into(),
                        ));
                    }
                    self.max_inflight = u16::try_from(m).unwrap_or(u16::MAX);
                }
                "--nodelay" => self.nodelay = true,
                "-n" | "--null-message" if tool != Tool::Sub => {
                    self.only_one_payload()?;
                    self.payload = PayloadSource::Null;
                }
                "-N" if tool != Tool::Pub => self.eol = false,
                "-p" | "--port" => {
                    let p = atoi(&value("port")?);
                    if !(0..=65_535).contains(&p) {
                        return Err(invalid(format!("Error: Invalid port given: {p}\n")));
                    }
                    self.port = u16::try_from(p).ok();
                }
                "--pretty" if tool != Tool::Pub => self.pretty = true,
                "-P" | "--pw" => self.password = Some(value("password")?),
                "-q" | "--qos" => {
                    let q = atoi(&value("QoS")?);
                    self.qos = qos(q)
                        .ok_or_else(|| invalid(format!("Error: Invalid QoS given: {q}\n")))?;
                }
                "--quiet" => self.quiet = true,
                "-r" | "--retain" if tool == Tool::Pub => self.retain = true,
                "-R" if tool != Tool::Pub => self.no_retain = true,
                "--remove-retained" if tool == Tool::Sub => self.remove_retained = true,
                "--repeat" if tool == Tool::Pub => {
                    let n = atoi(&value("count")?);
                    if n < 1 {
                        return Err(invalid("Error: --repeat argument must be >0.\n\n".into()));
                    }
                    self.repeat_count = u32::try_from(n).unwrap_or(1);
                }
                "--repeat-delay" if tool == Tool::Pub => {
                    let f = atof(&value("time")?);
                    if f < 0.0 {
                        return Err(invalid(
                            "Error: --repeat-delay argument must be >=0.0.\n\n".into(),
                        ));
                    }
                    self.repeat_delay = Duration::from_secs_f64(f);
                }
                "--retain-as-published" if tool != Tool::Pub => self.retain_as_published = true,
                "--retained-only" if tool == Tool::Sub => self.retained_only = true,
                "-s" | "--stdin-file" if tool != Tool::Sub => {
                    self.only_one_payload()?;
                    self.payload = PayloadSource::Stdin;
                }
                "-t" | "--topic" => {
                    let t = value("topic")?;
                    self.add_topic(t, "-t")?;
                }
                "-T" | "--filter-out" if tool == Tool::Sub => {
                    let filter = value("topic filter")?;
                    if !topic::is_valid_filter(&filter) {
                        return Err(invalid(format!("Error: Invalid filter topic '{filter}', are all '+' and '#' wildcards correct?\n")));
                    }
                    self.filter_outs.push(filter);
                }
                "-U" | "--unsubscribe" if tool == Tool::Sub => {
                    let filter = value("unsubscribe topic")?;
                    if !topic::is_valid_filter(&filter) {
                        return Err(invalid(format!("Error: Invalid unsubscribe topic '{filter}', are all '+' and '#' wildcards correct?\n")));
                    }
                    self.unsubscribe_topics.push(filter);
                }
                "-u" | "--username" => self.username = Some(value("username")?),
                "--unix" => {
                    self.unix = Some(value("socket path")?);
                }
                "-V" | "--protocol-version" => {
                    let v = args.get(i + 1).ok_or_else(|| {
                        invalid("Error: --protocol-version argument given but no version specified.\n\n".into())
                    })?;
                    i += 1;
                    self.version = match v.as_str() {
                        "mqttv31" | "31" => ProtocolVersion::V31,
                        "mqttv311" | "311" => ProtocolVersion::V311,
                        "mqttv5" | "5" => ProtocolVersion::V5,
                        _ => {
                            return Err(invalid(
                                "Error: Invalid protocol version argument given.\n\n".into(),
                            ))
                        }
                    };
                }
                "-v" | "--verbose" if tool != Tool::Pub => self.verbose = true,
                "-W" if tool != Tool::Pub => {
                    let w = atoi(&value("timeout")?);
                    if w < 1 {
                        return Err(invalid(format!("Error: Invalid timeout \"{w}\".\n\n")));
                    }
                    self.timeout = u32::try_from(w).ok();
                }
                "--will-payload" => {
                    self.will_payload = Some(value("will payload")?.into_bytes());
                }
                "--will-qos" => {
                    let q = atoi(&value("will QoS")?);
                    self.will_qos = qos(q)
                        .ok_or_else(|| invalid(format!("Error: Invalid will QoS {q}.\n\n")))?;
                }
                "--will-retain" => self.will_retain = true,
                "--will-topic" => {
                    let t = value("will topic")?;
                    if !topic::is_valid_name(&t) {
                        return Err(invalid(format!(
                            "Error: Invalid will topic '{t}', does it contain '+' or '#'?\n"
                        )));
                    }
                    self.will_topic = Some(t);
                }
                "-x" => {
                    let v = value("session expiry interval")?;
                    self.session_expiry_interval = Some(parse_session_expiry(&v)?);
                }
                _ => return Err(unknown()),
            }
            i += 1;
        }
        Ok(())
    }

    fn only_one_payload(&self) -> Result<(), ArgsError> {
        if self.payload != PayloadSource::None {
            return Err(invalid(
                "Error: Only one type of message can be sent at once.\n\n".into(),
            ));
        }
        Ok(())
    }

    fn add_topic(&mut self, t: String, arg: &str) -> Result<(), ArgsError> {
        if self.tool == Tool::Sub {
            if !topic::is_valid_filter(&t) {
                return Err(invalid(format!("Error: Invalid subscription topic '{t}', are all '+' and '#' wildcards correct?\n")));
            }
            self.topics.push(t);
        } else {
            if !topic::is_valid_name(&t) {
                return Err(invalid(format!(
                    "Error: Invalid publish topic '{t}', does it contain '+' or '#'?\n"
                )));
            }
            let _ = arg;
            self.topics = vec![t];
        }
        Ok(())
    }

    /// `-L mqtt(s)://[username[:password]@]host[:port]/topic`.
    fn parse_url(&mut self, url: &str) -> Result<(), ArgsError> {
        let lower = url.to_ascii_lowercase();
        let rest = if lower.starts_with("mqtt://") {
            self.port = Some(1883);
            &url[7..]
        } else if lower.starts_with("mqtts://") {
            self.port = Some(8883);
            self.tls_use_os_certs = true;
            &url[8..]
        } else {
            return Err(invalid("Error: unsupported URL scheme.\n\n".into()));
        };
        let Some((authority, topic)) = rest.split_once('/') else {
            return Err(invalid(
                "Error: Invalid URL for -L argument specified - topic missing.\n".into(),
            ));
        };
        self.add_topic(topic.to_owned(), "-L topic")?;
        let host_port = match authority.split_once('@') {
            Some((credentials, host_port)) => {
                match credentials.split_once(':') {
                    Some((user, password)) => {
                        self.username = Some(user.to_owned());
                        self.password = Some(password.to_owned());
                    }
                    None => self.username = Some(credentials.to_owned()),
                }
                host_port
            }
            None => authority,
        };
        match host_port.split_once(':') {
            Some((host, port)) => {
                self.host = Some(host.to_owned());
                self.port = u16::try_from(atoi(port)).ok();
            }
            None => self.host = Some(host_port.to_owned()),
        }
        Ok(())
    }

    /// `-D command identifier value [value]`; returns how many arguments it used.
    fn parse_property(&mut self, rest: &[String]) -> Result<usize, ArgsError> {
        let not_enough = || {
            invalid(
                "Error: --property argument given but not enough arguments specified.\n\n".into(),
            )
        };
        let (Some(command), Some(name)) = (rest.first(), rest.get(1)) else {
            return Err(not_enough());
        };
        let context = property_context(command)?;
        let Some(id) = property_id(name) else {
            return Err(invalid(
                "Error: Invalid property name given in --property argument.\n\n".into(),
            ));
        };
        if !is_property_allowed(id, context) {
            return Err(invalid(format!(
                "Error: {name} property not allowed for {command} in --property argument.\n\n"
            )));
        }
        let value = rest.get(2).ok_or_else(not_enough)?;
        let target = match context {
            PropertyContext::Packet(PacketType::Connect) => &mut self.connect_properties,
            PropertyContext::Packet(PacketType::Publish) => &mut self.publish_properties,
            PropertyContext::Packet(PacketType::Subscribe) => &mut self.subscribe_properties,
            PropertyContext::Packet(PacketType::Unsubscribe) => &mut self.unsubscribe_properties,
            PropertyContext::Packet(PacketType::Disconnect) => &mut self.disconnect_properties,
            PropertyContext::Will => &mut self.will_properties,
            // Accepted and not sent: these tools send no PUBACK..PUBCOMP or AUTH with
            // properties (Mosquitto's tools ignore them as well).
            _ => &mut OwnedProperties::default(),
        };
        let out_of_range = |v: &str| {
            invalid(format!(
                "Error: Property value ({v}) out of range for property {name}.\n\n"
            ))
        };
        let duplicate = || {
            let packet = match context {
                PropertyContext::Will => "Will".to_owned(),
                _ => command.to_ascii_uppercase(),
            };
            invalid(format!(
                "Error in {packet} properties: Duplicate property in property list\n"
            ))
        };
        let byte = |v: &str| u8::try_from(atoi(v)).map_err(|_| out_of_range(v));
        let two = |v: &str| u16::try_from(atoi(v)).map_err(|_| out_of_range(v));
        let four = |v: &str| {
            let n: i64 = v.trim().parse().unwrap_or_else(|_| atoi(v));
            u32::try_from(n).map_err(|_| out_of_range(v))
        };
        fn set<T>(
            slot: &mut Option<T>,
            v: T,
            dup: impl Fn() -> ArgsError,
        ) -> Result<(), ArgsError> {
            if slot.is_some() {
                return Err(dup());
            }
            *slot = Some(v);
            Ok(())
        }
        let value = value.as_str();
        match id {
            0x01 => {
                let v = byte(value)?;
                if v > 1 {
                    return Err(out_of_range(value));
                }
                set(&mut target.payload_format_indicator, v, duplicate)?
            }
            0x02 => set(&mut target.message_expiry_interval, four(value)?, duplicate)?,
            0x03 => set(&mut target.content_type, value.to_owned(), duplicate)?,
            0x08 => set(&mut target.response_topic, value.to_owned(), duplicate)?,
            0x09 => set(
                &mut target.correlation_data,
                value.as_bytes().to_vec(),
                duplicate,
            )?,
            0x0b => {
                let v = four(value)?;
                if v == 0 || v > crate::protocol::MAX_SUBSCRIPTION_IDENTIFIER {
                    return Err(out_of_range(value));
                }
                target.subscription_identifiers.push(v);
            }
            0x11 => set(&mut target.session_expiry_interval, four(value)?, duplicate)?,
            0x15 => set(
                &mut target.authentication_method,
                value.to_owned(),
                duplicate,
            )?,
            0x16 => set(
                &mut target.authentication_data,
                value.as_bytes().to_vec(),
                duplicate,
            )?,
            0x17 => set(
                &mut target.request_problem_information,
                byte(value)?,
                duplicate,
            )?,
            0x18 => set(&mut target.will_delay_interval, four(value)?, duplicate)?,
            0x19 => set(
                &mut target.request_response_information,
                byte(value)?,
                duplicate,
            )?,
            0x1f => set(&mut target.reason_string, value.to_owned(), duplicate)?,
            0x21 => {
                let v = two(value)?;
                if v == 0 {
                    return Err(out_of_range(value));
                }
                set(&mut target.receive_maximum, v, duplicate)?
            }
            0x22 => set(&mut target.topic_alias_maximum, two(value)?, duplicate)?,
            0x23 => {
                let v = two(value)?;
                if v == 0 {
                    return Err(out_of_range(value));
                }
                set(&mut target.topic_alias, v, duplicate)?
            }
            0x26 => {
                let v2 = rest.get(3).ok_or_else(not_enough)?;
                target
                    .user_properties
                    .push((value.to_owned(), v2.to_owned()));
                return Ok(4);
            }
            0x27 => {
                let v = four(value)?;
                if v == 0 {
                    return Err(out_of_range(value));
                }
                set(&mut target.maximum_packet_size, v, duplicate)?
            }
            // Server-only properties are not allowed in any client packet (checked above).
            _ => return Err(out_of_range(value)),
        }
        Ok(3)
    }

    /// The checks Mosquitto makes once all options are read.
    fn check(&mut self) -> Result<(), ArgsError> {
        if self.will_payload.is_some() && self.will_topic.is_none() {
            return Err(invalid(
                "Error: Will payload given, but no will topic given.\n".into(),
            ));
        }
        if self.will_retain && self.will_topic.is_none() {
            return Err(invalid(
                "Error: Will retain given, but no will topic given.\n".into(),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(invalid(
                "Error: Both certfile and keyfile must be provided if one of them is set.\n".into(),
            ));
        }
        if let Some(v) = &self.tls_version {
            if !matches!(v.as_str(), "tlsv1.2" | "tlsv1.3") {
                return Err(invalid(format!(
                    "Error: Unsupported TLS version '{v}': culex supports tlsv1.2 and tlsv1.3.\n"
                )));
            }
        }
        if self.version == ProtocolVersion::V5 {
            let mut expiry = self.session_expiry_interval;
            if !self.clean_session && expiry.is_none() {
                expiry = Some(u32::MAX);
            }
            if let Some(expiry) = expiry.filter(|e| *e > 0) {
                if expiry == u32::MAX && (self.id_prefix.is_some() || self.id.is_none()) {
                    return Err(invalid("Error: You must provide a client id if you are using an infinite session expiry interval.\n".into()));
                }
                self.connect_properties.session_expiry_interval = Some(expiry);
            }
        } else if !self.clean_session && (self.id_prefix.is_some() || self.id.is_none()) {
            return Err(invalid(
                "Error: You must provide a client id if you are using the -c option.\n".into(),
            ));
        }
        match self.tool {
            Tool::Sub => {
                if self.topics.is_empty() && self.unsubscribe_topics.is_empty() {
                    return Err(invalid(
                        "Error: You must specify a topic to subscribe to.\n".into(),
                    ));
                }
            }
            Tool::Pub => {
                if self.topics.is_empty() || self.payload == PayloadSource::None {
                    return Err(ArgsError::InvalidWithUsage(
                        "Error: Both topic and message must be supplied.\n".into(),
                    ));
                }
            }
            Tool::Rr => {
                if self.topics.is_empty()
                    || self.payload == PayloadSource::None
                    || self.response_topic.is_none()
                {
                    return Err(ArgsError::InvalidWithUsage(
                        "Error: All of topic, message, and response topic must be supplied.\n"
                            .into(),
                    ));
                }
                if self.payload == PayloadSource::StdinLines {
                    return Err(invalid("Error: -l is not supported by culex_rr.\n".into()));
                }
            }
        }
        Ok(())
    }
}

fn invalid(message: String) -> ArgsError {
    ArgsError::Invalid(message)
}

fn qos(q: i64) -> Option<QoS> {
    u8::try_from(q).ok().and_then(QoS::from_u8)
}

/// C's `atoi`: leading blanks, an optional sign, digits; 0 when there are none.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut n: i64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(10) else { break };
        n = n.saturating_mul(10).saturating_add(i64::from(d));
    }
    sign * n
}

/// C's `atof` for the forms people write ("0.5", "2", "1e-3"); 0 when unparsable.
fn atof(s: &str) -> f64 {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || (i == 0 && (c == '-' || c == '+'))
                || c == 'e'
                || c == 'E')
        })
        .map_or(s.len(), |(i, _)| i);
    let v = s[..end].parse::<f64>().unwrap_or(0.0);
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// `-x`: seconds, `-1` or `∞` for never; Mosquitto's texts for the rest.
fn parse_session_expiry(v: &str) -> Result<u32, ArgsError> {
    if v == "∞" {
        return Ok(u32::MAX);
    }
    let n: i64 = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16)
    } else {
        v.parse()
    }
    .map_err(|_| invalid("Error: session-expiry-interval not a number.\n\n".into()))?;
    if n == -1 {
        return Ok(u32::MAX);
    }
    u32::try_from(n).map_err(|_| invalid("Error: session-expiry-interval out of range.\n\n".into()))
}

/// The packet (or Will) named by the command word of `-D command identifier value`.
fn property_context(command: &str) -> Result<PropertyContext, ArgsError> {
    Ok(match command.to_ascii_lowercase().as_str() {
        "connect" => PropertyContext::Packet(PacketType::Connect),
        "publish" => PropertyContext::Packet(PacketType::Publish),
        "puback" => PropertyContext::Packet(PacketType::Puback),
        "pubrec" => PropertyContext::Packet(PacketType::Pubrec),
        "pubrel" => PropertyContext::Packet(PacketType::Pubrel),
        "pubcomp" => PropertyContext::Packet(PacketType::Pubcomp),
        "subscribe" => PropertyContext::Packet(PacketType::Subscribe),
        "unsubscribe" => PropertyContext::Packet(PacketType::Unsubscribe),
        "disconnect" => PropertyContext::Packet(PacketType::Disconnect),
        "auth" => PropertyContext::Packet(PacketType::Auth),
        "will" => PropertyContext::Will,
        _ => {
            return Err(invalid(
                "Error: Invalid command given in --property argument.\n\n".into(),
            ))
        }
    })
}

/// Mosquitto's property names are the spec's, lowercase with hyphens
/// ("message-expiry-interval").
fn property_id(name: &str) -> Option<u8> {
    (0x01..=0x2a).find(|&id| {
        property_name(id).is_some_and(|spec| {
            spec.to_ascii_lowercase().replace(' ', "-") == name.to_ascii_lowercase()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn parse(tool: Tool, s: &str) -> Result<Config, ArgsError> {
        Config::parse(tool, "", &args(s))
    }

    fn error(tool: Tool, s: &str) -> String {
        match parse(tool, s) {
            Err(ArgsError::Invalid(m) | ArgsError::InvalidWithUsage(m)) => m,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn pub_flags_are_read() {
        let c = parse(
            Tool::Pub,
            "-h broker -p 1884 -t a/b -m hello -q 2 -r -i me -k 30 -u user -P pw -V mqttv31",
        )
        .unwrap();
        assert_eq!(c.host.as_deref(), Some("broker"));
        assert_eq!(c.port(), 1884);
        assert_eq!(c.topics, ["a/b"]);
        assert_eq!(c.payload, PayloadSource::Message(b"hello".to_vec()));
        assert_eq!(c.qos, QoS::ExactlyOnce);
        assert!(c.retain);
        assert_eq!(c.client_id(7, String::new), "me");
        assert_eq!(c.keep_alive, 30);
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.version, ProtocolVersion::V31);
    }

    #[test]
    fn default_client_ids_follow_mosquitto() {
        let c = parse(Tool::Sub, "-t a").unwrap();
        assert_eq!(c.client_id(42, || "x".into()), "");
        let c = parse(Tool::Sub, "-t a -V 31").unwrap();
        assert_eq!(c.client_id(42, || "x".into()), "mosq-x");
        let c = parse(Tool::Sub, "-t a -I pre-").unwrap();
        assert_eq!(c.client_id(42, || "x".into()), "pre-42");
    }

    #[test]
    fn url_sets_credentials_host_port_and_topic() {
        let c = parse(Tool::Pub, "-L mqtt://u:p@example.org:1999/x/y -n").unwrap();
        assert_eq!(
            (
                c.username.as_deref(),
                c.password.as_deref(),
                c.host.as_deref(),
                c.port()
            ),
            (Some("u"), Some("p"), Some("example.org"), 1999)
        );
        assert_eq!(c.topics, ["x/y"]);
        let c = parse(Tool::Sub, "-L mqtts://h/t").unwrap();
        assert_eq!((c.port(), c.uses_tls()), (8883, true));
        assert_eq!(
            error(Tool::Pub, "-L foo://a/b -n"),
            "Error: unsupported URL scheme.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-L mqtt://a -n"),
            "Error: Invalid URL for -L argument specified - topic missing.\n"
        );
    }

    #[test]
    fn sub_collects_topics_filters_and_output_options() {
        let c = parse(
            Tool::Sub,
            "-t a/# -t b/+ -T a/x -C 3 -W 5 -v -N -R -E --retained-only --remove-retained -F %t",
        )
        .unwrap();
        assert_eq!(c.topics, ["a/#", "b/+"]);
        assert_eq!(c.filter_outs, ["a/x"]);
        assert_eq!((c.msg_count, c.timeout), (Some(3), Some(5)));
        assert!(c.verbose && !c.eol && c.no_retain && c.exit_after_subscribe);
        assert!(c.retained_only && c.remove_retained);
        assert_eq!(c.format.as_deref(), Some("%t"));
    }

    /// The texts are Mosquitto 2.0.11's, byte for byte.
    #[test]
    fn bad_arguments_get_mosquittos_messages() {
        assert_eq!(
            error(Tool::Pub, "-t a -m x -q 3"),
            "Error: Invalid QoS given: 3\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x --bogus"),
            "Error: Unknown option '--bogus'.\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -p"),
            "Error: -p argument given but no port specified.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -V 7"),
            "Error: Invalid protocol version argument given.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a"),
            "Error: Both topic and message must be supplied.\n"
        );
        assert!(matches!(
            parse(Tool::Pub, "-t a"),
            Err(ArgsError::InvalidWithUsage(_))
        ));
        assert_eq!(
            error(Tool::Sub, ""),
            "Error: You must specify a topic to subscribe to.\n"
        );
        assert_eq!(
            error(Tool::Sub, "-t a -C 0"),
            "Error: Invalid message count \"0\".\n\n"
        );
        assert_eq!(
            error(Tool::Sub, "-t a -W x"),
            "Error: Invalid timeout \"0\".\n\n"
        );
        assert_eq!(
            error(Tool::Sub, "-t a -T"),
            "Error: -T argument given but no topic filter specified.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a/# -m x"),
            "Error: Invalid publish topic 'a/#', does it contain '+' or '#'?\n"
        );
        assert_eq!(
            error(Tool::Sub, "-t a/#/b"),
            "Error: Invalid subscription topic 'a/#/b', are all '+' and '#' wildcards correct?\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -c"),
            "Error: You must provide a client id if you are using the -c option.\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -k 2"),
            "Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -m y"),
            "Error: Only one type of message can be sent at once.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x --will-payload x"),
            "Error: Will payload given, but no will topic given.\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -x foo"),
            "Error: session-expiry-interval not a number.\n\n"
        );
        // Options of the other tools are unknown.
        assert_eq!(
            error(Tool::Pub, "-t a -m x -C 1"),
            "Error: Unknown option '-C'.\n"
        );
        assert_eq!(error(Tool::Sub, "-t a -r"), "Error: Unknown option '-r'.\n");
        assert_eq!(parse(Tool::Sub, "--help"), Err(ArgsError::Help));
    }

    #[test]
    fn properties_are_set_per_command() {
        let c = parse(
            Tool::Pub,
            "-t a -m x -D connect session-expiry-interval 60 -D publish user-property k v \
             -D publish message-expiry-interval 30 -D publish content-type text/plain \
             -D will will-delay-interval 5 --will-topic w -D connect topic-alias-maximum 4",
        )
        .unwrap();
        assert_eq!(c.version, ProtocolVersion::V5);
        assert_eq!(c.connect_properties.session_expiry_interval, Some(60));
        assert_eq!(c.connect_properties.topic_alias_maximum, Some(4));
        assert_eq!(
            c.publish_properties.user_properties,
            [("k".to_owned(), "v".to_owned())]
        );
        assert_eq!(c.publish_properties.message_expiry_interval, Some(30));
        assert_eq!(
            c.publish_properties.content_type.as_deref(),
            Some("text/plain")
        );
        assert_eq!(c.will_properties.will_delay_interval, Some(5));
    }

    #[test]
    fn bad_properties_get_mosquittos_messages() {
        assert_eq!(
            error(Tool::Pub, "-t a -m x -D"),
            "Error: --property argument given but not enough arguments specified.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -D foo bar 1"),
            "Error: Invalid command given in --property argument.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -D connect bogus 1"),
            "Error: Invalid property name given in --property argument.\n\n"
        );
        assert_eq!(
            error(Tool::Pub, "-t a -m x -D publish session-expiry-interval 5"),
            "Error: session-expiry-interval property not allowed for publish in --property argument.\n\n"
        );
        assert_eq!(
            error(
                Tool::Pub,
                "-t a -m x -D publish payload-format-indicator 300"
            ),
            "Error: Property value (300) out of range for property payload-format-indicator.\n\n"
        );
        assert_eq!(
            error(
                Tool::Pub,
                "-t a -m x -D publish correlation-data a -D publish correlation-data b"
            ),
            "Error in PUBLISH properties: Duplicate property in property list\n"
        );
    }

    #[test]
    fn session_expiry_follows_clean_session_in_v5() {
        let c = parse(Tool::Sub, "-t a -V 5 -c -i me").unwrap();
        assert_eq!(c.connect_properties.session_expiry_interval, Some(u32::MAX));
        let c = parse(Tool::Sub, "-t a -V 5 -x 60").unwrap();
        assert_eq!(c.connect_properties.session_expiry_interval, Some(60));
        assert_eq!(
            error(Tool::Sub, "-t a -V 5 -c"),
            "Error: You must provide a client id if you are using an infinite session expiry interval.\n"
        );
    }

    /// Defaults file lines are read first; the command line overrides them.
    #[test]
    fn defaults_file_gives_options_the_command_line_overrides() {
        let defaults = "# comment\n-h from-file\n-p 1999\n-m a message with spaces\n";
        let c = Config::parse(Tool::Pub, defaults, &args("-t t -p 2000")).unwrap();
        assert_eq!(c.host.as_deref(), Some("from-file"));
        assert_eq!(c.port(), 2000);
        assert_eq!(
            c.payload,
            PayloadSource::Message(b"a message with spaces".to_vec())
        );
    }

    #[test]
    fn rr_defaults_to_v5_and_needs_a_response_topic() {
        let c = parse(Tool::Rr, "-t req -e resp -m q").unwrap();
        assert_eq!(c.version, ProtocolVersion::V5);
        assert_eq!(c.response_topic.as_deref(), Some("resp"));
        assert_eq!(c.msg_count, Some(1));
        assert!(parse(Tool::Rr, "-t req -m q").is_err());
    }

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi(" -3"), -3);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atof("0.25"), 0.25);
        assert_eq!(atof("junk"), 0.0);
    }
}
