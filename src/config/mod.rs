//! mosquitto.conf: every option of Mosquitto 2.0 and 2.1 parsed into one typed
//! [`Config`], then checked against what culex implements.
//!
//! Three steps, as ripgrep's `lowargs`/`hiargs`:
//!
//! 1. [`lexer`]: text into `name value` lines with file and line, `include_dir` expanded
//!    through [`Includes`] (no file access of its own).
//! 2. [`defs`]: one entry per option (name, scope, reloadable, support, doc, parser) turns
//!    each line into typed fields of [`Config`], [`Listener`] or [`Bridge`] with
//!    Mosquitto's validation and defaults. Unknown options, bad values and options in the
//!    wrong place are [`ConfigError`]s naming file and line.
//! 3. [`Config::unsupported`] and [`Config::warnings`]: every option that is set but not
//!    implemented by culex yet is an error, an option that is harmless to ignore is a
//!    warning. Both come from the `support` column of the table in `defs.rs`, the one
//!    place to edit when a feature lands. config/ prints nothing; `bin/culex.rs` does.
//!
//! Sections follow Mosquitto: a listener option applies to the most recent `listener`
//! (before any, to the default listener of `port`/`bind_address`); a bridge option to the
//! most recent `connection`; general options are global wherever they appear; with
//! `per_listener_settings true`, the security options (`allow_anonymous`, `password_file`,
//! `acl_file`, `psk_file`, `allow_zero_length_clientid`, `auto_id_prefix`, plugins) apply
//! to the current listener instead.

mod defs;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
mod lexer;
#[cfg(test)]
mod man;

pub use defs::{OptionDef, Scope, Support, OPTIONS};
pub use lexer::{FileSystem, Includes, NoIncludes};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The MQTT default port. [MQTT-4.2]
pub const DEFAULT_PORT: u16 = 1883;

/// Where an option was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based; 0 when the message concerns the whole file.
    pub line: usize,
}

impl Location {
    fn error(&self, kind: ErrorKind) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            kind,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// `protocol` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Mqtt,
    Websockets,
    /// 2.1: the HTTP API.
    HttpApi,
}

/// `socket_domain` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketDomain {
    Ipv4,
    Ipv6,
}

/// `tls_version` / `bridge_tls_version`: the minimum TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_1,
    V1_2,
    V1_3,
}

/// `tls_keyform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyForm {
    #[default]
    Pem,
    Engine,
}

/// `accept_protocol_versions` (2.1): which CONNECT protocol levels a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolVersions {
    /// MQTT 3.1 (protocol level 3).
    pub v3: bool,
    /// MQTT 3.1.1 (level 4).
    pub v4: bool,
    /// MQTT 5.0 (level 5).
    pub v5: bool,
}

/// Security options: global, or per listener with `per_listener_settings true`. In a
/// [`Listener`], `None` means "not set for this listener".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Security {
    pub allow_anonymous: Option<bool>,
    pub allow_zero_length_clientid: Option<bool>,
    pub auto_id_prefix: Option<String>,
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    pub psk_file: Option<PathBuf>,
}

