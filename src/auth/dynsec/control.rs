//! The `$CONTROL/dynamic-security/v1` commands: Mosquitto's JSON requests, responses
//! and error texts, command for command (`mosquitto_ctrl dynsec` sends these; so does
//! Cedalo's Management Center).
//!
//! A request is `{"commands": [{"command": NAME, ...}, ...]}`; the answer, published on
//! `$CONTROL/dynamic-security/v1/response`, is `{"responses": [...]}` with one object per
//! command: `{"command": NAME}` on success (with `data` for get and list commands),
//! `{"command": NAME, "error": TEXT}` otherwise, and the command's `correlationData`.
//! Command names are matched ignoring case, as Mosquitto does.
//!
//! Besides the response, a command reports whether the state changed (the file is then
//! written) and which clients Mosquitto would disconnect ([`Kick`]): it disconnects the
//! clients a change concerns so they log in again under the new rules.

use super::{
    acl_type_index, as_int, client_to_json, get, get_int, get_str, group_to_json, role_to_json,
    valid_filter, valid_utf8, AclEntry, Client, DynSec, Group, Password, Role, ACL_TYPES,
    DEFAULT_ACCESS_NAMES, SALT_LEN,
};
use serde_json::{Map, Value};

/// The clients a change concerns, to be disconnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kick {
    /// Every client logged in with this username.
    User(String),
    /// Every client without a username (the anonymous group changed).
    Anonymous,
}

/// What handling one request gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The payload to publish on the response topic.
    pub response: Vec<u8>,
    /// The state changed: write the file.
    pub changed: bool,
    /// In order: who to disconnect.
    pub kicks: Vec<Kick>,
}

/// The topic the commands are published to.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// The topic of the responses.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";

type Obj = Map<String, Value>;

/// One request being answered.
struct Request<'a> {
    ds: &'a mut DynSec,
    salt: &'a mut dyn FnMut() -> [u8; SALT_LEN],
    admin: &'a str,
    responses: Vec<Value>,
    changed: bool,
    kicks: Vec<Kick>,
}

/// A command's reply with an error text (or success when `error` is `None`).
fn reply(command: &str, error: Option<&str>, correlation: Option<&str>) -> Value {
    let mut obj = Map::new();
    obj.insert("command".into(), Value::String(command.into()));
    if let Some(e) = error {
        obj.insert("error".into(), Value::String(e.into()));
    }
    if let Some(c) = correlation {
        obj.insert("correlationData".into(), Value::String(c.into()));
    }
    Value::Object(obj)
}

fn data_reply(command: &str, data: Obj, correlation: Option<&str>) -> Value {
    let mut obj = Map::new();
    obj.insert("command".into(), Value::String(command.into()));
    obj.insert("data".into(), Value::Object(data));
    if let Some(c) = correlation {
        obj.insert("correlationData".into(), Value::String(c.into()));
    }
    Value::Object(obj)
}

/// A command's fields, read the way Mosquitto's `json_get_*` helpers read them.
struct Cmd<'a> {
    name: &'static str,
    obj: &'a Obj,
}

/// Why a command stops: its error text.
type Fail = &'static str;

