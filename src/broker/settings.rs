//! What the core is configured with: [`Settings`] taken from the `Config`, the options
//! each listener enforces ([`ListenerLimits`]), and a listener's own password file and
//! ACL ([`ListenerAuth`]).

use crate::auth::{Acl, PasswordFile};
use crate::config::Config;
use crate::protocol::QoS;
use std::rc::Rc;
use std::time::Duration;

/// The limits and switches the core needs, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub allow_anonymous: bool,
    pub allow_zero_length_clientid: bool,
    /// Outgoing QoS 1/2 messages in flight per client (at least 1).
    pub max_inflight_messages: usize,
    /// `max_inflight_bytes`: payload bytes of outgoing QoS 1/2 messages in flight per
    /// client before the next one waits in the queue; 0: unlimited.
    pub max_inflight_bytes: usize,
    /// `upgrade_outgoing_qos`: deliver at the subscription's QoS, even above the
    /// publication's (non-standard, as Mosquitto's option).
    pub upgrade_outgoing_qos: bool,
    /// `check_retain_source`: a retained message is served only while its publisher may
    /// still publish to its topic (Mosquitto's fix of CVE-2018-12546).
    pub check_retain_source: bool,
    /// 0: unlimited.
    pub max_queued_messages: usize,
    /// 0: unlimited.
    pub max_queued_bytes: usize,
    /// 0: unlimited.
    pub max_keepalive: u16,
    /// Largest PUBLISH payload accepted.
    pub message_size_limit: usize,
    /// 0: no $SYS.
    pub sys_interval: Duration,
    /// How long a socket may stay open without sending CONNECT.
    pub connect_timeout: Duration,
    /// Bytes an outbox may hold before QoS 0 messages to that client are dropped (QoS 1/2
    /// wait in the session queue instead).
    pub outbox_limit: usize,
    /// `subscriber_stall_timeout`: how long a subscriber that is behind may take nothing
    /// before it stops holding its publishers back (pressure.rs); zero: nobody is held.
    pub subscriber_stall_timeout: Duration,
    pub connection_messages: bool,
    /// How long a disconnected persistent session is kept (`persistent_client_expiration`);
    /// `None`: forever, as Mosquitto without the option.
    pub persistent_client_expiration: Option<Duration>,
    /// `max_packet_size`: the largest packet accepted, told to MQTT 5 clients; 0: none.
    pub max_packet_size: u32,
    /// `retain_available`.
    pub retain_available: bool,
    /// Per listener, by the index the loop passes to `handle_open`.
    pub listeners: Vec<ListenerLimits>,
    /// 2.1 `global_max_clients`: sessions, offline persistent ones included; `None`
    /// unlimited.
    pub global_max_clients: Option<usize>,
    /// culex's `max_subscriptions_per_client`: filters one session may hold; 0 unlimited.
    pub max_subscriptions_per_client: usize,
    /// culex's `max_retained_messages` / `max_retained_bytes` (payload bytes): what the
    /// retained store may hold, `$SYS` aside; 0 unlimited.
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
}

/// A listener's own password file and ACL, with `per_listener_settings true`.
#[derive(Debug, Default)]
pub struct ListenerAuth {
    pub passwords: Option<PasswordFile>,
    pub acl: Option<Acl>,
}