/// TLS and PSK options of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerTls {
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`.
    pub ciphers_tls13: Option<String>,
    pub crlfile: Option<PathBuf>,
    pub dhparamfile: Option<PathBuf>,
    pub require_certificate: bool,
    pub use_identity_as_username: bool,
    pub use_subject_as_username: bool,
    pub tls_version: Option<TlsVersion>,
    pub tls_engine: Option<String>,
    pub tls_engine_kpass_sha1: Option<String>,
    pub tls_keyform: KeyForm,
    pub psk_hint: Option<String>,
    pub disable_client_cert_date_checks: bool,
}

/// One listening socket (`listener PORT [ADDRESS|PATH]` and the options after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    /// `None`: every address (IPv4 and IPv6).
    pub bind_address: Option<String>,
    /// `max_connections` of this listener; `None` is unlimited (Mosquitto's -1).
    pub max_connections: Option<usize>,
    /// `listener 0 PATH`: a Unix socket.
    pub unix_socket_path: Option<PathBuf>,
    pub bind_interface: Option<String>,
    pub socket_domain: Option<SocketDomain>,
    pub protocol: Protocol,
    pub mount_point: Option<String>,
    /// `max_qos` (alias `maximum_qos`).
    pub max_qos: u8,
    pub max_topic_alias: u16,
    pub max_topic_alias_broker: u16,
    /// `None`: every version the broker speaks.
    pub accept_protocol_versions: Option<ProtocolVersions>,
    pub use_username_as_clientid: bool,
    pub http_dir: Option<PathBuf>,
    pub websockets_origin: Vec<String>,
    /// `enable_proxy_protocol 1|2` (2.1).
    pub enable_proxy_protocol: Option<u8>,
    pub proxy_protocol_v2_require_tls: bool,
    /// 2.1 `listener_allow_anonymous`.
    pub listener_allow_anonymous: Option<bool>,
    /// 2.1 `listener_auto_id_prefix`.
    pub listener_auto_id_prefix: Option<String>,
    pub tls: ListenerTls,
    /// Used with `per_listener_settings true` only.
    pub security: Security,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            port: DEFAULT_PORT,
            bind_address: None,
            max_connections: None,
            unix_socket_path: None,
            bind_interface: None,
            socket_domain: None,
            protocol: Protocol::Mqtt,
            mount_point: None,
            max_qos: 2,
            max_topic_alias: 10,
            max_topic_alias_broker: 10,
            accept_protocol_versions: None,
            use_username_as_clientid: false,
            http_dir: None,
            websockets_origin: Vec::new(),
            enable_proxy_protocol: None,
            proxy_protocol_v2_require_tls: false,
            listener_allow_anonymous: None,
            listener_auto_id_prefix: None,
            tls: ListenerTls::default(),
            security: Security::default(),
        }
    }
}

impl Listener {
    /// A TCP listener with every other option at its default.
    pub fn tcp(port: u16, bind_address: Option<String>) -> Listener {
        Listener {
            port,
            bind_address,
            ..Listener::default()
        }
    }
}

/// A bridge `topic` line's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    Both,
}

/// `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTopic {
    /// `None`: `""`, the topic is the prefix itself (both prefixes are then required).
    pub pattern: Option<String>,
    pub direction: Direction,
    pub qos: u8,
    pub local_prefix: Option<String>,
    pub remote_prefix: Option<String>,
}

/// `address host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeAddress {
    pub host: String,
    pub port: u16,
}

/// `restart_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartTimeout {
    /// `restart_timeout N`: wait N seconds each time.
    Constant(u32),
    /// `restart_timeout BASE CAP [STABLE]`: jittered exponential backoff; 2.1's STABLE is
    /// how long a connection must last before the backoff resets.
    Backoff {
        base: u32,
        cap: u32,
        stable: Option<u32>,
    },
}

/// `start_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartType {
    Automatic,
    Lazy,
    Once,
}

/// `bridge_protocol_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeProtocol {
    Mqtt31,
    Mqtt311,
    Mqtt50,
}

/// `bridge_reload_type` (2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadType {
    Lazy,
    Immediate,
}

/// culex `bridge_preset`: what a cloud service needs, set for the options a `connection`
/// block does not set itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgePreset {
    /// AWS IoT Core: MQTT 3.1.1, no bridge bit, no retained messages, no $SYS
    /// notifications, QoS at most 1, ALPN `x-amzn-mqtt-ca` on port 443.
    AwsIot,
    /// Azure IoT Hub: MQTT 3.1.1, no bridge bit, no retained messages, no $SYS
    /// notifications, QoS at most 1, TLS, the username
    /// `HUB/DEVICE/?api-version=2021-04-12`.
    AzureIotHub,
}

/// `bridge_tcp_keepalive IDLE INTERVAL COUNT` (2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub idle: u32,
    pub interval: u32,
    pub count: u32,
}