impl<'a> Cmd<'a> {
    /// A required string: `missing` when absent or not a string.
    fn required(&self, key: &str, missing: Fail) -> Result<&'a str, Fail> {
        get_str(self.obj, key).ok_or(missing)
    }

    /// A required name that must also be valid UTF-8 (`invalid` otherwise).
    fn name(&self, key: &str, missing: Fail, invalid: Fail) -> Result<&'a str, Fail> {
        let s = self.required(key, missing)?;
        if valid_utf8(s) {
            Ok(s)
        } else {
            Err(invalid)
        }
    }

    fn username(&self) -> Result<&'a str, Fail> {
        self.name(
            "username",
            "Invalid/missing username",
            "Username not valid UTF-8",
        )
    }

    fn groupname(&self) -> Result<&'a str, Fail> {
        self.name(
            "groupname",
            "Invalid/missing groupname",
            "Group name not valid UTF-8",
        )
    }

    fn rolename(&self) -> Result<&'a str, Fail> {
        self.name(
            "rolename",
            "Invalid/missing rolename",
            "Role name not valid UTF-8",
        )
    }

    /// An optional string: `Ok(None)` when absent, `bad` when present but not a string.
    fn optional(&self, key: &str, bad: Fail) -> Result<Option<&'a str>, Fail> {
        match get(self.obj, key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad),
        }
    }

    /// A string that is used only when present and a string (modify commands).
    fn if_string(&self, key: &str) -> Option<&'a str> {
        get_str(self.obj, key)
    }

    fn int_or(&self, key: &str, default: i32) -> i32 {
        match get(self.obj, key) {
            Some(v) if v.is_number() => as_int(v).unwrap_or(default),
            _ => default,
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> bool {
        get(self.obj, key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }
}

/// A `roles` list in a command: `Ok(None)` when absent.
fn roles_from_command(
    ds: &DynSec,
    cmd: &Cmd<'_>,
    invalid: Fail,
) -> Result<Option<Vec<super::Member>>, Fail> {
    let Some(roles) = get(cmd.obj, "roles") else {
        return Ok(None);
    };
    let Value::Array(roles) = roles else {
        return Err(invalid);
    };
    let mut list = Vec::new();
    for role in roles {
        let Some(name) = role.as_object().and_then(|r| get_str(r, "rolename")) else {
            return Err(invalid);
        };
        let priority = role
            .as_object()
            .and_then(|r| get_int(r, "priority"))
            .unwrap_or(-1);
        if !ds.roles.contains_key(name) {
            return Err("Role not found");
        }
        super::insert_member(&mut list, name, priority);
    }
    Ok(Some(list))
}

const ROLES_INVALID: Fail = "'roles' not an array or missing/invalid rolename";

impl DynSec {
    /// Answers one request published to [`CONTROL_TOPIC`] by the client `admin`
    /// (`client id/username`, for the log). `salt` gives the salt of a new password.
    pub fn handle_control(
        &mut self,
        payload: &[u8],
        admin: &str,
        salt: &mut dyn FnMut() -> [u8; SALT_LEN],
    ) -> Outcome {
        let mut req = Request {
            ds: self,
            salt,
            admin,
            responses: Vec::new(),
            changed: false,
            kicks: Vec::new(),
        };
        match serde_json::from_slice::<Value>(payload) {
            Err(_) => req.responses.push(reply(
                "Unknown command",
                Some("Payload not valid JSON"),
                None,
            )),
            Ok(tree) => match tree.as_object().and_then(|t| get(t, "commands")) {
                Some(Value::Array(commands)) => req.run(commands),
                _ => req.responses.push(reply(
                    "Unknown command",
                    Some("Invalid/missing commands"),
                    None,
                )),
            },
        }
        let mut top = Map::new();
        top.insert("responses".into(), Value::Array(req.responses));
        Outcome {
            response: serde_json::to_vec(&Value::Object(top)).unwrap_or_default(),
            changed: req.changed,
            kicks: req.kicks,
        }
    }
}

impl Request<'_> {
    fn run(&mut self, commands: &[Value]) {
        // Mosquitto keeps the previous command's correlationData for the replies to an
        // entry that is not a command.
        let mut correlation: Option<String> = None;
        for item in commands {
            let Value::Object(obj) = item else {
                let r = reply(
                    "Unknown command",
                    Some("Command not an object"),
                    correlation.as_deref(),
                );
                self.responses.push(r);
                continue;
            };
            let Some(command) = get_str(obj, "command") else {
                let r = reply(
                    "Unknown command",
                    Some("Missing command"),
                    correlation.as_deref(),
                );
                self.responses.push(r);
                continue;
            };
            correlation = match get(obj, "correlationData") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    // Mosquitto stops at this command.
                    let r = reply(command, Some("Invalid correlationData data type."), None);
                    self.responses.push(r);
                    return;
                }
            };
            let corr = correlation.as_deref();
            match COMMANDS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(command))
            {
                Some(&(name, handler)) => {
                    let cmd = Cmd { name, obj };
                    let response = match handler(self, &cmd) {
                        Ok(None) => reply(name, None, corr),
                        Ok(Some(data)) => data_reply(name, data, corr),
                        Err(error) => reply(name, Some(error), corr),
                    };
                    self.responses.push(response);
                }
                None => self
                    .responses
                    .push(reply(command, Some("Unknown command"), corr)),
            }
        }
    }

    fn changed(&mut self, cmd: &Cmd<'_>, what: std::fmt::Arguments<'_>) {
        self.changed = true;
        log::info!("dynsec: {} | {} | {}", self.admin, cmd.name, what);
    }

    fn kick_user(&mut self, username: &str) {
        self.kicks.push(Kick::User(username.to_string()));
    }

    /// Mosquitto's `group__kick_all`: the anonymous clients too if it is the anonymous
    /// group.
    fn kick_group(&mut self, groupname: &str) {
        if self.ds.anonymous_group.as_deref() == Some(groupname) {
            self.kicks.push(Kick::Anonymous);
        }
        if let Some(group) = self.ds.groups.get(groupname) {
            let users: Vec<String> = group.clients.keys().cloned().collect();
            for user in users {
                self.kick_user(&user);
            }
        }
    }

    fn kick_role(&mut self, rolename: &str) {
        let (users, anonymous) = self.ds.role_users(rolename);
        for user in users {
            self.kick_user(&user);
        }
        if anonymous {
            self.kicks.push(Kick::Anonymous);
        }
    }

    fn new_password(&mut self, password: &str) -> Password {
        let salt = (self.salt)();
        Password::new(password, &salt)
    }
}

