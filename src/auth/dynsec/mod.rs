//! Mosquitto's dynamic-security plugin, built in: the clients, groups and roles of
//! `dynamic-security.json`, the authentication and ACL checks the plugin makes, and
//! ([`control`]) the JSON commands of `$CONTROL/dynamic-security/v1` that `mosquitto_ctrl
//! dynsec` sends.
//!
//! Pure, like the rest of `auth/`: text in, answers out. The broker asks the questions
//! and hands the changed file's text to `net`, which writes it ([`DynSec::to_json`],
//! [`write_atomically`]).
//!
//! # What Mosquitto's plugin does, and culex with it
//! - The file is read as Mosquitto 2.0 and 2.1 write it. Keys are looked up ignoring ASCII
//!   case (cJSON's `GetObjectItem`); what is not understood (an entry without a name, a
//!   role that does not exist) is skipped, as the plugin does. Keys culex does not know
//!   are kept and written back.
//! - Passwords: `password` (base64 PBKDF2-HMAC-SHA512 hash), `salt` (base64) and
//!   `iterations`, or 2.1's `encoded_password` (`$7$...`). New passwords get a 12-byte
//!   salt (2.0 refuses any other length) and 1,000 iterations (2.1's default).
//! - Authentication ([`DynSec::authenticate`]): no username or no password defers to the
//!   broker (anonymous access); an unknown username defers; a disabled client, a client
//!   id other than the one fixed for the username, or a wrong password is refused.
//! - ACLs ([`DynSec::check`]): the client's own roles in priority order, then its groups
//!   in priority order and each group's roles in priority order; in each role the ACLs of
//!   the type asked in priority order (for subscribe and unsubscribe the role's literal
//!   ACL for exactly that filter first). The first ACL that matches decides. A client
//!   without a username uses the anonymous group. Nothing matched: the default access of
//!   that type, except that `$CONTROL/...` is never granted by default.
//! - As in 2.1, a level that is exactly `%c` or `%u` in a publish or pattern ACL stands
//!   for the client id or username (2.0 compared it literally), and a role with
//!   `allowwildcardsubs: false` refuses subscriptions with `+` or `#`.

pub mod control;
#[cfg(any(test, fuzzing))]
pub mod fuzz;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use base64::Engine as _;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Salt length of new passwords: Mosquitto 2.0's (it refuses other lengths).
pub const SALT_LEN: usize = 12;
/// PBKDF2 iterations of new passwords: Mosquitto 2.1's default (2.0 wrote 101).
pub const NEW_ITERATIONS: u32 = 1_000;
const HASH_LEN: usize = 64;

/// The six ACL types of a role, in the order Mosquitto writes them.
pub const ACL_TYPES: [&str; 6] = [
    "publishClientSend",
    "publishClientReceive",
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
];

/// What an ACL check is about: the four kinds of `defaultACLAccess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclKind {
    /// PUBLISH from the client (`publishClientSend`).
    Send,
    /// A message delivered to the client (`publishClientReceive`).
    Receive,
    /// A SUBSCRIBE filter (`subscribeLiteral`, `subscribePattern`; default `subscribe`).
    Subscribe,
    /// An UNSUBSCRIBE filter (`unsubscribeLiteral`, `unsubscribePattern`).
    Unsubscribe,
}

/// The plugin's answer: decided, or left to the broker's other checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Mosquitto's `MOSQ_ERR_PLUGIN_DEFER`.
    Defer,
}

/// A stored password: PBKDF2-HMAC-SHA512.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password {
    pub salt: Vec<u8>,
    pub hash: [u8; HASH_LEN],
    pub iterations: NonZeroU32,
    /// Read from 2.1's `encoded_password`: written back the same way.
    pub encoded: bool,
}