/// Bridge TLS and PSK options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgeTls {
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub tls_use_os_certs: bool,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub alpn: Option<String>,
    pub insecure: bool,
    pub require_ocsp: bool,
    pub tls_version: Option<TlsVersion>,
    pub ciphers: Option<String>,
    pub ciphers_tls13: Option<String>,
    pub identity: Option<String>,
    pub psk: Option<String>,
}

/// One bridge: `connection NAME` and the options after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub addresses: Vec<BridgeAddress>,
    pub round_robin: bool,
    pub topics: Vec<BridgeTopic>,
    pub cleansession: bool,
    /// `None`: same as `cleansession`.
    pub local_cleansession: Option<bool>,
    /// `None`: `<hostname>.<name>`, decided at start-up.
    pub remote_clientid: Option<String>,
    pub remote_username: Option<String>,
    pub remote_password: Option<String>,
    pub local_clientid: Option<String>,
    pub local_username: Option<String>,
    pub local_password: Option<String>,
    pub keepalive_interval: u16,
    pub restart_timeout: RestartTimeout,
    pub start_type: StartType,
    pub threshold: u32,
    pub idle_timeout: u32,
    pub notifications: bool,
    pub notifications_local_only: bool,
    pub notification_topic: Option<String>,
    pub try_private: bool,
    pub bridge_protocol_version: BridgeProtocol,
    pub bridge_attempt_unsubscribe: bool,
    pub bridge_outgoing_retain: bool,
    /// 0: unlimited.
    pub bridge_max_packet_size: u32,
    pub bridge_bind_address: Option<String>,
    pub bridge_max_topic_alias: u16,
    /// `None`: `max_inflight_messages`.
    pub bridge_receive_maximum: Option<u16>,
    pub bridge_session_expiry_interval: u32,
    pub bridge_tcp_keepalive: Option<TcpKeepalive>,
    /// Milliseconds.
    pub bridge_tcp_user_timeout: Option<u32>,
    pub bridge_reload_type: ReloadType,
    pub tls: BridgeTls,
    /// culex `bridge_outbox_messages`: messages kept for the remote while it is away;
    /// `None`: `max_queued_messages`.
    pub outbox_messages: Option<usize>,
    /// culex `bridge_outbox_bytes`; `None`: `max_queued_bytes`.
    pub outbox_bytes: Option<usize>,
    /// culex `bridge_outbox_full drop_oldest`: the oldest message gives way (default: the
    /// newest is dropped, as Mosquitto does).
    pub outbox_drop_oldest: bool,
    /// culex `bridge_outbox_max_age`: seconds a message may wait for the remote before it
    /// is dropped instead of sent; `None`: no limit.
    pub outbox_max_age: Option<u32>,
    /// culex `bridge_latest_only` (repeatable): local topic filters whose messages keep
    /// only the newest per topic while the remote is unreachable.
    pub latest_only: Vec<String>,
    /// culex `bridge_replay_rate`: messages per second of the backlog after a
    /// (re)connection, behind live messages; 0: unlimited.
    pub replay_rate: u32,
    /// culex `bridge_preset`, applied when the configuration is read (the options it
    /// sets are in their fields by then).
    pub preset: Option<BridgePreset>,
    /// culex `bridge_azure_sas_key`: base64 key the bridge signs its Azure IoT Hub SAS
    /// token (its password) with.
    pub azure_sas_key: Option<String>,
    /// culex `bridge_azure_sas_ttl`: seconds a SAS token is valid; the bridge connects
    /// again with a fresh one before that.
    pub azure_sas_ttl: u32,
}

