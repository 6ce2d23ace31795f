//! Mosquitto password files: `username:hash` lines written by `mosquitto_passwd` or
//! `culex_passwd`, and the check of a CONNECT's username and password against them.
//!
//! # Formats
//!
//! ```text
//! alice:$7$101$L76DfQmP0kceAglb$CwTTibhG...8VA==      sha512-pbkdf2 (Mosquitto 2.0, 2.1)
//! bob:$6$qnYnrFJXLC7av0Nx$AZx0HKUPGvSWv0Ej...ohg==    sha512 (Mosquitto 1.x, `-H sha512`)
//! ```
//!
//! - `$6$<salt>$<hash>`: SHA-512 over the password bytes followed by the salt bytes, one
//!   round (Mosquitto's `pw__digest`: `EVP_DigestUpdate(password)`, then `(salt)`).
//! - `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 of the password with the salt,
//!   64-byte output. Mosquitto 2.0 writes 12-byte salts and 101 iterations; 2.1 writes
//!   64-byte salts and 1,000 iterations. Both are read here. Mosquitto 2.0 itself refuses
//!   a 64-byte salt ("Unable to decode password salt", checked with 2.0.11), so
//!   `culex_passwd` writes 12-byte salts, with 2.1's 1,000 iterations, which 2.0 reads.
//! - Salt and hash are base64, standard alphabet, padded (OpenSSL's BIO); padding is
//!   optional when reading, for files written by other tools.
//! - `$argon2id$...` (2.1 built `WITH_ARGON2`, which stock builds are not) is refused with
//!   a message naming the line: one check costs 46 MiB and tens of milliseconds, on the
//!   broker's only thread. Plain-text passwords are refused too: Mosquitto accepts them
//!   only when built without TLS.
//!
//! # Lines that cannot be used
//!
//! As Mosquitto (`pwfile__parse`, `unpwd__decode_passwords`), a line that cannot be
//! decoded is skipped with a warning and the other users are served: one damaged line
//! must not stop the broker (that user then cannot log in). The warning names the file,
//! the line and what to do ([`PasswordFile::skipped`]; [`PasswordFile::load`] logs
//! them). Of two lines for one user the first is kept. Blank lines and lines starting
//! with `#` are skipped silently. Names and hashes are trimmed of surrounding blanks, as
//! Mosquitto does.
//!
//! An empty password matches no one, whatever the file says: Mosquitto reads a
//! zero-length Password field as no password (`packet__read_binary` gives NULL), and a
//! CONNECT without a password is refused (suite test `09-pwfile-parse-invalid`).
//!
//! # Cost
//!
//! [`PasswordFile::check`] computes one hash: one SHA-512 for `$6$`, `2 * iterations + 2`
//! SHA-512 compressions for `$7$` (about 2,000 at 1,000 iterations: milliseconds on a
//! Raspberry Pi, on the loop). The stored and computed hashes are compared in constant
//! time. An unknown username answers `false` at once, as in Mosquitto, so response time
//! tells whether a username exists.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use base64::Engine as _;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::{read_file, AuthError, AuthErrorKind};

/// Salt length `culex_passwd` writes: Mosquitto 2.0's, the longest 2.0 accepts.
pub const SALT_LEN: usize = 12;

/// PBKDF2 iterations `culex_passwd` writes by default: Mosquitto 2.1's default (2.0
/// wrote 101 and reads any count).
pub const DEFAULT_ITERATIONS: NonZeroU32 = match NonZeroU32::new(1_000) {
    Some(n) => n,
    None => unreachable!(),
};

/// Length of every `$6$` and `$7$` hash: a SHA-512 output.
const HASH_LEN: usize = 64;

/// How a password is hashed: `mosquitto_passwd -H` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFormat {
    /// `$6$`: `-H sha512`, Mosquitto 1.x's only format. One SHA-512 round; weak against
    /// offline guessing, kept for files shared with 1.x brokers.
    Sha512,
    /// `$7$`: `-H sha512-pbkdf2`, the default since Mosquitto 2.0.
    Sha512Pbkdf2 { iterations: NonZeroU32 },
}

impl HashFormat {
    /// The format for a `mosquitto_passwd -H` name, with `iterations` for PBKDF2.
    /// `argon2id` and unknown names give `None`.
    pub fn from_name(name: &str, iterations: NonZeroU32) -> Option<HashFormat> {
        match name {
            "sha512" => Some(HashFormat::Sha512),
            "sha512-pbkdf2" => Some(HashFormat::Sha512Pbkdf2 { iterations }),
            _ => None,
        }
    }
}

