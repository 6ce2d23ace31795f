//! Mosquitto ACL files (`acl_file`): which client may publish to or receive from which
//! topic, with Mosquitto 2.0's syntax and answers (`security_default.c`).
//!
//! # Syntax
//!
//! ```text
//! # Lines before any `user` line apply to anonymous clients.
//! topic read $SYS/#
//!
//! user gateway
//! topic readwrite sensors/#
//! topic deny sensors/secret/#
//!
//! # Patterns apply to every client; %c is its client id, %u its username.
//! pattern write devices/%c/state
//! pattern readwrite users/%u/#
//! ```
//!
//! - `topic [read|write|readwrite|deny] <filter>`: access defaults to `readwrite`; the
//!   filter is the rest of the line, so it may contain spaces (then the access is
//!   required, or the first word of the filter is taken as the access). With one word
//!   after `topic`, that word is the filter: `topic read` grants readwrite on `read`.
//! - `user <username>`: the `topic` lines that follow are that user's (the name is the
//!   rest of the line). A user may have several sections; they add up.
//! - `pattern [access] <filter>`: for every client; a level that is exactly `%c` or `%u`
//!   matches a level equal to the client id or username. A pattern with `%u` never
//!   matches a client without a username.
//! - `#` starts a comment only at the start of a line (after blanks): `#` elsewhere is
//!   a wildcard, and text after a filter is part of the filter.
//!
//! # Answers
//!
//! [`Acl::check`] answers as Mosquitto 2.0 does, in this order:
//!
//! 1. `$` topics: publishing to `$SYS/...` is refused (except a bridge's
//!    `$SYS/broker/connection/<id>/state`) and so is publishing to `$share/...`
//!    ([`dollar_topic_allowed`], which also applies without an ACL file). A filter
//!    matches a topic starting with `$` only if it starts with `$` too: `#` does not
//!    grant `$SYS/#`.
//! 2. The client's own rules (its `user` section, or the anonymous section if it has no
//!    username): a matching `deny` refuses, whatever the order in the file; then a
//!    matching grant with the right access allows.
//! 3. If the file has patterns: a client id or username containing `+` or `#` is
//!    refused (it could otherwise widen a pattern).
//! 4. Patterns, the same way: a matching `deny` refuses, then a matching grant allows.
//! 5. Anything else is refused.
//!
//! So a user rule that grants is not undone by a pattern that denies.
//!
//! What the broker does around it (Mosquitto's `security.c`): bridges are not checked;
//! `Access::Write` is checked when a client publishes (and for its will),
//! `Access::Read` when a message is delivered to a subscriber. SUBSCRIBE and
//! UNSUBSCRIBE are not checked against the file at all, as in Mosquitto 2.0 and 2.1's
//! acl-file plugin (both answer success, with a FIXME): any filter may be subscribed,
//! and each message is then checked for `Read`.
//!
//! # Differences from Mosquitto, on purpose
//!
//! - `%c`/`%u` inside a level (`dev-%c`) is refused with its line number. Mosquitto 2.0
//!   matches such a level literally, which silently stopped files written for 1.x
//!   (which substituted anywhere) from granting anything.
//! - A `%c`/`%u` level must equal the whole client id or username. Mosquitto 2.0's
//!   matcher stops comparing at the topic's `/`, so the client id `ab/x` matches the
//!   level `ab`; culex does not.
//! - Blanks other than spaces (tabs) separate words, and a `#` after leading blanks
//!   starts a comment; Mosquitto refuses such lines as invalid.
//!
//! # Cost
//!
//! Rules are grouped per user when the file is read, denials first. A check is one hash
//! lookup of the username and a level-by-level comparison per rule, substituting `%c`
//! and `%u` on the fly: it does not allocate.

use std::collections::HashMap;
use std::path::Path;

use super::{read_file, AuthError, AuthErrorKind};

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive a message published to the topic (checked at delivery).
    Read,
    /// Publish to the topic (checked on PUBLISH and for a will).
    Write,
}