impl Password {
    /// Hashes `password` with `salt` and [`NEW_ITERATIONS`].
    pub fn new(password: &str, salt: &[u8]) -> Password {
        let iterations = NonZeroU32::new(NEW_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        Password {
            salt: salt.to_vec(),
            hash: pbkdf2(password.as_bytes(), salt, iterations),
            iterations,
            encoded: false,
        }
    }

    pub fn matches(&self, password: &[u8]) -> bool {
        bool::from(pbkdf2(password, &self.salt, self.iterations).ct_eq(&self.hash))
    }

    /// `$7$iterations$salt$hash`, as 2.1's `encoded_password` and password files hold it.
    fn parse_encoded(text: &str) -> Option<Password> {
        let rest = text.strip_prefix("$7$")?;
        let mut parts = rest.split('$');
        let iterations = parts.next()?.parse::<NonZeroU32>().ok()?;
        let salt = STANDARD_PAD_INDIFFERENT.decode(parts.next()?).ok()?;
        let hash = STANDARD_PAD_INDIFFERENT.decode(parts.next()?).ok()?;
        if parts.next().is_some() || salt.is_empty() {
            return None;
        }
        Some(Password {
            salt,
            hash: hash.try_into().ok()?,
            iterations,
            encoded: true,
        })
    }
}

fn pbkdf2(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; HASH_LEN] {
    pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, HASH_LEN>(password, salt, iterations.get())
}

/// A role or group named in a client's or group's list, with its priority (-1 when none
/// was given; such entries are written without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub priority: i32,
}

/// Inserts into a list kept as Mosquitto keeps role and group lists: priority high to
/// low, then name. False if the name is already there.
fn insert_member(list: &mut Vec<Member>, name: &str, priority: i32) -> bool {
    if list.iter().any(|m| m.name == name) {
        return false;
    }
    let at = list
        .iter()
        .position(|m| m.priority < priority || (m.priority == priority && *m.name > *name))
        .unwrap_or(list.len());
    list.insert(
        at,
        Member {
            name: name.to_string(),
            priority,
        },
    );
    true
}

#[derive(Debug, Clone, Default)]
pub struct Client {
    pub username: String,
    pub clientid: Option<String>,
    pub textname: Option<String>,
    pub textdescription: Option<String>,
    pub disabled: bool,
    pub password: Option<Password>,
    /// Priority order.
    pub roles: Vec<Member>,
    /// The groups the client is in, priority order (mirrors `Group::clients`).
    pub groups: Vec<Member>,
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Group {
    pub groupname: String,
    pub textname: Option<String>,
    pub textdescription: Option<String>,
    pub roles: Vec<Member>,
    /// Members by username (sorted), with the priority they were added with.
    pub clients: BTreeMap<String, i32>,
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub topic: String,
    pub priority: i32,
    pub allow: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Role {
    pub rolename: String,
    pub textname: Option<String>,
    pub textdescription: Option<String>,
    /// Per [`ACL_TYPES`] index, priority high to low, ties in the order added.
    pub acls: [Vec<AclEntry>; 6],
    /// 2.1: `allowwildcardsubs` (default true).
    pub allow_wildcard_subs: bool,
    extra: Map<String, Value>,
}

impl Role {
    fn new(name: &str) -> Role {
        Role {
            rolename: name.to_string(),
            allow_wildcard_subs: true,
            ..Role::default()
        }
    }

    /// Adds an ACL after those of higher or equal priority; false if its topic is
    /// already in that list.
    pub fn add_acl(&mut self, kind: usize, acl: AclEntry) -> bool {
        let list = &mut self.acls[kind];
        if list.iter().any(|a| a.topic == acl.topic) {
            return false;
        }
        let at = list
            .iter()
            .position(|a| a.priority < acl.priority)
            .unwrap_or(list.len());
        list.insert(at, acl);
        true
    }
}

/// `defaultACLAccess`: what applies when no ACL matched. Mosquitto's defaults are all
/// false (a file without the object); `mosquitto_ctrl dynsec init` writes publishClientReceive
/// and unsubscribe true.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultAccess {
    pub publish_client_send: bool,
    pub publish_client_receive: bool,
    pub subscribe: bool,
    pub unsubscribe: bool,
}

pub const DEFAULT_ACCESS_NAMES: [&str; 4] = [
    "publishClientSend",
    "publishClientReceive",
    "subscribe",
    "unsubscribe",
];

impl DefaultAccess {
    pub fn get(&self, i: usize) -> bool {
        [
            self.publish_client_send,
            self.publish_client_receive,
            self.subscribe,
            self.unsubscribe,
        ][i]
    }
    pub fn set(&mut self, i: usize, value: bool) {
        match i {
            0 => self.publish_client_send = value,
            1 => self.publish_client_receive = value,
            2 => self.subscribe = value,
            _ => self.unsubscribe = value,
        }
    }
}

/// The whole dynamic-security state.
#[derive(Debug, Clone, Default)]
pub struct DynSec {
    pub clients: BTreeMap<String, Client>,
    pub groups: BTreeMap<String, Group>,
    pub roles: BTreeMap<String, Role>,
    pub default_access: DefaultAccess,
    pub anonymous_group: Option<String>,
    extra: Map<String, Value>,
}

/// A dynamic-security file that cannot be used: where and why.
#[derive(Debug)]
pub struct DynSecError {
    pub file: Option<PathBuf>,
    /// 1-based; 0 when the error is not at one place in the text.
    pub line: usize,
    pub column: usize,
    pub what: String,
}

impl fmt::Display for DynSecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
            if self.line > 0 {
                write!(f, "{}:{}:", self.line, self.column)?;
            }
            write!(f, " ")?;
        } else if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        write!(f, "{}", self.what)
    }
}

