//! Fuzz target bodies for the password file and ACL file parsers, in the library so
//! `cargo test` replays the seed corpus on stable and `fuzz/` stays a thin wrapper (as
//! `protocol::fuzz`).

use super::{hash_password, Access, Acl, HashFormat, PasswordFile};
use std::num::NonZeroU32;

/// Parses the input as a password file: every line that is not blank or a comment either
/// gives its user or is listed as skipped. Then a round trip: the input split in two is a password and a salt, hashed as
/// `culex_passwd` writes them (`$6$`, and `$7$` with one to four iterations so a run
/// stays fast); the line parses and that password, and only it, matches.
pub fn fuzz_password_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let file = PasswordFile::parse_lines(&text);
    for (index, line) in text.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let user = line.split_once(':').map(|(u, _)| u.trim()).unwrap_or("");
        let is_skipped = file.skipped().iter().any(|e| e.line == index + 1);
        assert!(file.contains_user(user) || is_skipped, "{user:?} missing");
    }
    let (password, salt) = data.split_at(data.len() / 2);
    if salt.is_empty() {
        return;
    }
    let iterations = NonZeroU32::MIN.saturating_add(u32::from(salt[0] % 4));
    for format in [HashFormat::Sha512, HashFormat::Sha512Pbkdf2 { iterations }] {
        let line = format!("u:{}\n", hash_password(password, format, salt));
        let file = PasswordFile::parse_lines(&line);
        assert!(
            file.skipped().is_empty(),
            "culex_passwd's line parses: {line}"
        );
        // An empty password matches no one (Mosquitto reads it as none).
        assert_eq!(file.check("u", password), !password.is_empty(), "{line}");
        let mut other = password.to_vec();
        other.push(0x5a);
        assert!(!file.check("u", &other), "{line}");
        assert!(!file.check("v", password), "{line}");
    }
}

/// Parses the input as an ACL file; whatever parses is asked about topics taken from its
/// own lines (wildcards replaced: a topic name has none) for anonymous clients and for
/// its own users. Oracle, Mosquitto's `$` rules that no ACL line can change: nobody may
/// publish to `$SYS/...` (but a bridge's state topic) or to `$share/...`.
pub fn fuzz_acl_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(acl) = Acl::parse_str(&text) else {
        return;
    };
    let mut topics: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .map(|word| word.replace(['+', '#'], "x"))
        .take(16)
        .collect();
    topics.extend(["a/b", "$SYS/broker/load", "$share/g/t", "", "/", "a//b"].map(String::from));
    let mut users: Vec<Option<&str>> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("user "))
        .map(|name| Some(name.trim()))
        .take(4)
        .collect();
    users.push(None);
    for topic in &topics {
        for &user in &users {
            for client in ["c", "x", "%c"] {
                for access in [Access::Read, Access::Write] {
                    let allowed = acl.check(client, user, topic, access);
                    let is_bridge_state =
                        topic.starts_with("$SYS/broker/connection/") && topic.ends_with("/state");
                    if access == Access::Write
                        && ((topic.starts_with("$SYS") && !is_bridge_state)
                            || topic.starts_with("$share"))
                    {
                        assert!(!allowed, "{client} {user:?} may publish to {topic}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(target: &str, body: fn(&[u8])) {
        let dir = format!("{}/fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory exists") {
            let path = entry.expect("readable corpus entry").path();
            body(&std::fs::read(&path).expect("readable corpus file"));
            replayed += 1;
        }
        assert!(replayed >= 3, "only {replayed} corpus files in {dir}");
    }

    /// Replays the cargo-fuzz seed corpora (and anything the fuzzer added there), so the
    /// oracles run on stable.
    #[test]
    fn password_file_corpus_replays() {
        replay("password_file", fuzz_password_file);
    }

    #[test]
    fn acl_file_corpus_replays() {
        replay("acl_file", fuzz_acl_file);
    }
}