/// Mosquitto's `TOPIC_HIERARCHY_LIMIT`: a filter may have at most this many `/`.
const MAX_FILTER_SEPARATORS: usize = 200;
/// The longest filter MQTT can carry (a two-byte length).
const MAX_FILTER_LEN: usize = 65_535;

/// A parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// Rules before any `user` line: for clients without a username.
    anonymous: Vec<Rule>,
    /// Each `user` section's rules, sections of the same name merged.
    users: HashMap<String, Vec<Rule>>,
    /// `pattern` lines, for every client.
    patterns: Vec<Rule>,
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    filter: String,
    grant: Grant,
}

/// A rule's access word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Deny,
    Read,
    Write,
    ReadWrite,
}

impl Grant {
    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Grant::ReadWrite, _) | (Grant::Read, Access::Read) | (Grant::Write, Access::Write)
        )
    }
}

impl Acl {
    /// Parses the text of an ACL file. See the module docs for the syntax.
    pub fn parse_str(text: &str) -> Result<Acl, AuthError> {
        let mut acl = Acl::default();
        // None: the anonymous section, until the first `user` line.
        let mut user: Option<&str> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |kind| AuthError::at(line_no, kind);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(line);
            match keyword {
                "topic" | "pattern" => {
                    let is_pattern = keyword == "pattern";
                    let rule = parse_rule(rest, is_pattern).map_err(err)?;
                    if is_pattern {
                        acl.patterns.push(rule);
                    } else {
                        match user {
                            None => acl.anonymous.push(rule),
                            Some(name) => acl.users.entry(name.to_owned()).or_default().push(rule),
                        }
                    }
                }
                "user" => {
                    if rest.is_empty() {
                        return Err(err(AuthErrorKind::MissingUsername));
                    }
                    user = Some(rest);
                }
                other => return Err(err(AuthErrorKind::UnknownKeyword(other.to_owned()))),
            }
        }
        // Denials first, each list otherwise in file order: Mosquitto's add__acl puts
        // `deny` lines at the head of the list so they are seen before any grant.
        for rules in std::iter::once(&mut acl.anonymous)
            .chain(acl.users.values_mut())
            .chain(std::iter::once(&mut acl.patterns))
        {
            rules.sort_by_key(|rule| rule.grant != Grant::Deny);
        }
        Ok(acl)
    }

    /// Reads and parses the file at `path`; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Acl, AuthError> {
        let path = path.as_ref();
        Acl::parse_str(&read_file(path)?).map_err(|e| e.in_file(path))
    }

    /// Whether the client `client_id`, logged in as `username` (None: anonymous), may
    /// `access` the topic name `topic`. See the module docs for the order of the rules.
    ///
    /// `topic` is a topic name as received (no wildcards).
    pub fn check(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: Access,
    ) -> bool {
        if !dollar_topic_allowed(topic, access) {
            return false;
        }
        let own_rules = match username {
            None => Some(&self.anonymous),
            Some(name) => self.users.get(name),
        };
        if let Some(rules) = own_rules {
            for rule in rules {
                if filter_matches(&rule.filter, topic, None) {
                    if rule.grant == Grant::Deny {
                        return false;
                    }
                    if rule.grant.allows(access) {
                        return true;
                    }
                }
            }
        }
        if self.patterns.is_empty() {
            return false;
        }
        let is_dangerous = |s: &str| s.contains(['+', '#']);
        if is_dangerous(client_id) || username.is_some_and(is_dangerous) {
            return false;
        }
        let identity = Identity {
            client_id,
            username,
        };
        for rule in &self.patterns {
            if filter_matches(&rule.filter, topic, Some(&identity)) {
                if rule.grant == Grant::Deny {
                    return false;
                }
                if rule.grant.allows(access) {
                    return true;
                }
            }
        }
        false
    }
}