impl std::error::Error for DynSecError {}

fn structure_error(what: String) -> DynSecError {
    DynSecError {
        file: None,
        line: 0,
        column: 0,
        what,
    }
}

/// An object's member by name, ignoring ASCII case as cJSON_GetObjectItem does.
pub(crate) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub(crate) fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    get(obj, key).and_then(Value::as_str)
}

/// cJSON's `valueint`: a number saturated to `int`, fractions cut.
pub(crate) fn as_int(v: &Value) -> Option<i32> {
    if let Some(i) = v.as_i64() {
        return Some(i.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
    }
    if v.as_u64().is_some() {
        return Some(i32::MAX);
    }
    v.as_f64().map(|f| {
        if f.is_nan() {
            0
        } else {
            f.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        }
    })
}

pub(crate) fn get_int(obj: &Map<String, Value>, key: &str) -> Option<i32> {
    get(obj, key).and_then(as_int)
}

/// The members culex does not know, to write back: `known` are compared ignoring case.
fn unknown_members(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !known.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

const CLIENT_KEYS: &[&str] = &[
    "username",
    "clientid",
    "textname",
    "textdescription",
    "disabled",
    "password",
    "salt",
    "iterations",
    "encoded_password",
    "roles",
];
const GROUP_KEYS: &[&str] = &[
    "groupname",
    "textname",
    "textdescription",
    "roles",
    "clients",
];
const ROLE_KEYS: &[&str] = &[
    "rolename",
    "textname",
    "textdescription",
    "acls",
    "allowwildcardsubs",
];
const TOP_KEYS: &[&str] = &[
    "defaultACLAccess",
    "clients",
    "groups",
    "roles",
    "anonymousGroup",
];

/// The ACL list index of an `acltype`, ignoring case as Mosquitto does.
pub fn acl_type_index(name: &str) -> Option<usize> {
    ACL_TYPES.iter().position(|t| t.eq_ignore_ascii_case(name))
}

impl DynSec {
    /// Reads the file at `path`. An empty file is an empty configuration, as in
    /// Mosquitto; a missing or unreadable one is an error (Mosquitto would start with no
    /// clients at all, so that no one could log in or administer it).
    pub fn load(path: &Path) -> Result<DynSec, DynSecError> {
        let text = std::fs::read(path).map_err(|e| DynSecError {
            file: Some(path.to_path_buf()),
            line: 0,
            column: 0,
            what: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "cannot read the dynamic-security file: {e}; create one with \
                     'mosquitto_ctrl dynsec init {} admin-user'",
                    path.display()
                )
            } else {
                format!("cannot read the dynamic-security file: {e}")
            },
        })?;
        DynSec::parse(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses the text of a `dynamic-security.json`.
    pub fn parse(text: &[u8]) -> Result<DynSec, DynSecError> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(DynSec::default());
        }
        let tree: Value = serde_json::from_slice(text).map_err(|e| DynSecError {
            file: None,
            line: e.line(),
            column: e.column(),
            what: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(top) = tree else {
            return Err(structure_error(
                "the file must hold one JSON object ({\"clients\": [...], ...})".into(),
            ));
        };
        let mut ds = DynSec {
            extra: unknown_members(&top, TOP_KEYS),
            ..DynSec::default()
        };
        if let Some(Value::Object(access)) = get(&top, "defaultACLAccess") {
            for (i, name) in DEFAULT_ACCESS_NAMES.iter().enumerate() {
                if let Some(b) = get(access, name).and_then(Value::as_bool) {
                    ds.default_access.set(i, b);
                }
            }
        }
        for (section, load) in [
            (
                "roles",
                DynSec::load_role as fn(&mut DynSec, &Map<String, Value>),
            ),
            ("clients", DynSec::load_client),
            ("groups", DynSec::load_group),
        ] {
            match get(&top, section) {
                None => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        if let Value::Object(obj) = item {
                            load(&mut ds, obj);
                        }
                    }
                }
                Some(_) => return Err(structure_error(format!("\"{section}\" must be an array"))),
            }
        }
        if let Some(name) = get_str(&top, "anonymousGroup") {
            if ds.groups.contains_key(name) {
                ds.anonymous_group = Some(name.to_string());
            }
        }
        Ok(ds)
    }

    fn load_role(&mut self, obj: &Map<String, Value>) {
        let Some(name) = get_str(obj, "rolename") else {
            return;
        };
        if self.roles.contains_key(name) {
            return;
        }
        let mut role = Role::new(name);
        role.textname = get_str(obj, "textname").map(str::to_string);
        role.textdescription = get_str(obj, "textdescription").map(str::to_string);
        if let Some(b) = get(obj, "allowwildcardsubs").and_then(Value::as_bool) {
            role.allow_wildcard_subs = b;
        }
        if let Some(Value::Array(acls)) = get(obj, "acls") {
            role.load_acls(acls);
        }
        role.extra = unknown_members(obj, ROLE_KEYS);
        self.roles.insert(name.to_string(), role);
    }

    fn load_client(&mut self, obj: &Map<String, Value>) {
        let Some(username) = get_str(obj, "username") else {
            return;
        };
        if self.clients.contains_key(username) {
            return;
        }
        let mut client = Client {
            username: username.to_string(),
            disabled: get(obj, "disabled").and_then(Value::as_bool) == Some(true),
            clientid: get_str(obj, "clientid").map(str::to_string),
            textname: get_str(obj, "textname").map(str::to_string),
            textdescription: get_str(obj, "textdescription").map(str::to_string),
            extra: unknown_members(obj, CLIENT_KEYS),
            ..Client::default()
        };
        if let Some(encoded) = get_str(obj, "encoded_password") {
            // 2.1: a client whose encoded password cannot be read cannot log in.
            client.password = Password::parse_encoded(encoded);
        } else {
            let salt = get_str(obj, "salt");
            let hash = get_str(obj, "password");
            let iterations = get_int(obj, "iterations").unwrap_or(-1);
            if let (Some(salt), Some(hash), Ok(Some(iterations))) =
                (salt, hash, u32::try_from(iterations).map(NonZeroU32::new))
            {
                let salt = STANDARD_PAD_INDIFFERENT.decode(salt);
                let hash = STANDARD_PAD_INDIFFERENT
                    .decode(hash)
                    .ok()
                    .and_then(|h| <[u8; HASH_LEN]>::try_from(h).ok());
                match (salt, hash) {
                    (Ok(salt), Some(hash)) if !salt.is_empty() => {
                        client.password = Some(Password {
                            salt,
                            hash,
                            iterations,
                            encoded: false,
                        })
                    }
                    // Mosquitto skips a client whose salt or hash cannot be decoded.
                    _ => return,
                }
            }
        }
        self.load_role_refs(obj, &mut client.roles);
        self.clients.insert(username.to_string(), client);
    }

    /// A client's or group's `roles` list: each `{"rolename", "priority"}` that names a
    /// known role, in priority order (a missing priority is -1, as Mosquitto reads it).
    fn load_role_refs(&self, obj: &Map<String, Value>, into: &mut Vec<Member>) {
        let Some(Value::Array(roles)) = get(obj, "roles") else {
            return;
        };
        for role in roles.iter().filter_map(Value::as_object) {
            if let Some(name) = get_str(role, "rolename") {
                let priority = get_int(role, "priority").unwrap_or(-1);
                if self.roles.contains_key(name) {
                    insert_member(into, name, priority);
                }
            }
        }
    }

    fn load_group(&mut self, obj: &Map<String, Value>) {
        let Some(name) = get_str(obj, "groupname") else {
            return;
        };
        if self.groups.contains_key(name) {
            return;
        }
        let mut group = Group {
            groupname: name.to_string(),
            textname: get_str(obj, "textname").map(str::to_string),
            textdescription: get_str(obj, "textdescription").map(str::to_string),
            extra: unknown_members(obj, GROUP_KEYS),
            ..Group::default()
        };
        self.load_role_refs(obj, &mut group.roles);
        self.groups.insert(name.to_string(), group);
        if let Some(Value::Array(clients)) = get(obj, "clients") {
            for client in clients.iter().filter_map(Value::as_object) {
                if let Some(username) = get_str(client, "username") {
                    let priority = get_int(client, "priority").unwrap_or(-1);
                    self.add_group_client(name, username, priority);
                }
            }
        }
    }

    /// Puts a client in a group (both sides). False if either is unknown or it is
    /// already a member.
    pub fn add_group_client(&mut self, groupname: &str, username: &str, priority: i32) -> bool {
        let (Some(group), Some(client)) = (
            self.groups.get_mut(groupname),
            self.clients.get_mut(username),
        ) else {
            return false;
        };
        if group.clients.contains_key(username) {
            return false;
        }
        group.clients.insert(username.to_string(), priority);
        insert_member(&mut client.groups, groupname, priority);
        true
    }

    /// Takes a client out of a group (both sides).
    pub fn remove_group_client(&mut self, groupname: &str, username: &str) {
        if let Some(group) = self.groups.get_mut(groupname) {
            group.clients.remove(username);
        }
        if let Some(client) = self.clients.get_mut(username) {
            client.groups.retain(|g| g.name != groupname);
        }
    }

    /// The file's text, as Mosquitto writes it (tab-indented), with the members culex
    /// does not know.
    pub fn to_json(&self) -> String {
        let mut top = self.extra.clone();
        let mut access = Map::new();
        for (i, name) in DEFAULT_ACCESS_NAMES.iter().enumerate() {
            access.insert((*name).into(), Value::Bool(self.default_access.get(i)));
        }
        top.insert("defaultACLAccess".into(), Value::Object(access));
        top.insert(
            "clients".into(),
            Value::Array(self.clients.values().map(client_to_file).collect()),
        );
        top.insert(
            "groups".into(),
            Value::Array(self.groups.values().map(group_to_json).collect()),
        );
        if let Some(name) = &self.anonymous_group {
            top.insert("anonymousGroup".into(), Value::String(name.clone()));
        }
        top.insert(
            "roles".into(),
            Value::Array(self.roles.values().map(role_to_json).collect()),
        );
        // Serialising a Value (string keys) cannot fail.
        let mut out = serde_json::to_string_pretty(&Value::Object(top)).unwrap_or_default();
        out.push('\n');
        out
    }

    /// Authentication, as the plugin's basic-auth callback answers it.
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
    ) -> Verdict {
        let (Some(username), Some(password)) = (username, password) else {
            return Verdict::Defer;
        };
        // A zero-length Password is no password in Mosquitto (NULL), so it defers.
        if password.is_empty() {
            return Verdict::Defer;
        }
        let Some(client) = self.clients.get(username) else {
            return Verdict::Defer;
        };
        if client.disabled {
            return Verdict::Deny;
        }
        if client.clientid.as_deref().is_some_and(|id| id != client_id) {
            return Verdict::Deny;
        }
        match &client.password {
            Some(pw) if pw.matches(password) => Verdict::Allow,
            Some(_) => Verdict::Deny,
            None => Verdict::Defer,
        }
    }

    /// The ACL check for `topic` (a topic name for Send/Receive, a filter for
    /// Subscribe/Unsubscribe).
    pub fn check(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        kind: AclKind,
    ) -> Verdict {
        let who = Who {
            client_id,
            username,
        };
        let found = match username {
            Some(name) => {
                let Some(client) = self.clients.get(name) else {
                    return Verdict::Defer;
                };
                self.check_roles(&client.roles, &who, topic, kind)
                    .or_else(|| {
                        client.groups.iter().find_map(|g| {
                            let group = self.groups.get(&g.name)?;
                            self.check_roles(&group.roles, &who, topic, kind)
                        })
                    })
            }
            None => self
                .anonymous_group
                .as_ref()
                .and_then(|g| self.groups.get(g))
                .and_then(|group| self.check_roles(&group.roles, &who, topic, kind)),
        };
        match found {
            Some(true) => Verdict::Allow,
            Some(false) => Verdict::Deny,
            None => {
                let index = match kind {
                    AclKind::Send => 0,
                    AclKind::Receive => 1,
                    AclKind::Subscribe => 2,
                    AclKind::Unsubscribe => 3,
                };
                if self.default_access.get(index) && !topic.starts_with("$CONTROL") {
                    Verdict::Allow
                } else {
                    Verdict::Defer
                }
            }
        }
    }

    /// The first matching ACL of these roles, in order: `Some(allow)`.
    fn check_roles(
        &self,
        roles: &[Member],
        who: &Who<'_>,
        topic: &str,
        kind: AclKind,
    ) -> Option<bool> {
        let has_wildcard = topic.contains(['+', '#']);
        for member in roles {
            let Some(role) = self.roles.get(&member.name) else {
                continue;
            };
            let (literal, pattern) = match kind {
                AclKind::Send | AclKind::Receive => {
                    let list = &role.acls[if kind == AclKind::Send { 0 } else { 1 }];
                    if let Some(acl) = list.iter().find(|a| publish_matches(&a.topic, topic, who)) {
                        return Some(acl.allow);
                    }
                    continue;
                }
                AclKind::Subscribe => {
                    if !role.allow_wildcard_subs && has_wildcard {
                        return Some(false);
                    }
                    (&role.acls[2], &role.acls[3])
                }
                AclKind::Unsubscribe => (&role.acls[4], &role.acls[5]),
            };
            if let Some(acl) = literal.iter().find(|a| a.topic == topic) {
                return Some(acl.allow);
            }
            if let Some(acl) = pattern.iter().find(|a| filter_within(&a.topic, topic, who)) {
                return Some(acl.allow);
            }
        }
        None
    }

    /// The usernames of a role's clients and of the clients of the groups that have it,
    /// and whether the anonymous group has it: who is kicked when it changes.
    pub fn role_users(&self, rolename: &str) -> (Vec<String>, bool) {
        let mut users: Vec<String> = self
            .clients
            .values()
            .filter(|c| c.roles.iter().any(|r| r.name == rolename))
            .map(|c| c.username.clone())
            .collect();
        let mut anonymous = false;
        for group in self.groups.values() {
            if group.roles.iter().any(|r| r.name == rolename) {
                users.extend(group.clients.keys().cloned());
                anonymous |= self.anonymous_group.as_deref() == Some(&group.groupname);
            }
        }
        (users, anonymous)
    }
}