impl Bridge {
    /// A bridge with Mosquitto's defaults.
    pub fn new(name: &str) -> Bridge {
        Bridge {
            name: name.to_string(),
            addresses: Vec::new(),
            round_robin: false,
            topics: Vec::new(),
            cleansession: false,
            local_cleansession: None,
            remote_clientid: None,
            remote_username: None,
            remote_password: None,
            local_clientid: None,
            local_username: None,
            local_password: None,
            keepalive_interval: 60,
            restart_timeout: RestartTimeout::Backoff {
                base: 5,
                cap: 30,
                stable: None,
            },
            start_type: StartType::Automatic,
            threshold: 10,
            idle_timeout: 60,
            notifications: true,
            notifications_local_only: false,
            notification_topic: None,
            try_private: true,
            bridge_protocol_version: BridgeProtocol::Mqtt311,
            bridge_attempt_unsubscribe: true,
            bridge_outgoing_retain: true,
            bridge_max_packet_size: 0,
            bridge_bind_address: None,
            bridge_max_topic_alias: 10,
            bridge_receive_maximum: None,
            bridge_session_expiry_interval: 0,
            bridge_tcp_keepalive: None,
            bridge_tcp_user_timeout: None,
            bridge_reload_type: ReloadType::Lazy,
            tls: BridgeTls::default(),
            outbox_messages: None,
            outbox_bytes: None,
            outbox_drop_oldest: false,
            outbox_max_age: None,
            latest_only: Vec::new(),
            replay_rate: 0,
            preset: None,
            azure_sas_key: None,
            azure_sas_ttl: 3600,
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
    pub websockets: bool,
    pub debug: bool,
}

impl Default for LogTypes {
    fn default() -> Self {
        LogTypes {
            error: true,
            warning: true,
            notice: true,
            information: true,
            ..LogTypes::none()
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
            websockets: true,
            debug: true,
        }
    }

    pub fn none() -> LogTypes {
        LogTypes {
            error: false,
            warning: false,
            notice: false,
            information: false,
            subscribe: false,
            unsubscribe: false,
            websockets: false,
            debug: false,
        }
    }
}

/// Where log lines go (`log_dest`, may repeat). Default: stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDest {
    pub stderr: bool,
    pub stdout: bool,
    pub syslog: bool,
    pub topic: bool,
    pub dlt: bool,
    pub android: bool,
    /// `log_dest file PATH` (once).
    pub file: Option<PathBuf>,
}

impl Default for LogDest {
    fn default() -> Self {
        LogDest {
            stderr: true,
            ..LogDest::none()
        }
    }
}

impl LogDest {
    pub fn none() -> LogDest {
        LogDest {
            stderr: false,
            stdout: false,
            syslog: false,
            topic: false,
            dlt: false,
            android: false,
            file: None,
        }
    }
}

/// A `plugin`/`auth_plugin`/`global_plugin`/`plugin_load` and its `plugin_opt_*` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    pub path: String,
    /// `plugin_load NAME PATH` (2.1).
    pub name: Option<String>,
    /// `global_plugin`: for every listener whatever `per_listener_settings` says.
    pub global: bool,
    /// The listener it belongs to with `per_listener_settings true` (`None`: the default
    /// listener or global).
    pub listener: Option<usize>,
    /// `plugin_opt_KEY VALUE` / `auth_opt_KEY VALUE`, KEY without the prefix.
    pub options: Vec<(String, String, Location)>,
    pub auth_plugin_deny_special_chars: bool,
    pub at: Location,
    /// Mosquitto 2.1's password-file or acl-file plugin, read as built-in handling.
    pub maps_to: Option<MappedPlugin>,
}

/// A plugin culex replaces with built-in handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappedPlugin {
    /// `mosquitto_password_file` + `plugin_opt_password_file PATH` = `password_file PATH`.
    PasswordFile(PathBuf),
    /// `mosquitto_acl_file` + `plugin_opt_acl_file PATH` = `acl_file PATH`.
    AclFile(PathBuf),
    /// `mosquitto_dynamic_security` + `plugin_opt_config_file PATH`: built-in dynamic
    /// security with that `dynamic-security.json`.
    DynSec(PathBuf),
}

/// One option line as parsed, kept for the support check: the table entry's name (the
/// canonical name for aliases), the value as written, where, and where it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub option: &'static str,
    pub written: String,
    pub value: String,
    pub at: Location,
}