type Handler = fn(&mut Request<'_>, &Cmd<'_>) -> Result<Option<Obj>, Fail>;

const COMMANDS: &[(&str, Handler)] = &[
    ("setDefaultACLAccess", set_default_acl_access),
    ("getDefaultACLAccess", get_default_acl_access),
    ("createClient", create_client),
    ("deleteClient", delete_client),
    ("getClient", get_client),
    ("listClients", list_clients),
    ("modifyClient", modify_client),
    ("setClientPassword", set_client_password),
    ("setClientId", set_client_id),
    ("addClientRole", add_client_role),
    ("removeClientRole", remove_client_role),
    ("enableClient", enable_client),
    ("disableClient", disable_client),
    ("addGroupClient", add_group_client),
    ("createGroup", create_group),
    ("deleteGroup", delete_group),
    ("getGroup", get_group),
    ("listGroups", list_groups),
    ("modifyGroup", modify_group),
    ("removeGroupClient", remove_group_client),
    ("addGroupRole", add_group_role),
    ("removeGroupRole", remove_group_role),
    ("setAnonymousGroup", set_anonymous_group),
    ("getAnonymousGroup", get_anonymous_group),
    ("createRole", create_role),
    ("getRole", get_role),
    ("listRoles", list_roles),
    ("modifyRole", modify_role),
    ("deleteRole", delete_role),
    ("addRoleACL", add_role_acl),
    ("removeRoleACL", remove_role_acl),
];

// ---- default ACL access ----

fn set_default_acl_access(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let Some(Value::Array(acls)) = get(cmd.obj, "acls") else {
        return Err("Missing/invalid actions array");
    };
    for acl in acls.iter().filter_map(Value::as_object) {
        let (Some(acltype), Some(allow)) = (
            get_str(acl, "acltype"),
            get(acl, "allow").and_then(Value::as_bool),
        ) else {
            continue;
        };
        if let Some(i) = DEFAULT_ACCESS_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(acltype))
        {
            req.ds.default_access.set(i, allow);
        }
        req.changed(cmd, format_args!("acltype={acltype} | allow={allow}"));
    }
    // Mosquitto saves even when nothing was set.
    req.changed = true;
    Ok(None)
}