impl Role {
    fn load_acls(&mut self, acls: &[Value]) {
        // Mosquitto reads the array once per type, so within a type the file's order
        // decides ties of priority.
        for (kind, name) in ACL_TYPES.iter().enumerate() {
            for acl in acls.iter().filter_map(Value::as_object) {
                let (Some(acltype), Some(topic)) = (get_str(acl, "acltype"), get_str(acl, "topic"))
                else {
                    continue;
                };
                if !acltype.eq_ignore_ascii_case(name) {
                    continue;
                }
                let priority = get_int(acl, "priority").unwrap_or(0);
                let allow = get(acl, "allow").and_then(Value::as_bool).unwrap_or(false);
                self.add_acl(
                    kind,
                    AclEntry {
                        topic: topic.to_string(),
                        priority,
                        allow,
                    },
                );
            }
        }
    }

    /// Reads a command's or file's `acls` array into fresh lists.
    pub fn parse_acls(acls: &[Value]) -> [Vec<AclEntry>; 6] {
        let mut role = Role::new("");
        role.load_acls(acls);
        role.acls
    }
}

/// Members of a role or group list as JSON: `priority` only when one was given.
pub(crate) fn members_to_json(list: &[Member], key: &str) -> Value {
    Value::Array(
        list.iter()
            .map(|m| {
                let mut obj = Map::new();
                obj.insert(key.into(), Value::String(m.name.clone()));
                if m.priority != -1 {
                    obj.insert("priority".into(), Value::from(m.priority));
                }
                Value::Object(obj)
            })
            .collect(),
    )
}