/// Hashes `password` with `salt` into the text after `username:` in a password file.
///
/// The salt comes from the caller (`culex_passwd` takes [`SALT_LEN`] bytes from the OS
/// RNG), so this stays deterministic and testable.
///
/// # Panics
/// If `salt` is empty: such a line could not be read back (Mosquitto neither).
pub fn hash_password(password: &[u8], format: HashFormat, salt: &[u8]) -> String {
    assert!(!salt.is_empty(), "a password salt must not be empty");
    let hash = match format {
        HashFormat::Sha512 => sha512_digest(password, salt),
        HashFormat::Sha512Pbkdf2 { iterations } => pbkdf2_digest(password, salt, iterations),
    };
    let mut out = String::with_capacity(160);
    match format {
        HashFormat::Sha512 => out.push_str("$6$"),
        // Writing to a String cannot fail.
        HashFormat::Sha512Pbkdf2 { iterations } => {
            let _ = write!(out, "$7${iterations}$");
        }
    }
    STANDARD.encode_string(salt, &mut out);
    out.push('$');
    STANDARD.encode_string(hash, &mut out);
    out
}

/// A parsed password file: each username with its stored hash, and the lines that were
/// skipped.
#[derive(Debug, Default)]
pub struct PasswordFile {
    users: HashMap<String, StoredHash>,
    skipped: Vec<AuthError>,
}

#[derive(Debug, Clone)]
enum StoredHash {
    Sha512 {
        salt: Vec<u8>,
        hash: [u8; HASH_LEN],
    },
    Pbkdf2 {
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: [u8; HASH_LEN],
    },
}

impl PasswordFile {
    /// Parses the text of a password file, strictly: the first line that cannot be used
    /// is the error (for tools and tests; the broker uses [`PasswordFile::load`]).
    pub fn parse_str(text: &str) -> Result<PasswordFile, AuthError> {
        let mut file = PasswordFile::parse_lines(text);
        match file.skipped.is_empty() {
            true => Ok(file),
            false => Err(file.skipped.swap_remove(0)),
        }
    }

    /// Parses the text of a password file as Mosquitto does. See the module docs for what
    /// is accepted; lines that are not are left out and listed in
    /// [`PasswordFile::skipped`].
    pub fn parse_lines(text: &str) -> PasswordFile {
        let mut users = HashMap::new();
        let mut skipped = Vec::new();
        let mut first_lines: HashMap<&str, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((username, hash)) = line.split_once(':') else {
                skipped.push(AuthError::at(line_no, AuthErrorKind::MissingColon));
                continue;
            };
            let (username, hash) = (username.trim(), hash.trim());
            if username.is_empty() {
                skipped.push(AuthError::at(line_no, AuthErrorKind::EmptyUsername));
                continue;
            }
            if let Some(&first_line) = first_lines.get(username) {
                let kind = AuthErrorKind::DuplicateUser {
                    username: username.to_owned(),
                    first_line,
                };
                skipped.push(AuthError::at(line_no, kind));
                continue;
            }
            match parse_hash(username, hash) {
                Ok(stored) => {
                    first_lines.insert(username, line_no);
                    users.insert(username.to_owned(), stored);
                }
                Err(kind) => skipped.push(AuthError::at(line_no, kind)),
            }
        }
        PasswordFile { users, skipped }
    }

    /// Reads and parses the file at `path`. Only a file that cannot be read is an error;
    /// each skipped line is logged as a warning naming the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<PasswordFile, AuthError> {
        let path = path.as_ref();
        let mut file = PasswordFile::parse_lines(&read_file(path)?);
        for e in &mut file.skipped {
            e.file = Some(path.to_path_buf());
            log::warn!("Invalid line in password file {e}; the line is skipped.");
        }
        Ok(file)
    }

    /// The lines left out, each with its line number and what is wrong with it.
    pub fn skipped(&self) -> &[AuthError] {
        &self.skipped
    }

    /// Whether `password` is the password of `username`.
    ///
    /// `password` is the CONNECT packet's Password field. A CONNECT without one does not
    /// match anyone (Mosquitto answers `MOSQ_ERR_AUTH`): the caller answers `false`
    /// without calling this. Mosquitto hashes the password as a C string, up to a first
    /// NUL byte; culex hashes every byte, so such a password no longer matches by prefix.
    ///
    /// An empty password matches no one (see the module docs).
    pub fn check(&self, username: &str, password: &[u8]) -> bool {
        if password.is_empty() {
            return false;
        }
        let Some(stored) = self.users.get(username) else {
            return false;
        };
        let (computed, expected) = match stored {
            StoredHash::Sha512 { salt, hash } => (sha512_digest(password, salt), hash),
            StoredHash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => (pbkdf2_digest(password, salt, *iterations), hash),
        };
        bool::from(computed.ct_eq(expected))
    }

    /// Whether the file has a line for `username`.
    pub fn contains_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Parses the text after `username:`.