fn get_default_acl_access(req: &mut Request<'_>, _cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let acls = DEFAULT_ACCESS_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut a = Map::new();
            a.insert("acltype".into(), Value::String((*name).into()));
            a.insert("allow".into(), Value::Bool(req.ds.default_access.get(i)));
            Value::Object(a)
        })
        .collect();
    let mut data = Map::new();
    data.insert("acls".into(), Value::Array(acls));
    Ok(Some(data))
}

// ---- clients ----

fn create_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let password = cmd.optional("password", "Invalid/missing password")?;
    let clientid = cmd.optional("clientid", "Invalid/missing client id")?;
    if clientid.is_some_and(|c| !valid_utf8(c)) {
        return Err("Client ID not valid UTF-8");
    }
    let textname = cmd.optional("textname", "Invalid/missing textname")?;
    let textdescription = cmd.optional("textdescription", "Invalid/missing textdescription")?;
    if req.ds.clients.contains_key(username) {
        return Err("Client already exists");
    }
    let roles = roles_from_command(req.ds, cmd, ROLES_INVALID)?.unwrap_or_default();
    // The groups must all exist: a missing one undoes the whole command.
    let mut groups = Vec::new();
    if let Some(Value::Array(list)) = get(cmd.obj, "groups") {
        for group in list.iter().filter_map(Value::as_object) {
            if let Some(name) = get_str(group, "groupname") {
                if !req.ds.groups.contains_key(name) {
                    return Err("Group not found");
                }
                groups.push((name, get_int(group, "priority").unwrap_or(-1)));
            }
        }
    }
    let password = password.map(|p| req.new_password(p));
    let client = Client {
        username: username.to_string(),
        clientid: clientid.filter(|c| !c.is_empty()).map(str::to_string),
        textname: textname.map(str::to_string),
        textdescription: textdescription.map(str::to_string),
        password,
        roles,
        ..Client::default()
    };
    req.ds.clients.insert(username.to_string(), client);
    for (group, priority) in groups {
        req.ds.add_group_client(group, username, priority);
    }
    req.changed(cmd, format_args!("username={username}"));
    Ok(None)
}

fn delete_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let Some(client) = req.ds.clients.remove(username) else {
        return Err("Client not found");
    };
    for group in &client.groups {
        if let Some(g) = req.ds.groups.get_mut(&group.name) {
            g.clients.remove(username);
        }
    }
    req.changed(cmd, format_args!("username={username}"));
    req.kick_user(username);
    Ok(None)
}

fn client_mut<'d>(ds: &'d mut DynSec, username: &str) -> Result<&'d mut Client, Fail> {
    ds.clients.get_mut(username).ok_or("Client not found")
}

fn disable_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    client_mut(req.ds, username)?.disabled = true;
    req.kick_user(username);
    req.changed(cmd, format_args!("username={username}"));
    Ok(None)
}

fn enable_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    client_mut(req.ds, username)?.disabled = false;
    req.changed(cmd, format_args!("username={username}"));
    Ok(None)
}

fn set_client_id(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let clientid = cmd.optional("clientid", "Invalid/missing client ID")?;
    if clientid.is_some_and(|c| !valid_utf8(c)) {
        return Err("Client ID not valid UTF-8");
    }
    client_mut(req.ds, username)?.clientid = clientid.filter(|c| !c.is_empty()).map(str::to_string);
    req.changed(
        cmd,
        format_args!("username={username} | clientid={clientid:?}"),
    );
    req.kick_user(username);
    Ok(None)
}

fn set_client_password(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let password = cmd.required("password", "Invalid/missing password")?;
    if password.is_empty() {
        return Err("Empty password is not allowed");
    }
    client_mut(req.ds, username)?;
    let password = req.new_password(password);
    client_mut(req.ds, username)?.password = Some(password);
    req.changed(cmd, format_args!("username={username} | password=******"));
    req.kick_user(username);
    Ok(None)
}