/// The whole configuration. Field names are the mosquitto.conf option names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Explicit listeners, in order. See [`Config::effective_listeners`] for the default
    /// listener.
    pub listeners: Vec<Listener>,
    /// `port` (deprecated in Mosquitto): the default listener's port.
    pub port: Option<u16>,
    /// `bind_address` (deprecated): the default listener's address.
    pub bind_address: Option<String>,
    /// `max_connections` before any `listener` line: the default listener's.
    pub max_connections: Option<usize>,
    /// Listener options written before any `listener` line (Mosquitto's default
    /// listener); its port, address and max_connections are the three fields above.
    pub default_listener: Listener,
    pub bridges: Vec<Bridge>,

    // Security (global unless per_listener_settings).
    /// `None`: Mosquitto 2's default, false once any listener is configured, true in the
    /// loopback-only mode without configuration.
    pub allow_anonymous: Option<bool>,
    pub allow_zero_length_clientid: bool,
    pub auto_id_prefix: Option<String>,
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    /// Mosquitto's dynamic-security plugin (`plugin .../mosquitto_dynamic_security.so` with
    /// `plugin_opt_config_file FILE`), read as culex's built-in dynamic security: FILE.
    pub dynsec_file: Option<PathBuf>,
    pub psk_file: Option<PathBuf>,
    pub per_listener_settings: bool,
    pub check_retain_source: bool,
    pub plugins: Vec<Plugin>,
    /// `plugin_use NAME` lines (2.1), with the listener they apply to.
    pub plugin_use: Vec<(String, Option<usize>, Location)>,

    // General.
    pub user: Option<String>,
    pub pid_file: Option<PathBuf>,
    /// Seconds between $SYS updates; 0 disables them.
    pub sys_interval: u32,
    pub set_tcp_nodelay: bool,
    pub upgrade_outgoing_qos: bool,
    pub allow_duplicate_messages: bool,
    pub clientid_prefixes: Option<String>,
    pub connection_messages: bool,
    pub enable_control_api: bool,
    /// `None`: unlimited.
    pub global_max_clients: Option<u64>,
    pub global_max_connections: Option<u64>,
    /// culex's `max_connection_rate`: new connections per second per IP address; `None`:
    /// unlimited.
    pub max_connection_rate: Option<u32>,
    /// culex's `max_subscriptions_per_client`: 0 unlimited.
    pub max_subscriptions_per_client: usize,
    /// culex's `max_retained_messages` and `max_retained_bytes`: 0 unlimited.
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    /// culex's `subscriber_stall_timeout`: seconds a subscriber that is behind may take
    /// nothing before it stops holding its publishers back; 0: publishers are never held.
    pub subscriber_stall_timeout: u32,
    /// Bytes; 0: no limit.
    pub memory_limit: u64,
    pub retain_available: bool,
    /// Seconds between sweeps of expired retained messages (2.1.2); 0: off.
    pub retain_expiry_interval: u32,
    /// `None`: never (Mosquitto's default).
    pub persistent_client_expiration: Option<Duration>,
    /// Bytes (2.1.2); `None`: the broker's choice.
    pub packet_buffer_size: Option<u32>,

    // Limits.
    /// 0 means unlimited.
    pub max_inflight_messages: u16,
    /// 0 means unlimited.
    pub max_inflight_bytes: usize,
    /// 0 means unlimited.
    pub max_queued_messages: usize,
    /// 0 means unlimited.
    pub max_queued_bytes: usize,
    pub queue_qos0_messages: bool,
    /// `None`: unlimited (Mosquitto 2.0's default; 2.1's is 2,000,000).
    pub max_packet_size: Option<u32>,
    /// Largest PUBLISH payload accepted; 0 means the protocol's limit.
    pub message_size_limit: usize,
    /// 3.1/3.1.1 clients asking for a longer keep alive are refused. 0 means unlimited.
    /// culex keeps Mosquitto 2.0's default, 65535 (2.1's is 0).
    pub max_keepalive: u16,

    // Persistence.
    pub persistence: bool,
    pub persistence_location: Option<PathBuf>,
    pub persistence_file: Option<String>,
    pub autosave_interval: u32,
    pub autosave_on_changes: bool,
    /// culex's `persistence_sync ack`.
    pub persistence_sync_ack: bool,
    /// culex's `persistence_sync_interval`.
    pub persistence_sync_interval: Duration,

    // Logging.
    pub log_dest: LogDest,
    pub log_facility: Option<u8>,
    pub log_type: LogTypes,
    pub log_timestamp: bool,
    pub log_timestamp_format: Option<String>,
    pub websockets_log_level: Option<i32>,
    pub websockets_headers_size: Option<u16>,

    /// Every option line, in order, for [`Config::unsupported`] and [`Config::warnings`].
    pub settings: Vec<Setting>,
    /// Notes made while parsing (values raised to Mosquitto's minimum, ...).
    pub notices: Vec<ConfigError>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            port: None,
            bind_address: None,
            max_connections: None,
            default_listener: Listener::default(),
            bridges: Vec::new(),
            allow_anonymous: None,
            allow_zero_length_clientid: true,
            auto_id_prefix: None,
            password_file: None,
            acl_file: None,
            dynsec_file: None,
            psk_file: None,
            per_listener_settings: false,
            check_retain_source: true,
            plugins: Vec::new(),
            plugin_use: Vec::new(),
            user: None,
            pid_file: None,
            sys_interval: 10,
            set_tcp_nodelay: false,
            upgrade_outgoing_qos: false,
            allow_duplicate_messages: false,
            clientid_prefixes: None,
            connection_messages: true,
            enable_control_api: false,
            global_max_clients: None,
            global_max_connections: None,
            max_connection_rate: None,
            max_subscriptions_per_client: 0,
            max_retained_messages: 0,
            max_retained_bytes: 0,
            subscriber_stall_timeout: 2,
            memory_limit: 0,
            retain_available: true,
            retain_expiry_interval: 0,
            persistent_client_expiration: None,
            packet_buffer_size: None,
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            queue_qos0_messages: false,
            max_packet_size: None,
            message_size_limit: 0,
            max_keepalive: 65535,
            persistence: false,
            persistence_location: None,
            persistence_file: None,
            autosave_interval: 1800,
            autosave_on_changes: false,
            persistence_sync_ack: false,
            persistence_sync_interval: Duration::from_secs(1),
            log_dest: LogDest::default(),
            log_facility: None,
            log_type: LogTypes::default(),
            log_timestamp: true,
            log_timestamp_format: None,
            websockets_log_level: None,
            websockets_headers_size: None,
            settings: Vec::new(),
            notices: Vec::new(),
        }
    }
}