fn parse_hash(username: &str, hash: &str) -> Result<StoredHash, AuthErrorKind> {
    let malformed = |what| AuthErrorKind::MalformedHash {
        username: username.to_owned(),
        what,
    };
    if hash.is_empty() {
        return Err(AuthErrorKind::EmptyHash {
            username: username.to_owned(),
        });
    }
    if hash.starts_with("$argon2") {
        return Err(AuthErrorKind::Argon2idUnsupported {
            username: username.to_owned(),
        });
    }
    let Some(fields) = hash.strip_prefix('$') else {
        return Err(AuthErrorKind::PlaintextPassword {
            username: username.to_owned(),
        });
    };
    let mut fields = fields.split('$');
    let id = fields.next().unwrap_or_default();
    let iterations = match id {
        "6" => None,
        "7" => {
            let text = fields.next().unwrap_or_default();
            let n = text
                .parse::<NonZeroU32>()
                .map_err(|_| malformed("the iteration count is not a whole number from 1"))?;
            Some(n)
        }
        _ => {
            return Err(AuthErrorKind::UnknownHashType {
                username: username.to_owned(),
                id: id.to_owned(),
            })
        }
    };
    let (Some(salt_b64), Some(hash_b64), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(if id == "6" {
            "expected '$6$<salt>$<hash>'"
        } else {
            "expected '$7$<iterations>$<salt>$<hash>'"
        }));
    };
    let salt = STANDARD_PAD_INDIFFERENT
        .decode(salt_b64)
        .map_err(|_| malformed("the salt is not base64"))?;
    if salt.is_empty() {
        return Err(malformed("the salt is empty"));
    }
    let hash = STANDARD_PAD_INDIFFERENT
        .decode(hash_b64)
        .map_err(|_| malformed("the hash is not base64"))?;
    let hash: [u8; HASH_LEN] = hash
        .try_into()
        .map_err(|_| malformed("the hash is not 64 bytes long"))?;
    Ok(match iterations {
        None => StoredHash::Sha512 { salt, hash },
        Some(iterations) => StoredHash::Pbkdf2 {
            iterations,
            salt,
            hash,
        },
    })
}

fn sha512_digest(password: &[u8], salt: &[u8]) -> [u8; HASH_LEN] {
    Sha512::new()
        .chain_update(password)
        .chain_update(salt)
        .finalize()
        .into()
}