/// The per-listener options the core enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// `max_qos`.
    pub max_qos: QoS,
    /// `max_topic_alias`: aliases an MQTT 5 client may set.
    pub max_topic_alias: u16,
    /// `max_topic_alias_broker`: aliases culex sets toward an MQTT 5 client.
    pub max_topic_alias_broker: u16,
    /// `use_identity_as_username` / `use_subject_as_username` on a TLS listener: the
    /// username is the one the loop passes to `set_certificate_username`; the CONNECT's
    /// username and password are ignored and the password file is not consulted.
    pub username_from_certificate: bool,
    /// `mount_point`: prefixed to every topic and filter this listener's clients send
    /// (wills too, `$SYS` too, as Mosquitto does), and removed from the topics they are
    /// sent. ACLs see the prefixed topic.
    pub mount_point: Option<Rc<str>>,
    /// 2.1 `accept_protocol_versions`: MQTT 3.1, 3.1.1 and 5.0 accepted or not.
    pub accepts_v31: bool,
    pub accepts_v311: bool,
    pub accepts_v5: bool,
    /// 2.1 `listener_allow_anonymous`, overriding `allow_anonymous` for this listener.
    pub allow_anonymous: Option<bool>,
    /// `auto_id_prefix` / 2.1 `listener_auto_id_prefix` for assigned client ids.
    pub auto_id_prefix: Rc<str>,
    /// With `per_listener_settings true`: the listener's `allow_zero_length_clientid`
    /// (default true), overriding the global one.
    pub allow_zero_length_clientid: Option<bool>,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            max_topic_alias_broker: 10,
            username_from_certificate: false,
            mount_point: None,
            accepts_v31: true,
            accepts_v311: true,
            accepts_v5: true,
            allow_anonymous: None,
            auto_id_prefix: Rc::from("auto-"),
            allow_zero_length_clientid: None,
        }
    }
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let listeners = config.effective_listeners();
        // The listeners made from the default listener (`port`, `bind_address`, options
        // before the first `listener` line, or the local-only pair when nothing is
        // configured) come last. With per_listener_settings, Mosquitto 2.0 defaults
        // `allow_anonymous` to false only for the `listener` lines: a default listener
        // without its own `allow_anonymous` lets anonymous clients in (its "unset" value
        // counts as true; 2.1 changed that, and its own test now sets it).
        let first_default = if config.is_local_only() {
            0
        } else if config.has_default_listener() {
            listeners.len().saturating_sub(1)
        } else {
            listeners.len()
        };
        if config.per_listener_settings && !config.is_local_only() {
            // Mosquitto 2.0's quiet default, kept for configurations that rely on it, but
            // said out loud: 2.1 refuses anonymous clients there.
            let open = listeners.iter().skip(first_default).filter(|l| {
                l.listener_allow_anonymous.is_none() && l.security.allow_anonymous.is_none()
            });
            for l in open {
                log::warn!(
                    "Warning: per_listener_settings is true and the listener on port {} has no allow_anonymous: it lets anonymous clients in, as Mosquitto 2.0 does (2.1 refuses them). Set allow_anonymous for it.",
                    l.port
                );
            }
        }
        Settings {
            allow_anonymous: config.allows_anonymous(),
            allow_zero_length_clientid: config.allow_zero_length_clientid,
            // 0 means unlimited in Mosquitto; packet ids bound it at 65,535.
            max_inflight_messages: match config.max_inflight_messages {
                0 => usize::from(u16::MAX),
                n => usize::from(n),
            },
            max_inflight_bytes: config.max_inflight_bytes,
            upgrade_outgoing_qos: config.upgrade_outgoing_qos,
            check_retain_source: config.check_retain_source,
            max_queued_messages: config.max_queued_messages,
            max_queued_bytes: config.max_queued_bytes,
            max_keepalive: config.max_keepalive,
            message_size_limit: match config.message_size_limit {
                0 => crate::protocol::frame::MAX_REMAINING_LENGTH,
                n => n,
            },
            sys_interval: Duration::from_secs(u64::from(config.sys_interval)),
            connect_timeout: Duration::from_secs(10),
            outbox_limit: 1 << 20,
            subscriber_stall_timeout: Duration::from_secs(u64::from(
                config.subscriber_stall_timeout,
            )),
            connection_messages: config.connection_messages,
            persistent_client_expiration: config.persistent_client_expiration,
            max_packet_size: config.max_packet_size.unwrap_or(0),
            retain_available: config.retain_available,
            listeners: listeners
                .iter()
                .enumerate()
                .map(|(index, l)| ListenerLimits {
                    max_qos: QoS::from_u8(l.max_qos).unwrap_or(QoS::ExactlyOnce),
                    max_topic_alias: l.max_topic_alias,
                    max_topic_alias_broker: l.max_topic_alias_broker,
                    username_from_certificate: l.tls.certfile.is_some()
                        && (l.tls.use_identity_as_username || l.tls.use_subject_as_username),
                    mount_point: l.mount_point.as_deref().map(Rc::from),
                    accepts_v31: l.accept_protocol_versions.is_none_or(|v| v.v3),
                    accepts_v311: l.accept_protocol_versions.is_none_or(|v| v.v4),
                    accepts_v5: l.accept_protocol_versions.is_none_or(|v| v.v5),
                    // per_listener_settings: the listener's own security options; 2.1's
                    // listener_* options win over both.
                    allow_anonymous: l.listener_allow_anonymous.or(config
                        .per_listener_settings
                        .then(|| l.security.allow_anonymous.unwrap_or(index >= first_default))),
                    auto_id_prefix: Rc::from(
                        l.listener_auto_id_prefix
                            .as_deref()
                            .or(config
                                .per_listener_settings
                                .then_some(l.security.auto_id_prefix.as_deref())
                                .flatten())
                            .or(config.auto_id_prefix.as_deref())
                            .unwrap_or("auto-"),
                    ),
                    // Mosquitto reads a listener's own value only with
                    // per_listener_settings; each listener's starts as true.
                    allow_zero_length_clientid: config
                        .per_listener_settings
                        .then(|| l.security.allow_zero_length_clientid.unwrap_or(true)),
                })
                .collect(),
            max_subscriptions_per_client: config.max_subscriptions_per_client,
            max_retained_messages: config.max_retained_messages,
            max_retained_bytes: config.max_retained_bytes,
            global_max_clients: config
                .global_max_clients
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&Config::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anonymous(conf: &str) -> Vec<Option<bool>> {
        let config = Config::parse_str(conf, std::path::Path::new("t.conf")).unwrap();
        Settings::from_config(&config)
            .listeners
            .iter()
            .map(|l| l.allow_anonymous)
            .collect()
    }

    /// Mosquitto 2.0.20 with `per_listener_settings true`: a `listener` line without
    /// `allow_anonymous` refuses anonymous clients, the default listener (`port`) lets
    /// them in (its 06-bridge-per-listener-settings connects to it without a username).
    #[test]
    fn per_listener_settings_default_listener_allows_anonymous_unless_set() {
        let conf = "per_listener_settings true\nport 1889\nlistener 1890 127.0.0.1\n";
        // effective_listeners: the `listener` lines first, then the default listener.
        assert_eq!(anonymous(conf), [Some(false), Some(true)]);
        let conf = "per_listener_settings true\nport 1889\nallow_anonymous false\n\
                    listener 1890\nallow_anonymous true\n";
        assert_eq!(anonymous(conf), [Some(true), Some(false)]);
        // Nothing configured: the local-only listeners, anonymous as without the option.
        assert_eq!(
            anonymous("per_listener_settings true\n"),
            [Some(true), Some(true)]
        );
        // Without per_listener_settings the global allow_anonymous decides.
        assert_eq!(anonymous("port 1889\nlistener 1890\n"), [None, None]);
    }
}