impl Config {
    /// Is this the loopback-only mode Mosquitto 2 runs in when no `listener`, `port` or
    /// `bind_address` is configured?
    pub fn is_local_only(&self) -> bool {
        self.listeners.is_empty() && self.port.is_none() && self.bind_address.is_none()
    }

    /// Mosquitto opens its default listener (1883 on every address unless `port` and
    /// `bind_address` say otherwise) when `port` or `bind_address` is given or a listener
    /// option is written before the first `listener` line, alongside the explicit ones.
    pub fn has_default_listener(&self) -> bool {
        self.port.is_some()
            || self.bind_address.is_some()
            || self.max_connections.is_some()
            || self.default_listener != Listener::default()
    }

    fn default_listener_with(&self, bind_address: Option<String>) -> Listener {
        Listener {
            port: self.port.unwrap_or(DEFAULT_PORT),
            bind_address,
            max_connections: self.max_connections,
            ..self.default_listener.clone()
        }
    }

    /// The listeners to open: the explicit ones, then the default listener if it is
    /// configured (see [`Config::has_default_listener`]). Without any of them, Mosquitto 2
    /// listens on port 1883 of the loopback addresses only.
    pub fn effective_listeners(&self) -> Vec<Listener> {
        if self.is_local_only() {
            return ["127.0.0.1", "::1"]
                .iter()
                .map(|a| self.default_listener_with(Some((*a).to_string())))
                .collect();
        }
        let mut listeners = self.listeners.clone();
        if self.has_default_listener() {
            listeners.push(self.default_listener_with(self.bind_address.clone()));
        }
        listeners
    }