/// Mosquitto's `acl__check_dollar` (`security.c`), applied to every check, with or
/// without an ACL file: clients may not publish to `$SYS` (except the bridge state topic
/// `$SYS/broker/connection/<id>/state`) nor to `$share/...`. Other `$` topics, and
/// reading, are left to the ACL rules.
pub fn dollar_topic_allowed(topic: &str, access: Access) -> bool {
    if topic.starts_with("$SYS") {
        return access == Access::Read
            || filter_matches("$SYS/broker/connection/+/state", topic, None);
    }
    if topic.starts_with("$share") {
        // Only SUBSCRIBE/UNSUBSCRIBE may name $share, and those are not checked here.
        return false;
    }
    true
}

/// The client a pattern's `%c` and `%u` stand for.
struct Identity<'a> {
    client_id: &'a str,
    username: Option<&'a str>,
}

/// Mosquitto's `mosquitto_topic_matches_sub` (and `..._with_pattern` when `identity` is
/// given): `+` matches one level, an empty one too; `#` matches the rest, the parent
/// level included (`a/#` matches `a`); a topic starting with `$` is matched only by a
/// filter starting with `$`. With an identity, a level that is exactly `%c` or `%u`
/// matches a level equal to the client id or username; an empty or absent one matches
/// nothing.
fn filter_matches(filter: &str, topic: &str, identity: Option<&Identity<'_>>) -> bool {
    if filter.starts_with('$') != topic.starts_with('$') {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(want), Some(level)) => {
                let want = match (identity, want) {
                    (Some(id), "%c") => id.client_id,
                    (Some(id), "%u") => match id.username {
                        Some(name) => name,
                        None => return false,
                    },
                    _ => want,
                };
                if want != level || (identity.is_some() && want.is_empty()) {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

/// Splits off the first blank-separated word; the rest is trimmed.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

/// Parses what follows `topic` or `pattern`: `[access] <filter>`.
fn parse_rule(rest: &str, is_pattern: bool) -> Result<Rule, AuthErrorKind> {
    if rest.is_empty() {
        return Err(AuthErrorKind::MissingFilter);
    }
    let (first, filter) = split_word(rest);
    let (grant, filter) = if filter.is_empty() {
        // One word: it is the filter, with the default access (Mosquitto's parser).
        (Grant::ReadWrite, first)
    } else {
        let grant = match first {
            "read" => Grant::Read,
            "write" => Grant::Write,
            "readwrite" => Grant::ReadWrite,
            "deny" => Grant::Deny,
            other => return Err(AuthErrorKind::InvalidAccess(other.to_owned())),
        };
        (grant, filter)
    };
    check_filter(filter, is_pattern)?;
    Ok(Rule {
        filter: filter.to_owned(),
        grant,
    })
}

/// Mosquitto's `mosquitto_sub_topic_check`, plus: in a pattern, `%c`/`%u` fill a level.
fn check_filter(filter: &str, is_pattern: bool) -> Result<(), AuthErrorKind> {
    let invalid = |what| AuthErrorKind::InvalidFilter {
        filter: filter.to_owned(),
        what,
    };
    if filter.len() > MAX_FILTER_LEN {
        return Err(invalid("longer than 65,535 bytes"));
    }
    if filter.matches('/').count() > MAX_FILTER_SEPARATORS {
        return Err(invalid("more than 200 '/' (Mosquitto's limit)"));
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "#" if levels.peek().is_some() => {
                return Err(invalid("'#' must be the last level"));
            }
            "#" | "+" => {}
            _ if level.contains(['#', '+']) => {
                return Err(invalid("'+' and '#' must fill a whole level"));
            }
            "%c" | "%u" => {}
            _ if is_pattern && (level.contains("%c") || level.contains("%u")) => {
                return Err(invalid(
                    "'%c' and '%u' must fill a whole level, as in 'devices/%c/#' \
                     (Mosquitto 2 matches 'dev-%c' literally)",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Access::{Read, Write};

    const ANON: Option<&str> = None;

    fn acl(text: &str) -> Acl {
        Acl::parse_str(text).expect("a valid ACL file")
    }

    fn error_of(text: &str) -> AuthError {
        Acl::parse_str(text).expect_err("a malformed ACL file")
    }

    /// One file, many questions: (client id, username, topic, access, expected).
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Access, bool);

    fn assert_cases(text: &str, cases: &[Case<'_>]) {
        let acl = acl(text);
        for &(client, user, topic, access, expected) in cases {
            assert_eq!(
                acl.check(client, user, topic, access),
                expected,
                "client {client:?} user {user:?} topic {topic:?} {access:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn anonymous_section_is_for_clients_without_a_username() {
        let text = "topic read public/#\ntopic write anon/in\n\nuser alice\ntopic alice/#\n";
        assert_cases(
            text,
            &[
                ("c", ANON, "public/news", Read, true),
                ("c", ANON, "public", Read, true), // `#` matches the parent level
                ("c", ANON, "public/news", Write, false),
                ("c", ANON, "anon/in", Write, true),
                ("c", ANON, "anon/in", Read, false),
                ("c", ANON, "alice/x", Read, false),
                // A username, even one without a section, is not anonymous.
                ("c", Some("bob"), "public/news", Read, false),
                ("c", Some(""), "public/news", Read, false),
                ("c", Some("alice"), "public/news", Read, false),
            ],
        );
    }

    #[test]
    fn user_sections_apply_to_that_user_only_and_add_up() {
        let text = "user alice\ntopic read a/+\nuser bob\ntopic b\nuser alice\ntopic write a/w\n\
                    user John Smith\ntopic read js\n";
        assert_cases(
            text,
            &[
                ("c", Some("alice"), "a/1", Read, true),
                ("c", Some("alice"), "a/1", Write, false),
                ("c", Some("alice"), "a/w", Write, true),
                ("c", Some("alice"), "a/w", Read, true), // `a/+` grants read
                ("c", Some("alice"), "a", Read, false),  // `+` needs a level
                ("c", Some("alice"), "a/1/2", Read, false),
                ("c", Some("alice"), "b", Read, false),
                ("c", Some("bob"), "b", Read, true),
                ("c", Some("bob"), "b", Write, true), // readwrite by default
                ("c", Some("Bob"), "b", Read, false), // usernames are case-sensitive
                ("c", Some("John Smith"), "js", Read, true),
                ("c", ANON, "b", Read, false),
            ],
        );
    }

    #[test]
    fn deny_is_evaluated_before_grants_in_any_order() {
        let text = "user u\ntopic readwrite home/#\ntopic deny home/secret/#\n\
                    topic read +/+/x\ntopic deny +/open/x\n";
        assert_cases(
            text,
            &[
                ("c", Some("u"), "home/kitchen", Write, true),
                ("c", Some("u"), "home/secret", Read, false),
                ("c", Some("u"), "home/secret/key", Write, false),
                ("c", Some("u"), "home/secretive", Read, true),
                ("c", Some("u"), "a/b/x", Read, true),
                ("c", Some("u"), "a/open/x", Read, false),
            ],
        );
    }

    #[test]
    fn patterns_substitute_client_id_and_username() {
        let text = "pattern write devices/%c/state\npattern readwrite users/%u/#\n\
                    pattern read both/%u/%c\n";
        assert_cases(
            text,
            &[
                ("gw-7", ANON, "devices/gw-7/state", Write, true),
                ("gw-7", ANON, "devices/gw-7/state", Read, false),
                ("gw-7", ANON, "devices/gw-8/state", Write, false),
                ("gw-7", ANON, "devices/gw-/state", Write, false),
                ("gw-7", ANON, "devices/gw-77/state", Write, false),
                ("gw-7", ANON, "devices/%c/state", Write, false),
                ("gw-7", Some("al"), "users/al", Read, true),
                ("gw-7", Some("al"), "users/al/inbox", Write, true),
                ("gw-7", Some("al"), "users/alice/inbox", Write, false),
                ("gw-7", ANON, "users/al/inbox", Write, false), // %u needs a username
                ("gw-7", Some(""), "users//inbox", Write, false), // ... a non-empty one
                ("", ANON, "devices//state", Write, false),     // %c a non-empty id
                ("gw-7", Some("al"), "both/al/gw-7", Read, true),
                ("gw-7", Some("al"), "both/gw-7/al", Read, false),
                // A client id with '/' cannot fill one level (Mosquitto 2.0 matches
                // "ab/x" against "ab" up to the '/'; culex does not).
                ("ab/x", ANON, "devices/ab/x/state", Write, false),
                ("ab/x", ANON, "devices/ab/state", Write, false),
            ],
        );
    }

    #[test]
    fn patterns_refuse_ids_and_usernames_with_wildcards() {
        let text = "topic read open\npattern readwrite x/#\nuser u\ntopic read mine\n";
        assert_cases(
            text,
            &[
                ("c", ANON, "x/1", Write, true),
                ("c+", ANON, "x/1", Write, false),
                ("c#", ANON, "x/1", Write, false),
                ("c", Some("u#"), "x/1", Write, false),
                // The client's own rules come first and still grant.
                ("c#", ANON, "open", Read, true),
                ("c", Some("u"), "mine", Read, true),
                ("c+", Some("u"), "mine", Read, true),
            ],
        );
        // Without patterns, such names are not refused by the ACL.
        assert_cases("topic read #\n", &[("c#", ANON, "t", Read, true)]);
    }

    #[test]
    fn user_grant_wins_over_pattern_deny() {
        let text = "user u\ntopic write t/1\npattern deny t/#\npattern read t/#\n";
        assert_cases(
            text,
            &[
                ("c", Some("u"), "t/1", Write, true),
                ("c", Some("u"), "t/1", Read, false), // falls to the patterns: deny
                ("c", Some("v"), "t/2", Read, false),
            ],
        );
    }

    #[test]
    fn wildcards_match_like_subscriptions() {
        let text = "topic read #\ntopic write a/+/c\ntopic write +\ntopic write /+\n\
                    topic write x//y\n";
        assert_cases(
            text,
            &[
                ("c", ANON, "anything/at/all", Read, true),
                ("c", ANON, "/", Read, true),
                ("c", ANON, "a/b/c", Write, true),
                ("c", ANON, "a//c", Write, true), // `+` matches an empty level
                ("c", ANON, "a/b/c/d", Write, false),
                ("c", ANON, "a/c", Write, false),
                ("c", ANON, "single", Write, true),
                ("c", ANON, "/lead", Write, true),
                ("c", ANON, "two/levels", Write, false),
                ("c", ANON, "x//y", Write, true),
                ("c", ANON, "x/y", Write, false),
            ],
        );
    }

    #[test]
    fn hash_matches_the_parent_level() {
        assert_cases(
            "topic read a/b/#\n",
            &[
                ("c", ANON, "a/b", Read, true),
                ("c", ANON, "a/b/", Read, true),
                ("c", ANON, "a/b/c/d", Read, true),
                ("c", ANON, "a", Read, false),
                ("c", ANON, "a/bc", Read, false),
            ],
        );
    }

    #[test]
    fn dollar_topics_need_dollar_filters() {
        let text = "topic readwrite #\ntopic read $SYS/broker/#\ntopic readwrite $app/+\n\
                    pattern write $SYS/broker/connection/%c/state\n";
        assert_cases(
            text,
            &[
                ("c", ANON, "normal", Write, true),
                ("c", ANON, "$SYS/broker/uptime", Read, true),
                ("c", ANON, "$SYS/other", Read, false), // `#` does not cover `$`
                ("c", ANON, "$app/x", Write, true),
                ("c", ANON, "$app", Write, false),
                // Publishing to $SYS is refused whatever the file says ...
                ("c", ANON, "$SYS/broker/uptime", Write, false),
                // ... except a bridge's state topic, when the file grants it.
                ("br", ANON, "$SYS/broker/connection/br/state", Write, true),
                ("br", ANON, "$SYS/broker/connection/xx/state", Write, false),
                // $share is for SUBSCRIBE only, which the file does not see.
                ("c", ANON, "$share/g/t", Write, false),
                ("c", ANON, "$share/g/t", Read, false),
            ],
        );
        assert_cases(
            "topic read +/uptime\n",
            &[("c", ANON, "$SYS/uptime", Read, false)],
        );
        assert!(dollar_topic_allowed("$SYS/broker/uptime", Read));
        assert!(!dollar_topic_allowed("$SYS/broker/uptime", Write));
        assert!(dollar_topic_allowed(
            "$SYS/broker/connection/b/state",
            Write
        ));
        assert!(!dollar_topic_allowed("$share/g/t", Write));
        assert!(dollar_topic_allowed("$other/t", Write));
        assert!(dollar_topic_allowed("plain", Write));
    }

    #[test]
    fn empty_file_and_unlisted_users_are_refused() {
        assert_cases(
            "# nothing\n",
            &[
                ("c", ANON, "t", Read, false),
                ("c", Some("u"), "t", Write, false),
            ],
        );
        assert_cases("user u\n", &[("c", Some("u"), "t", Read, false)]);
    }

    #[test]
    fn one_word_after_topic_is_the_filter_and_spaces_stay_in_filters() {
        let text = "topic read\ntopic write  my topic/with spaces \n\ttopic\tdeny\tread/secret\n";
        assert_cases(
            text,
            &[
                ("c", ANON, "read", Read, true),
                ("c", ANON, "read", Write, true),
                ("c", ANON, "my topic/with spaces", Write, true),
                ("c", ANON, "my topic/with spaces", Read, false),
                ("c", ANON, "read/secret", Read, false),
            ],
        );
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_skipped() {
        let text = "# c1\r\n\r\n   # c2\r\ntopic read a\r\n  \t\r\n";
        assert_cases(
            text,
            &[
                ("c", ANON, "a", Read, true),
                ("c", ANON, "a\r", Read, false),
            ],
        );
    }

    #[test]
    fn percent_outside_patterns_is_literal() {
        assert_cases(
            "topic read devices/%c\ntopic read tag-%u\n",
            &[
                ("c", ANON, "devices/%c", Read, true),
                ("c", ANON, "devices/c", Read, false),
                ("c", ANON, "tag-%u", Read, true),
            ],
        );
    }

    #[test]
    fn unknown_keyword_is_malformed() {
        let e = error_of("topic read a\nuser u\ntopc read b\n");
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, AuthErrorKind::UnknownKeyword(ref w) if w == "topc"));
    }

    #[test]
    fn topic_or_pattern_without_filter_is_malformed() {
        for text in ["\ntopic\n", "\npattern   \n"] {
            let e = error_of(text);
            assert_eq!(e.line, 2, "{text:?}");
            assert!(matches!(e.kind, AuthErrorKind::MissingFilter), "{text:?}");
        }
    }

    #[test]
    fn unknown_access_is_malformed() {
        let e = error_of("# x\n\ntopic reed a/b\n");
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, AuthErrorKind::InvalidAccess(ref a) if a == "reed"));
        let e = error_of("pattern Read a/%c\n");
        assert!(matches!(e.kind, AuthErrorKind::InvalidAccess(ref a) if a == "Read"));
    }

    #[test]
    fn user_without_name_is_malformed() {
        let e = error_of("user alice\ntopic a\nuser \t \n");
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, AuthErrorKind::MissingUsername));
    }

    #[test]
    fn invalid_filters_are_malformed() {
        let deep = "a/".repeat(201) + "a";
        let long = "a".repeat(65_536);
        let cases = [
            ("topic read a/#/b", "'#' must be the last level"),
            ("topic read #/a", "'#' must be the last level"),
            ("topic read a/b#", "'+' and '#'"),
            ("topic read a+/b", "'+' and '#'"),
            ("pattern write dev-%c/x", "'%c' and '%u'"),
            ("pattern write x/%u%c", "'%c' and '%u'"),
            ("pattern write x/%cc", "'%c' and '%u'"),
        ];
        for (line, reason) in cases {
            let e = error_of(&format!("topic ok\n{line}\n"));
            assert_eq!(e.line, 2, "{line}");
            match e.kind {
                AuthErrorKind::InvalidFilter { what, .. } => {
                    assert!(what.starts_with(reason), "{line}: {what}")
                }
                ref other => panic!("{line}: {other:?}"),
            }
        }
        for filter in [deep, long] {
            let e = error_of(&format!("topic read {filter}"));
            assert!(matches!(e.kind, AuthErrorKind::InvalidFilter { .. }));
        }
        // The limits themselves are fine.
        acl(&format!("topic read {}a", "a/".repeat(200)));
    }

    #[test]
    fn errors_read_as_file_line_and_advice() {
        let e = error_of("topic read a\ntopic raed b\n").in_file(Path::new("/etc/culex/acl"));
        assert_eq!(
            e.to_string(),
            "/etc/culex/acl:2: unknown access 'raed'; use read, write, readwrite or deny (or \
             leave it out for readwrite)"
        );
        let e = error_of("pattern write dev-%c");
        assert_eq!(
            e.to_string(),
            "line 1: invalid topic filter 'dev-%c': '%c' and '%u' must fill a whole level, as \
             in 'devices/%c/#' (Mosquitto 2 matches 'dev-%c' literally)"
        );
        let e = Acl::load("/nonexistent/culex/acl").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/culex/acl: cannot read the file"));
    }

    /// The same file and publishes were run against Debian 12's mosquitto 2.0.11 (user
    /// `u` publishing, an anonymous `#` subscriber watching): it delivered and dropped
    /// exactly these.
    #[test]
    fn answers_match_mosquitto_2_0_11() {
        let text = "topic readwrite #\ntopic deny secret/#\nuser u\ntopic write t/1\n\
                    topic read t/#\npattern deny t/#\npattern readwrite dev/%c/#\n";
        let u = Some("u");
        assert_cases(
            text,
            &[
                ("c1", u, "t/1", Write, true),
                ("c1", u, "t/2", Write, false),
                ("gw", u, "dev/gw/x", Write, true),
                ("gw", u, "dev/gw", Write, true),
                ("gw", u, "dev/other/x", Write, false),
                ("gw", u, "devx", Write, false),
                // The watching subscriber's reads.
                ("s", ANON, "t/1", Read, true),
                ("s", ANON, "dev/gw/x", Read, true),
            ],
        );
    }

    /// The matcher against a naive reference over generated filters and names.
    #[test]
    fn filter_matching_agrees_with_a_reference_matcher() {
        fn reference(filter: &str, topic: &str) -> bool {
            let f: Vec<&str> = filter.split('/').collect();
            let t: Vec<&str> = topic.split('/').collect();
            if filter.starts_with('$') != topic.starts_with('$') {
                return false;
            }
            for (i, level) in f.iter().enumerate() {
                if *level == "#" {
                    return true;
                }
                match t.get(i) {
                    Some(tl) if *level == "+" || level == tl => {}
                    _ => return false,
                }
            }
            f.len() == t.len()
        }
        let levels = ["a", "b", "", "$s"];
        let filter_levels = ["a", "b", "", "+", "#", "$s"];
        let mut seed: u64 = 0x5eed_cafe;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        for _ in 0..20_000 {
            let topic: Vec<&str> = (0..1 + next(4)).map(|_| levels[next(4)]).collect();
            let mut filter: Vec<&str> = (0..1 + next(4)).map(|_| filter_levels[next(6)]).collect();
            if let Some(pos) = filter.iter().position(|l| *l == "#") {
                filter.truncate(pos + 1);
            }
            let (topic, filter) = (topic.join("/"), filter.join("/"));
            assert_eq!(
                filter_matches(&filter, &topic, None),
                reference(&filter, &topic),
                "filter {filter:?} topic {topic:?} (seed 0x5eedcafe)"
            );
        }
    }
}