fn modify_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    client_mut(req.ds, username)?;
    let clientid = cmd.if_string("clientid");
    let password = cmd.if_string("password").filter(|p| !p.is_empty());
    let textname = cmd.if_string("textname");
    let textdescription = cmd.if_string("textdescription");
    let roles = roles_from_command(req.ds, cmd, ROLES_INVALID)?;
    if let Some(Value::Array(groups)) = get(cmd.obj, "groups") {
        let mut wanted = Vec::new();
        for group in groups.iter().filter_map(Value::as_object) {
            let Some(name) = get_str(group, "groupname") else {
                return Err("'groups' contains an object with an invalid 'groupname'");
            };
            if !req.ds.groups.contains_key(name) {
                return Err("'groups' contains an object with a 'groupname' that does not exist");
            }
            wanted.push((name, get_int(group, "priority").unwrap_or(-1)));
        }
        let current: Vec<String> = req.ds.clients[username]
            .groups
            .iter()
            .map(|g| g.name.clone())
            .collect();
        for group in current {
            req.ds.remove_group_client(&group, username);
        }
        for (group, priority) in wanted {
            req.ds.add_group_client(group, username, priority);
        }
    }
    let password = password.map(|p| req.new_password(p));
    let client = client_mut(req.ds, username)?;
    if let Some(pw) = password {
        client.password = Some(pw);
    }
    if let Some(id) = clientid {
        client.clientid = (!id.is_empty()).then(|| id.to_string());
    }
    if let Some(t) = textname {
        client.textname = Some(t.to_string());
    }
    if let Some(t) = textdescription {
        client.textdescription = Some(t.to_string());
    }
    if let Some(roles) = roles {
        client.roles = roles;
    }
    req.changed(cmd, format_args!("username={username}"));
    req.kick_user(username);
    Ok(None)
}

fn get_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let client = req.ds.clients.get(username).ok_or("Client not found")?;
    let mut data = Map::new();
    data.insert("client".into(), client_to_json(client));
    Ok(Some(data))
}

/// listClients, listGroups, listRoles: `offset` and `count` as Mosquitto reads them (a
/// count of 0 still gives one entry).
fn page<T>(items: impl Iterator<Item = T>, cmd: &Cmd<'_>) -> Vec<T> {
    let mut count = cmd.int_or("count", -1);
    let offset = cmd.int_or("offset", 0);
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        if i64::try_from(i).unwrap_or(i64::MAX) >= i64::from(offset) {
            out.push(item);
            if count >= 0 {
                count -= 1;
                if count <= 0 {
                    break;
                }
            }
        }
    }
    out
}

fn list_data(key: &str, total: usize, items: Vec<Value>) -> Obj {
    let mut data = Map::new();
    data.insert("totalCount".into(), Value::from(total));
    data.insert(key.into(), Value::Array(items));
    data
}

fn list_clients(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let verbose = cmd.bool_or("verbose", false);
    let items = page(req.ds.clients.values(), cmd)
        .into_iter()
        .map(|c| {
            if verbose {
                client_to_json(c)
            } else {
                Value::String(c.username.clone())
            }
        })
        .collect();
    Ok(Some(list_data("clients", req.ds.clients.len(), items)))
}

fn add_client_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let rolename = cmd.rolename()?;
    let priority = cmd.int_or("priority", -1);
    client_mut(req.ds, username)?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role not found");
    }
    let client = client_mut(req.ds, username)?;
    if !super::insert_member(&mut client.roles, rolename, priority) {
        // Mosquitto 2.0's answer to a role the client already has.
        return Err("Internal error");
    }
    req.changed(
        cmd,
        format_args!("username={username} | rolename={rolename} | priority={priority}"),
    );
    req.kick_user(username);
    Ok(None)
}