fn put_opt(obj: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        obj.insert(key.into(), Value::String(v.clone()));
    }
}

/// A client as the file holds it.
fn client_to_file(c: &Client) -> Value {
    let mut obj = c.extra.clone();
    obj.insert("username".into(), Value::String(c.username.clone()));
    put_opt(&mut obj, "clientid", &c.clientid);
    put_opt(&mut obj, "textname", &c.textname);
    put_opt(&mut obj, "textdescription", &c.textdescription);
    if c.disabled {
        obj.insert("disabled".into(), Value::Bool(true));
    }
    obj.insert("roles".into(), members_to_json(&c.roles, "rolename"));
    if let Some(pw) = &c.password {
        if pw.encoded {
            let text = format!(
                "$7${}${}${}",
                pw.iterations,
                STANDARD.encode(&pw.salt),
                STANDARD.encode(pw.hash)
            );
            obj.insert("encoded_password".into(), Value::String(text));
        } else {
            obj.insert("password".into(), Value::String(STANDARD.encode(pw.hash)));
            obj.insert("salt".into(), Value::String(STANDARD.encode(&pw.salt)));
            obj.insert("iterations".into(), Value::from(pw.iterations.get()));
        }
    }
    Value::Object(obj)
}

/// A client as getClient and listClients (verbose) show it.
pub(crate) fn client_to_json(c: &Client) -> Value {
    let mut obj = Map::new();
    obj.insert("username".into(), Value::String(c.username.clone()));
    put_opt(&mut obj, "clientid", &c.clientid);
    put_opt(&mut obj, "textname", &c.textname);
    put_opt(&mut obj, "textdescription", &c.textdescription);
    if c.disabled {
        obj.insert("disabled".into(), Value::Bool(true));
    }
    obj.insert("roles".into(), members_to_json(&c.roles, "rolename"));
    obj.insert("groups".into(), members_to_json(&c.groups, "groupname"));
    Value::Object(obj)
}