    /// `allow_anonymous` with Mosquitto 2's default applied.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.is_local_only())
    }

    /// Reads and parses a configuration file and the `include_dir` files it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if path.is_dir() {
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: 0,
                kind: ErrorKind::Io("it is a directory".into()),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            kind: ErrorKind::Io(e.to_string()),
        })?;
        Config::parse_with(&text, path, &FileSystem)
    }

    /// Parses configuration text; `file` is used in messages only. `include_dir` is an
    /// error here (no file access); see [`Config::parse_with`].
    pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, file, &NoIncludes)
    }

    /// Parses configuration text, reading `include_dir` directories through `includes`.
    pub fn parse_with(
        text: &str,
        file: &Path,
        includes: &dyn Includes,
    ) -> Result<Config, ConfigError> {
        let lines = lexer::lex(text, file, 0, includes)?;
        defs::parse_lines(&lines)
    }

    /// Every option that is set but not implemented by culex yet, with its file and line,
    /// and every plugin culex refuses. Start-up fails if this is not empty.
    pub fn unsupported(&self) -> Vec<ConfigError> {
        defs::unsupported(self)
    }

    /// Options that are accepted and ignored because ignoring them is harmless, plugin
    /// mappings and parse notices: to print, not to fail on.
    pub fn warnings(&self) -> Vec<ConfigError> {
        defs::warnings(self)
    }
}