fn remove_client_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let rolename = cmd.rolename()?;
    client_mut(req.ds, username)?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role not found");
    }
    client_mut(req.ds, username)?
        .roles
        .retain(|r| r.name != rolename);
    req.changed(
        cmd,
        format_args!("username={username} | rolename={rolename}"),
    );
    req.kick_user(username);
    Ok(None)
}

// ---- groups ----

fn create_group(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    let textname = cmd.optional("textname", "Invalid/missing textname")?;
    let textdescription = cmd.optional("textdescription", "Invalid/missing textdescription")?;
    if req.ds.groups.contains_key(groupname) {
        return Err("Group already exists");
    }
    let roles = match roles_from_command(req.ds, cmd, "Internal error") {
        Ok(roles) => roles.unwrap_or_default(),
        Err(e) => return Err(e),
    };
    let group = Group {
        groupname: groupname.to_string(),
        textname: textname.map(str::to_string),
        textdescription: textdescription.map(str::to_string),
        roles,
        ..Group::default()
    };
    req.ds.groups.insert(groupname.to_string(), group);
    req.changed(cmd, format_args!("groupname={groupname}"));
    Ok(None)
}

fn delete_group(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    if !req.ds.groups.contains_key(groupname) {
        return Err("Group not found");
    }
    if req.ds.anonymous_group.as_deref() == Some(groupname) {
        return Err("Deleting the anonymous group is forbidden");
    }
    req.kick_group(groupname);
    let members: Vec<String> = req.ds.groups[groupname].clients.keys().cloned().collect();
    for user in members {
        req.ds.remove_group_client(groupname, &user);
    }
    req.ds.groups.remove(groupname);
    req.changed(cmd, format_args!("groupname={groupname}"));
    Ok(None)
}

fn add_group_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let groupname = cmd.groupname()?;
    let priority = cmd.int_or("priority", -1);
    // Mosquitto disconnects the client whatever the answer.
    req.kick_user(username);
    if !req.ds.clients.contains_key(username) {
        return Err("Client not found");
    }
    if !req.ds.groups.contains_key(groupname) {
        return Err("Group not found");
    }
    if !req.ds.add_group_client(groupname, username, priority) {
        return Err("Client is already in this group");
    }
    req.changed(
        cmd,
        format_args!("username={username} | groupname={groupname} | priority={priority}"),
    );
    Ok(None)
}

fn remove_group_client(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let username = cmd.username()?;
    let groupname = cmd.groupname()?;
    req.kick_user(username);
    if !req.ds.clients.contains_key(username) {
        return Err("Client not found");
    }
    if !req.ds.groups.contains_key(groupname) {
        return Err("Group not found");
    }
    req.ds.remove_group_client(groupname, username);
    req.changed(
        cmd,
        format_args!("username={username} | groupname={groupname}"),
    );
    Ok(None)
}

fn group_mut<'d>(ds: &'d mut DynSec, groupname: &str) -> Result<&'d mut Group, Fail> {
    ds.groups.get_mut(groupname).ok_or("Group not found")
}

fn add_group_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    let rolename = cmd.rolename()?;
    let priority = cmd.int_or("priority", -1);
    group_mut(req.ds, groupname)?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role not found");
    }
    if !super::insert_member(&mut group_mut(req.ds, groupname)?.roles, rolename, priority) {
        return Err("Group is already in this role");
    }
    req.changed(
        cmd,
        format_args!("groupname={groupname} | rolename={rolename} | priority={priority}"),
    );
    req.kick_group(groupname);
    Ok(None)
}

fn remove_group_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    let rolename = cmd.rolename()?;
    group_mut(req.ds, groupname)?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role not found");
    }
    group_mut(req.ds, groupname)?
        .roles
        .retain(|r| r.name != rolename);
    req.changed(
        cmd,
        format_args!("groupname={groupname} | rolename={rolename}"),
    );
    req.kick_group(groupname);
    Ok(None)
}

fn get_group(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    let group = req.ds.groups.get(groupname).ok_or("Group not found")?;
    let mut data = Map::new();
    data.insert("group".into(), group_to_json(group));
    Ok(Some(data))
}