fn pbkdf2_digest(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; HASH_LEN] {
    pbkdf2::pbkdf2_hmac_array::<Sha512, HASH_LEN>(password, salt, iterations.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Debian 12's mosquitto_passwd 2.0.11:
    /// `mosquitto_passwd -b -c f alice 'correct horse'` (sha512-pbkdf2, 101 iterations).
    const ALICE: &str = "alice:$7$101$L76DfQmP0kceAglb$CwTTibhG8z/5hfwOK60UPBwthODzDP1UCTDbsm3PJ2XH8lNQcTHhDMaWrdFcLSUg47qbPUXZc1vGpmkq2Nf8VA==";
    /// `mosquitto_passwd -H sha512 -b f bob hunter2`.
    const BOB: &str = "bob:$6$qnYnrFJXLC7av0Nx$AZx0HKUPGvSWv0EjO2gSg7GsbHhUibgxCGjuGW7wowC5IEVh/tKfqpzwWVaPDEbeGxVdJNJJvEfbpvjRWTtohg==";
    /// `mosquitto_passwd -H sha512-pbkdf2 -I 1000 -b f carol 'pässwörd'` (UTF-8 bytes).
    const CAROL: &str = "carol:$7$1000$5xTEug7QlgY5kKVN$49Nme4Xxv2WTJDs1tp5QiByclw1Y11NsWm4IFSPE/L9+PThxU7rwGjdtHenF6zMtDyetJGdduwTNVz1JcTwHAA==";
    /// `mosquitto_passwd -b f empty ''`.
    const EMPTY: &str = "empty:$7$101$5pnPx//HVFUYREOH$irBBn7GD8c9Mrn0SIvmPi16hgSkfsgl7jBSU4sowCEurF2Q0XWHAWcU2jDodmHOAaUDoDFJFBMBUTPoV1xjEew==";
    /// Mosquitto 2.1's layout (64-byte salt, 1,000 iterations) for password `long salt`,
    /// salt bytes 0..64; computed with Python's `hashlib.pbkdf2_hmac('sha512', ...)`, as
    /// Debian's 2.0.11 cannot write (or read) it.
    const DAVE: &str = "dave:$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$n+V9SCsiO+gwA/qjdjQMMw7MwGYSwyA29DHs/gIKEAHGcxsim2Cn/dWUam7T2Rni4QEEwPvg22OiDMZDREfxaQ==";

    fn file(lines: &[&str]) -> PasswordFile {
        PasswordFile::parse_str(&lines.join("\n")).expect("a valid password file")
    }

    /// The one skipped line of `text` (the strict parse's error is that line).
    fn error_of(text: &str) -> AuthError {
        let mut file = PasswordFile::parse_lines(text);
        assert_eq!(file.skipped.len(), 1, "{:?}", file.skipped);
        let strict = PasswordFile::parse_str(text).expect_err("a malformed password file");
        assert_eq!(strict.to_string(), file.skipped[0].to_string());
        file.skipped.remove(0)
    }

    #[test]
    fn mosquitto_written_hashes_verify() {
        let pw = file(&[ALICE, BOB, CAROL, EMPTY, DAVE]);
        assert_eq!(pw.len(), 5);
        assert!(pw.check("alice", b"correct horse"));
        assert!(pw.check("bob", b"hunter2"));
        assert!(pw.check("carol", "pässwörd".as_bytes()));
        assert!(pw.contains_user("empty"));
        assert!(pw.check("dave", b"long salt"));
    }

    /// Mosquitto reads a zero-length Password as none, which matches no one, even a user
    /// whose hash is that of the empty password (suite test `09-pwfile-parse-invalid`).
    #[test]
    fn empty_password_matches_no_one() {
        let pw = file(&[ALICE, EMPTY]);
        assert!(!pw.check("empty", b""));
        assert!(!pw.check("alice", b""));
        assert!(!pw.check("empty", b"test"));
    }

    /// The lines of `09-pwfile-parse-invalid`: each bad line is skipped, and the good
    /// lines around it still log in, as with Mosquitto.
    #[test]
    fn a_bad_line_is_skipped_and_the_others_are_served() {
        const TEST: &str = "test:$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==";
        let bad_lines = [
            "bad:",
            "bad:bad",
            "bad:$",
            "bad:$6",
            "bad:$6$",
            "bad:$6$njERlZMi/7DzNB9E",
            "bad:$6$njERlZMi/7DzNB9E$",
            "bad:$5$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==",
            ":$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==",
            "bad:$6$njER{ZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==",
            "bad:$6$njERlZMi/7DzNB9E$iiavfuXv{}8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==",
        ];
        for bad in bad_lines {
            let pw = PasswordFile::parse_lines(&format!("{bad}\n{TEST}\n{BOB}\n"));
            assert_eq!(pw.len(), 2, "{bad}");
            assert!(pw.check("test", b"test"), "{bad}");
            assert!(pw.check("bob", b"hunter2"), "{bad}");
            assert!(!pw.contains_user("bad"), "{bad}");
            assert_eq!(pw.skipped().len(), 1, "{bad}");
            assert_eq!(pw.skipped()[0].line, 1, "{bad}");
        }
    }

    #[test]
    fn wrong_passwords_and_unknown_users_do_not_verify() {
        let pw = file(&[ALICE, BOB, CAROL, EMPTY, DAVE]);
        assert!(!pw.check("alice", b"correct horse "));
        assert!(!pw.check("alice", b"Correct horse"));
        assert!(!pw.check("alice", b""));
        assert!(!pw.check("bob", b"hunter"));
        assert!(!pw.check("bob", b"hunter2\0"));
        assert!(!pw.check("carol", b"passwort"));
        assert!(!pw.check("empty", b" "));
        assert!(!pw.check("dave", b"long sal"));
        // Another user's password, and usernames that are not in the file.
        assert!(!pw.check("alice", b"hunter2"));
        assert!(!pw.check("Alice", b"correct horse"));
        assert!(!pw.check("mallory", b"correct horse"));
        assert!(!pw.check("", b""));
    }

    #[test]
    fn round_trip_every_format() {
        let iterations = NonZeroU32::new(7).unwrap();
        let formats = [
            HashFormat::Sha512,
            HashFormat::Sha512Pbkdf2 { iterations },
            HashFormat::Sha512Pbkdf2 {
                iterations: DEFAULT_ITERATIONS,
            },
        ];
        for format in formats {
            for salt in [&[0xa5u8; SALT_LEN][..], &[0x5a; 64][..], &[1][..]] {
                for password in [&b"secret"[..], b"", "ünïcødé".as_bytes(), &[0xff, 0, 1]] {
                    let line = format!("u:{}", hash_password(password, format, salt));
                    let pw = PasswordFile::parse_str(&line).unwrap();
                    assert_eq!(pw.check("u", password), !password.is_empty(), "{line}");
                    assert!(!pw.check("u", b"other"), "{line}");
                }
            }
        }
    }

    #[test]
    fn hash_password_reproduces_mosquitto_lines() {
        // Same salt, same password, same format: the same bytes as mosquitto_passwd.
        let salt = STANDARD.decode("qnYnrFJXLC7av0Nx").unwrap();
        assert_eq!(
            format!(
                "bob:{}",
                hash_password(b"hunter2", HashFormat::Sha512, &salt)
            ),
            BOB
        );
        let salt = STANDARD.decode("L76DfQmP0kceAglb").unwrap();
        let format = HashFormat::Sha512Pbkdf2 {
            iterations: NonZeroU32::new(101).unwrap(),
        };
        assert_eq!(
            format!("alice:{}", hash_password(b"correct horse", format, &salt)),
            ALICE
        );
    }

    #[test]
    fn comments_blank_lines_blanks_and_crlf_are_accepted() {
        let text = format!("# users\n\n   \n  {ALICE}  \r\n\t{BOB}\r\n#bob:nothing\n");
        let pw = PasswordFile::parse_str(&text).unwrap();
        assert_eq!(pw.len(), 2);
        assert!(pw.check("alice", b"correct horse"));
        assert!(pw.check("bob", b"hunter2"));
        let spaced = ALICE.replacen(':', " : ", 1);
        assert!(file(&[&spaced]).check("alice", b"correct horse"));
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let unpadded = ALICE.trim_end_matches('=');
        assert!(file(&[unpadded]).check("alice", b"correct horse"));
    }

    #[test]
    fn empty_file_has_no_users() {
        assert!(PasswordFile::parse_str("").unwrap().is_empty());
        assert!(PasswordFile::parse_str("# nobody\n\n").unwrap().is_empty());
    }

    #[test]
    fn line_without_colon_is_malformed() {
        let e = error_of(&format!("{ALICE}\n\njust-a-name\n"));
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, AuthErrorKind::MissingColon));
    }

    #[test]
    fn empty_username_is_malformed() {
        let e = error_of(&format!("# x\n{}", &ALICE[5..]));
        assert_eq!(e.line, 2);
        assert!(matches!(e.kind, AuthErrorKind::EmptyUsername));
    }

    #[test]
    fn empty_hash_is_malformed() {
        let e = error_of("nobody:  ");
        assert_eq!(e.line, 1);
        assert!(
            matches!(e.kind, AuthErrorKind::EmptyHash { ref username } if username == "nobody")
        );
    }

    #[test]
    fn duplicate_user_keeps_the_first_line() {
        let text = format!("{ALICE}\n{BOB}\n{}", BOB.replace("bob", " alice"));
        assert!(PasswordFile::parse_lines(&text).check("alice", b"correct horse"));
        assert!(!PasswordFile::parse_lines(&text).check("alice", b"hunter2"));
        let e = error_of(&text);
        assert_eq!(e.line, 3);
        assert!(matches!(
            e.kind,
            AuthErrorKind::DuplicateUser { ref username, first_line: 1 } if username == "alice"
        ));
    }

    #[test]
    fn plaintext_password_is_refused() {
        let e = error_of(&format!("{BOB}\nplain:secret"));
        assert_eq!(e.line, 2);
        assert!(
            matches!(e.kind, AuthErrorKind::PlaintextPassword { ref username } if username == "plain")
        );
    }

    #[test]
    fn argon2id_is_refused() {
        let line = "eve:$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
        let e = error_of(&format!("{ALICE}\n{BOB}\n{line}"));
        assert_eq!(e.line, 3);
        assert!(
            matches!(e.kind, AuthErrorKind::Argon2idUnsupported { ref username } if username == "eve")
        );
    }

    #[test]
    fn unknown_hash_type_is_refused() {
        let e = error_of("x:$5$c2FsdA==$aGFzaA==");
        assert_eq!(e.line, 1);
        assert!(matches!(e.kind, AuthErrorKind::UnknownHashType { ref id, .. } if id == "5"));
        let e = error_of("x:$$");
        assert!(matches!(e.kind, AuthErrorKind::UnknownHashType { ref id, .. } if id.is_empty()));
    }

    /// Each damaged `$6$`/`$7$` hash, with the reason it reports.
    #[test]
    fn malformed_hashes_are_refused_with_their_line() {
        let (salt, hash) = {
            let fields: Vec<&str> = BOB.split('$').collect();
            (fields[2], fields[3])
        };
        let short_hash = STANDARD.encode([0u8; 63]);
        let cases = [
            (format!("u:$6${salt}"), "expected '$6$<salt>$<hash>'"),
            (
                format!("u:$6${salt}${hash}$"),
                "expected '$6$<salt>$<hash>'",
            ),
            (format!("u:$7${salt}${hash}"), "the iteration count"),
            (format!("u:$7$101${salt}"), "expected '$7$"),
            (format!("u:$7$0${salt}${hash}"), "the iteration count"),
            (format!("u:$7$-1${salt}${hash}"), "the iteration count"),
            (
                format!("u:$7$4294967296${salt}${hash}"),
                "the iteration count",
            ),
            (format!("u:$6$${hash}"), "the salt is empty"),
            (format!("u:$6$no*base64${hash}"), "the salt is not base64"),
            (format!("u:$6${salt}$!!!!"), "the hash is not base64"),
            (
                format!("u:$6${salt}${short_hash}"),
                "the hash is not 64 bytes",
            ),
            (
                format!("u:$7$101${salt}${salt}"),
                "the hash is not 64 bytes",
            ),
        ];
        for (line, reason) in cases {
            let e = error_of(&format!("# header\n{ALICE}\n{line}\n{BOB}"));
            assert_eq!(e.line, 3, "{line}");
            match e.kind {
                AuthErrorKind::MalformedHash { ref username, what } => {
                    assert_eq!(username, "u");
                    assert!(what.starts_with(reason), "{line}: {what}");
                }
                ref other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_read_as_file_line_and_advice() {
        let e = error_of("\nplain:secret").in_file(Path::new("/etc/culex/passwd"));
        assert_eq!(
            e.to_string(),
            "/etc/culex/passwd:2: user 'plain' has a plain-text password; Mosquitto built \
             with TLS refuses these too; hash the file with 'culex_passwd -U <file>'"
        );
        let e = error_of("u:$6$$x");
        assert_eq!(
            e.to_string(),
            "line 1: user 'u' has a damaged hash: the salt is empty; set the password again \
             with 'culex_passwd <file> u'"
        );
    }

    #[test]
    fn load_names_the_file_it_cannot_read() {
        let e = PasswordFile::load("/nonexistent/culex/passwd").unwrap_err();
        assert_eq!(e.line, 0);
        assert!(e
            .to_string()
            .starts_with("/nonexistent/culex/passwd: cannot read the file"));
    }

    #[test]
    fn hash_format_names_are_mosquitto_passwd_names() {
        let n = DEFAULT_ITERATIONS;
        assert_eq!(HashFormat::from_name("sha512", n), Some(HashFormat::Sha512));
        assert_eq!(
            HashFormat::from_name("sha512-pbkdf2", n),
            Some(HashFormat::Sha512Pbkdf2 { iterations: n })
        );
        assert_eq!(HashFormat::from_name("argon2id", n), None);
        assert_eq!(HashFormat::from_name("md5", n), None);
    }
}