/// A configuration error (or warning) with its place.
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
    /// A Mosquitto option culex refuses for good: option, reason.
    Refused(String, &'static str),
    /// A known option with a bad value: option, explanation.
    Invalid(String, String),
    /// A known option without its value.
    MissingValue(String),
    /// An option written where it does not apply: option, the scope it needs.
    WrongScope(String, Scope),
    /// A single-valued option given twice in the same place.
    Duplicate(String),
    /// A harmless option culex ignores: option, why it is harmless.
    Ignored(String, &'static str),
    /// A plugin culex does not load (its path).
    PluginRefused(String),
    /// A Mosquitto 2.1 plugin read as built-in handling: plugin path, the option it means.
    PluginMapped(String, String),
    /// Something worth knowing, in a sentence.
    Notice(String),
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
            ErrorKind::Refused(name, why) => {
                write!(f, "'{name}' is a Mosquitto option culex refuses: {why}")
            }
            ErrorKind::Invalid(name, why) => write!(f, "invalid value for '{name}': {why}"),
            ErrorKind::MissingValue(name) => write!(f, "'{name}' needs a value"),
            ErrorKind::WrongScope(name, Scope::Bridge) => write!(
                f,
                "'{name}' is a bridge option: put it after a 'connection NAME' line"
            ),
            ErrorKind::WrongScope(name, _) => write!(
                f,
                "'{name}' is a listener option: put it after a 'listener PORT' line"
            ),
            ErrorKind::Duplicate(name) => write!(
                f,
                "'{name}' is set twice here (Mosquitto refuses that too); keep one"
            ),
            ErrorKind::Ignored(name, why) => write!(f, "'{name}' is ignored: {why}"),
            ErrorKind::PluginRefused(path) => write!(
                f,
                "plugin '{path}' refused: culex does not load Mosquitto plugins (it reads \
                 only Mosquitto's dynamic-security plugin and 2.1's password-file and \
                 acl-file plugins, as built-in handling)"
            ),
            ErrorKind::PluginMapped(path, option) => write!(
                f,
                "plugin '{path}' is read as '{option}' (culex's built-in handling)"
            ),
            ErrorKind::Notice(text) => f.write_str(text),
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
        assert!(c.unsupported().is_empty());
    }

    #[test]
    fn a_listener_turns_anonymous_off_by_default_as_mosquitto_2() {
        let c = parse("listener 1884\n").unwrap();
        assert!(!c.allows_anonymous());
        assert_eq!(c.effective_listeners(), vec![Listener::tcp(1884, None)]);
        let c = parse("listener 1884 127.0.0.1\nallow_anonymous true\n").unwrap();
        assert!(c.allows_anonymous());
        assert_eq!(c.listeners[0].bind_address.as_deref(), Some("127.0.0.1"));
        // bind_address alone also leaves the local-only mode, as Mosquitto.
        assert!(!parse("bind_address 10.0.0.1\n").unwrap().allows_anonymous());
    }

    #[test]
    fn port_and_listener_open_both_as_mosquitto() {
        let c = parse("port 1883\nlistener 9001\n").unwrap();
        let ports: Vec<u16> = c.effective_listeners().iter().map(|l| l.port).collect();
        assert_eq!(ports, vec![9001, 1883]);
    }

    #[test]
    fn max_connections_before_any_listener_is_the_default_listeners() {
        // Mosquitto: options before the first `listener` configure the default listener
        // (1883, every address), which is then opened alongside the explicit ones.
        let c = parse("max_connections 5\nlistener 1\nlistener 2\nmax_connections 7\n").unwrap();
        let l = c.effective_listeners();
        assert_eq!(
            l.iter()
                .map(|l| (l.port, l.max_connections))
                .collect::<Vec<_>>(),
            vec![(1, None), (2, Some(7)), (1883, Some(5))]
        );
        let c = parse("listener 1\nmax_connections -1\n").unwrap();
        assert_eq!(c.listeners[0].max_connections, None);
        // Without listeners it applies to the loopback pair.
        let c = parse("max_connections 3\n").unwrap();
        assert!(c
            .effective_listeners()
            .iter()
            .all(|l| l.max_connections == Some(3)));
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
        assert!(c.unsupported().is_empty());
    }

    #[test]
    fn unknown_option_names_file_line_and_suggestion() {
        let e = parse("\nmax_queued_mesages 10\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:2: unknown option 'max_queued_mesages' (did you mean 'max_queued_messages'?)"
        );
        let e = parse("frobnicate 1\n").unwrap_err();
        assert_eq!(e.to_string(), "test.conf:1: unknown option 'frobnicate'");
    }

    #[test]
    fn unsupported_mosquitto_option_says_so() {
        let c = parse("psk_file /etc/x\n").unwrap();
        assert_eq!(c.psk_file.as_deref(), Some(Path::new("/etc/x")));
        let e = c.unsupported();
        assert_eq!(
            e.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec!["test.conf:1: 'psk_file' is a Mosquitto option culex refuses: rustls, culex's TLS library, has no TLS-PSK cipher suites; use certificates (cafile/certfile/keyfile, or bridge_cafile/bridge_certfile/bridge_keyfile)"]
        );
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

    #[test]
    fn error_texts_are_sentences() {
        let at = Location {
            file: "c.conf".into(),
            line: 3,
        };
        let cases = [
            (
                ErrorKind::MissingValue("user".into()),
                "c.conf:3: 'user' needs a value",
            ),
            (
                ErrorKind::WrongScope("address".into(), Scope::Bridge),
                "c.conf:3: 'address' is a bridge option: put it after a 'connection NAME' line",
            ),
            (
                ErrorKind::WrongScope("mount_point".into(), Scope::ListenerOnly),
                "c.conf:3: 'mount_point' is a listener option: put it after a 'listener PORT' line",
            ),
            (
                ErrorKind::Duplicate("pid_file".into()),
                "c.conf:3: 'pid_file' is set twice here (Mosquitto refuses that too); keep one",
            ),
            (
                ErrorKind::Ignored("user".into(), "x"),
                "c.conf:3: 'user' is ignored: x",
            ),
            (
                ErrorKind::PluginMapped("/p.so".into(), "acl_file /a".into()),
                "c.conf:3: plugin '/p.so' is read as 'acl_file /a' (culex's built-in handling)",
            ),
        ];
        for (kind, text) in cases {
            assert_eq!(at.error(kind).to_string(), text);
        }
        let whole = ConfigError {
            file: "c.conf".into(),
            line: 0,
            kind: ErrorKind::Io("gone".into()),
        };
        assert_eq!(
            whole.to_string(),
            "c.conf: cannot read the configuration: gone"
        );
    }
}