/// A group as the file, getGroup and listGroups (verbose) show it.
pub(crate) fn group_to_json(g: &Group) -> Value {
    let mut obj = g.extra.clone();
    obj.insert("groupname".into(), Value::String(g.groupname.clone()));
    put_opt(&mut obj, "textname", &g.textname);
    put_opt(&mut obj, "textdescription", &g.textdescription);
    obj.insert("roles".into(), members_to_json(&g.roles, "rolename"));
    let clients = g
        .clients
        .iter()
        .map(|(name, priority)| {
            let mut c = Map::new();
            c.insert("username".into(), Value::String(name.clone()));
            if *priority != -1 {
                c.insert("priority".into(), Value::from(*priority));
            }
            Value::Object(c)
        })
        .collect();
    obj.insert("clients".into(), Value::Array(clients));
    Value::Object(obj)
}

/// A role as the file, getRole and listRoles (verbose) show it.
pub(crate) fn role_to_json(r: &Role) -> Value {
    let mut obj = r.extra.clone();
    obj.insert("rolename".into(), Value::String(r.rolename.clone()));
    put_opt(&mut obj, "textname", &r.textname);
    put_opt(&mut obj, "textdescription", &r.textdescription);
    if !r.allow_wildcard_subs {
        obj.insert("allowwildcardsubs".into(), Value::Bool(false));
    }
    let mut acls = Vec::new();
    for (kind, list) in r.acls.iter().enumerate() {
        for acl in list {
            let mut a = Map::new();
            a.insert("acltype".into(), Value::String(ACL_TYPES[kind].into()));
            a.insert("topic".into(), Value::String(acl.topic.clone()));
            a.insert("priority".into(), Value::from(acl.priority));
            a.insert("allow".into(), Value::Bool(acl.allow));
            acls.push(Value::Object(a));
        }
    }
    obj.insert("acls".into(), Value::Array(acls));
    Value::Object(obj)
}