fn list_groups(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let verbose = cmd.bool_or("verbose", false);
    let items = page(req.ds.groups.values(), cmd)
        .into_iter()
        .map(|g| {
            if verbose {
                group_to_json(g)
            } else {
                Value::String(g.groupname.clone())
            }
        })
        .collect();
    Ok(Some(list_data("groups", req.ds.groups.len(), items)))
}

fn modify_group(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    group_mut(req.ds, groupname)?;
    let textname = cmd.if_string("textname");
    let textdescription = cmd.if_string("textdescription");
    let roles = roles_from_command(req.ds, cmd, ROLES_INVALID)?;
    if let Some(Value::Array(clients)) = get(cmd.obj, "clients") {
        let mut wanted = Vec::new();
        for client in clients.iter().filter_map(Value::as_object) {
            let Some(name) = get_str(client, "username") else {
                return Err("'clients' contains an object with an invalid 'username'");
            };
            if !req.ds.clients.contains_key(name) {
                return Err("'clients' contains an object with a 'username' that does not exist");
            }
            wanted.push((name, get_int(client, "priority").unwrap_or(-1)));
        }
        // Those in the group now are disconnected, and (below) those in it after.
        req.kick_group(groupname);
        let members: Vec<String> = req.ds.groups[groupname].clients.keys().cloned().collect();
        for user in members {
            req.ds.remove_group_client(groupname, &user);
        }
        for (user, priority) in wanted {
            req.ds.add_group_client(groupname, user, priority);
        }
    }
    let group = group_mut(req.ds, groupname)?;
    if let Some(t) = textname {
        group.textname = Some(t.to_string());
    }
    if let Some(t) = textdescription {
        group.textdescription = Some(t.to_string());
    }
    if let Some(roles) = roles {
        group.roles = roles;
    }
    req.changed(cmd, format_args!("groupname={groupname}"));
    req.kick_group(groupname);
    Ok(None)
}

fn set_anonymous_group(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let groupname = cmd.groupname()?;
    group_mut(req.ds, groupname)?;
    req.ds.anonymous_group = Some(groupname.to_string());
    req.changed(cmd, format_args!("groupname={groupname}"));
    req.kicks.push(Kick::Anonymous);
    Ok(None)
}

fn get_anonymous_group(req: &mut Request<'_>, _cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let mut group = Map::new();
    let name = req.ds.anonymous_group.clone().unwrap_or_default();
    group.insert("groupname".into(), Value::String(name));
    let mut data = Map::new();
    data.insert("group".into(), Value::Object(group));
    Ok(Some(data))
}

// ---- roles ----

fn create_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let rolename = cmd.rolename()?;
    let textname = cmd.optional("textname", "Invalid/missing textname")?;
    let textdescription = cmd.optional("textdescription", "Invalid/missing textdescription")?;
    let allow_wildcard_subs = match get(cmd.obj, "allowwildcardsubs") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("Invalid allowwildcardsubs"),
    };
    if req.ds.roles.contains_key(rolename) {
        return Err("Role already exists");
    }
    let mut role = Role::new(rolename);
    role.textname = textname.map(str::to_string);
    role.textdescription = textdescription.map(str::to_string);
    role.allow_wildcard_subs = allow_wildcard_subs;
    if let Some(Value::Array(acls)) = get(cmd.obj, "acls") {
        role.acls = Role::parse_acls(acls);
    }
    req.ds.roles.insert(rolename.to_string(), role);
    req.changed(cmd, format_args!("rolename={rolename}"));
    Ok(None)
}

fn delete_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let rolename = cmd.rolename()?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role not found");
    }
    req.kick_role(rolename);
    for client in req.ds.clients.values_mut() {
        client.roles.retain(|r| r.name != rolename);
    }
    for group in req.ds.groups.values_mut() {
        group.roles.retain(|r| r.name != rolename);
    }
    req.ds.roles.remove(rolename);
    req.changed(cmd, format_args!("rolename={rolename}"));
    Ok(None)
}

