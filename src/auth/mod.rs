//! Authentication and access control, the Mosquitto way: `password_file` (the
//! `mosquitto_passwd` formats) and `acl_file` (Mosquitto's ACL syntax and matching).
//!
//! This module is pure: it takes text in and answers questions ("is this the password of
//! `alice`?", "may client `gw-7` publish to `sensors/7/temp`?"). It imports no other
//! culex module, keeps no clock and opens no socket; the only file access is the thin
//! `load(path)` wrappers around `parse_str`, called by whoever resolves the configuration
//! (at start-up and on SIGHUP). The broker core asks the questions.
//!
//! - [`password_file`]: `username:hash` lines; `$6$` (SHA-512, Mosquitto 1.x) and `$7$`
//!   (PBKDF2-HMAC-SHA512, Mosquitto 2.0 and 2.1) hashes; [`password_file::hash_password`]
//!   for `culex_passwd`.
//! - [`acl_file`]: `user`, `topic` and `pattern` lines; [`acl_file::Acl::check`] answers
//!   with Mosquitto 2.0's rules (deny first, user rules then patterns, `$` topics).
//!
//! A password line that cannot be used is skipped with a warning naming the line, as
//! Mosquitto does (one damaged line must not stop the broker; that user cannot log in).
//! The ACL parser refuses a file with a line it cannot honour, naming the line: a
//! skipped ACL line may open or close a topic, which should not happen silently
//! (DESIGN.md, "What bad input gets").

pub mod acl_file;
pub mod dynsec;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod password_file;

pub use acl_file::{dollar_topic_allowed, Access, Acl};
pub use password_file::{hash_password, HashFormat, PasswordFile};

use std::fmt;
use std::path::{Path, PathBuf};

/// A password or ACL file that cannot be used as it is: where, and what is wrong.
#[derive(Debug)]
pub struct AuthError {
    /// The file, when the text came from [`PasswordFile::load`] or [`Acl::load`].
    pub file: Option<PathBuf>,
    /// 1-based line number; 0 when the error is about the file as a whole (reading it).
    pub line: usize,
    pub kind: AuthErrorKind,
}

/// What is wrong with a line. Every `Display` text says what to do about it.
#[derive(Debug)]
pub enum AuthErrorKind {
    /// The file could not be read.
    Io(std::io::Error),

    // Password files.
    /// A line that is not blank, not a comment and has no `:`.
    MissingColon,
    /// `:hash` with nothing before the colon.
    EmptyUsername,
    /// `username:` with nothing after the colon.
    EmptyHash { username: String },
    /// The same username twice; `first_line` is where it first appeared.
    DuplicateUser { username: String, first_line: usize },
    /// `username:password` in clear text (no `$` hash).
    PlaintextPassword { username: String },
    /// A Mosquitto 2.1 `$argon2id$` hash, which culex does not verify.
    Argon2idUnsupported { username: String },
    /// `$<id>$...` with an id other than 6 or 7.
    UnknownHashType { username: String, id: String },
    /// A `$6$`/`$7$` hash whose fields are wrong; `what` says which and how.
    MalformedHash {
        username: String,
        what: &'static str,
    },

    // ACL files.
    /// A line starting with something other than `topic`, `pattern`, `user` or `#`.
    UnknownKeyword(String),
    /// `topic` or `pattern` with no filter.
    MissingFilter,
    /// `topic <access> <filter>` with an access other than read, write, readwrite, deny.
    InvalidAccess(String),
    /// A filter that is not a valid MQTT topic filter, or a misplaced `%c`/`%u`.
    InvalidFilter { filter: String, what: &'static str },
    /// `user` with no name.
    MissingUsername,
}

impl AuthError {
    pub(crate) fn at(line: usize, kind: AuthErrorKind) -> Self {
        AuthError {
            file: None,
            line,
            kind,
        }
    }

    pub(crate) fn in_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }
}

/// Reads a whole file for `load`; an I/O error becomes an [`AuthError`] naming the file.
pub(crate) fn read_file(path: &Path) -> Result<String, AuthError> {
    std::fs::read_to_string(path).map_err(|e| AuthError::at(0, AuthErrorKind::Io(e)).in_file(path))
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{}: ", file.display())?,
            (Some(file), line) => write!(f, "{}:{line}: ", file.display())?,
            (None, 0) => {}
            (None, line) => write!(f, "line {line}: ")?,
        }
        write!(f, "{}", self.kind)
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AuthErrorKind::*;
        match self {
            Io(e) => write!(f, "cannot read the file: {e}"),
            MissingColon => write!(
                f,
                "expected 'username:hash' (a line written by culex_passwd or mosquitto_passwd)"
            ),
            EmptyUsername => write!(f, "the username before ':' is empty"),
            EmptyHash { username } => write!(
                f,
                "user '{username}' has no password hash; set one with \
                 'culex_passwd <file> {username}'"
            ),
            DuplicateUser {
                username,
                first_line,
            } => write!(
                f,
                "user '{username}' appears again (first on line {first_line}); remove one of \
                 the two lines"
            ),
            PlaintextPassword { username } => write!(
                f,
                "user '{username}' has a plain-text password; Mosquitto built with TLS refuses \
                 these too; hash the file with 'culex_passwd -U <file>'"
            ),
            Argon2idUnsupported { username } => write!(
                f,
                "user '{username}' has an argon2id hash (Mosquitto 2.1 built WITH_ARGON2); culex \
                 does not verify argon2id, whose 46 MiB per check would stall the broker's one \
                 thread; set the password again with 'culex_passwd <file> {username}' \
                 (sha512-pbkdf2)"
            ),
            UnknownHashType { username, id } => write!(
                f,
                "user '{username}' has a '${id}$' hash; only '$6$' (sha512) and '$7$' \
                 (sha512-pbkdf2) are known; set the password again with \
                 'culex_passwd <file> {username}'"
            ),
            MalformedHash { username, what } => write!(
                f,
                "user '{username}' has a damaged hash: {what}; set the password again with \
                 'culex_passwd <file> {username}'"
            ),
            UnknownKeyword(word) => write!(
                f,
                "unknown keyword '{word}'; ACL lines start with 'topic', 'pattern', 'user' or \
                 '#' (a comment)"
            ),
            MissingFilter => write!(
                f,
                "missing topic filter; write 'topic [read|write|readwrite|deny] <filter>'"
            ),
            InvalidAccess(access) => write!(
                f,
                "unknown access '{access}'; use read, write, readwrite or deny (or leave it out \
                 for readwrite)"
            ),
            InvalidFilter { filter, what } => {
                write!(f, "invalid topic filter '{filter}': {what}")
            }
            MissingUsername => write!(f, "'user' needs a username"),
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            AuthErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