/// The client an ACL's `%c` and `%u` levels stand for.
struct Who<'a> {
    client_id: &'a str,
    username: Option<&'a str>,
}

impl Who<'_> {
    /// What an ACL level means for this client: itself, or the client id / username for
    /// `%c` / `%u`. `None`: the level can match nothing (no username, or an id that is
    /// empty or holds `+`, `#` or `/`).
    fn level<'l>(&'l self, level: &'l str) -> Option<&'l str> {
        let id = match level {
            "%c" => self.client_id,
            "%u" => self.username?,
            _ => return Some(level),
        };
        (!id.is_empty() && !id.contains(['+', '#', '/'])).then_some(id)
    }
}

/// Mosquitto's topic-against-filter match (`mosquitto_topic_matches_sub`, with 2.1's
/// `%c`/`%u`): `+` one level (an empty one too), `#` the rest including the parent level,
/// `$` topics only by filters starting with `$`.
fn publish_matches(acl: &str, topic: &str, who: &Who<'_>) -> bool {
    if acl.starts_with('$') != topic.starts_with('$') {
        return false;
    }
    let mut filter = acl.split('/');
    let mut levels = topic.split('/');
    loop {
        match (filter.next(), levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(want), Some(level)) => {
                if who.level(want) != Some(level) {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Mosquitto's `sub_acl_check`: whether every topic the subscription `sub` can match is
/// within the ACL filter `acl`. `+` in the ACL covers one level (also `+` in `sub`), a
/// trailing `#` covers what follows; `#` in `sub` needs a `#` in the ACL.
fn filter_within(acl: &str, sub: &str, who: &Who<'_>) -> bool {
    if acl == "#" {
        return true;
    }
    let (acl_body, acl_hash) = strip_hash(acl);
    let (sub_body, sub_hash) = strip_hash(sub);
    if sub_hash && !acl_hash {
        return false;
    }
    let acl_levels: Vec<&str> = acl_body.split('/').collect();
    let sub_levels: Vec<&str> = sub_body.split('/').collect();
    if acl_levels.len() > sub_levels.len() {
        return false;
    }
    if sub_levels.len() > acl_levels.len() && !acl_hash {
        return false;
    }
    sub_levels
        .iter()
        .enumerate()
        .all(|(i, level)| match acl_levels.get(i) {
            Some(&"+") => true,
            Some(want) => who.level(want) == Some(level),
            None => acl_hash,
        })
}

/// `x/#` -> (`x`, true), `#` -> (``, true), otherwise unchanged.
fn strip_hash(s: &str) -> (&str, bool) {
    if s == "#" {
        ("", true)
    } else if let Some(body) = s.strip_suffix("/#") {
        (body, true)
    } else {
        (s, false)
    }
}

/// Mosquitto's `mosquitto_validate_utf8`: no U+0000, no control characters, no
/// non-characters (what a JSON string could still carry once decoded).
pub fn valid_utf8(s: &str) -> bool {
    s.len() <= 65_535
        && !s.chars().any(|c| {
            let c = u32::from(c);
            c <= 0x1f
                || (0x7f..=0x9f).contains(&c)
                || (0xfdd0..=0xfdef).contains(&c)
                || c & 0xfffe == 0xfffe
        })
}

/// Mosquitto's `mosquitto_sub_topic_check`: a valid topic filter (`+` and `#` alone in
/// their level, `#` last).
pub fn valid_filter(filter: &str) -> bool {
    if filter.len() > 65_535 {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains(['+', '#']) && level.len() > 1 {
            return false;
        }
        if level == "#" && levels.peek().is_some() {
            return false;
        }
    }
    true
}

/// Writes `text` to `path` so that a crash leaves the old file or the new one, never a
/// part: a temporary file beside it, fsync, rename over, fsync of the directory. The
/// file is created readable by its owner only (it holds password hashes), as Mosquitto's.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