/// The role, ACL list and topic of addRoleACL/removeRoleACL.
fn acl_target<'c>(req: &Request<'_>, cmd: &Cmd<'c>) -> Result<(&'c str, usize, &'c str), Fail> {
    let rolename = cmd.rolename()?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role not found");
    }
    let acltype = cmd.required("acltype", "Invalid/missing acltype")?;
    let kind = acl_type_index(acltype).ok_or("Unknown acltype")?;
    let topic = cmd.required("topic", "Invalid/missing topic")?;
    if !valid_utf8(topic) {
        return Err("Topic not valid UTF-8");
    }
    if !valid_filter(topic) {
        return Err("Invalid ACL topic");
    }
    Ok((rolename, kind, topic))
}

fn add_role_acl(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let (rolename, kind, topic) = acl_target(req, cmd)?;
    let acl = AclEntry {
        topic: topic.to_string(),
        priority: cmd.int_or("priority", 0),
        allow: cmd.bool_or("allow", false),
    };
    let (priority, allow) = (acl.priority, acl.allow);
    let role = req.ds.roles.get_mut(rolename).ok_or("Role not found")?;
    if !role.add_acl(kind, acl) {
        return Err("ACL with this topic already exists");
    }
    req.changed(
        cmd,
        format_args!(
            "rolename={rolename} | acltype={} | topic={topic} | priority={priority} | allow={allow}",
            ACL_TYPES[kind]
        ),
    );
    req.kick_role(rolename);
    Ok(None)
}

fn remove_role_acl(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let (rolename, kind, topic) = acl_target(req, cmd)?;
    let role = req.ds.roles.get_mut(rolename).ok_or("Role not found")?;
    let before = role.acls[kind].len();
    role.acls[kind].retain(|a| a.topic != topic);
    if role.acls[kind].len() == before {
        return Err("ACL not found");
    }
    req.changed(
        cmd,
        format_args!(
            "rolename={rolename} | acltype={} | topic={topic}",
            ACL_TYPES[kind]
        ),
    );
    req.kick_role(rolename);
    Ok(None)
}

fn get_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let rolename = cmd.rolename()?;
    let role = req.ds.roles.get(rolename).ok_or("Role not found")?;
    let mut data = Map::new();
    data.insert("role".into(), role_to_json(role));
    Ok(Some(data))
}

fn list_roles(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let verbose = cmd.bool_or("verbose", false);
    let items = page(req.ds.roles.values(), cmd)
        .into_iter()
        .map(|r| {
            if verbose {
                role_to_json(r)
            } else {
                Value::String(r.rolename.clone())
            }
        })
        .collect();
    Ok(Some(list_data("roles", req.ds.roles.len(), items)))
}

fn modify_role(req: &mut Request<'_>, cmd: &Cmd<'_>) -> Result<Option<Obj>, Fail> {
    let rolename = cmd.rolename()?;
    if !req.ds.roles.contains_key(rolename) {
        return Err("Role does not exist");
    }
    let allow_wildcard_subs = match get(cmd.obj, "allowwildcardsubs") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("Invalid allowwildcardsubs"),
    };
    let acls = match get(cmd.obj, "acls") {
        Some(Value::Array(acls)) => Some(Role::parse_acls(acls)),
        _ => None,
    };
    let role = req
        .ds
        .roles
        .get_mut(rolename)
        .ok_or("Role does not exist")?;
    if let Some(t) = cmd.if_string("textname") {
        role.textname = Some(t.to_string());
    }
    if let Some(t) = cmd.if_string("textdescription") {
        role.textdescription = Some(t.to_string());
    }
    if let Some(b) = allow_wildcard_subs {
        role.allow_wildcard_subs = b;
    }
    if let Some(acls) = acls {
        role.acls = acls;
    }
    req.changed(cmd, format_args!("rolename={rolename}"));
    Ok(None)
}
