//! `culex_passwd`: manage a password file, as `mosquitto_passwd` does, with its flags.
//!
//! ```text
//! culex_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
//! culex_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
//! culex_passwd -U passwordfile
//! ```
//!
//! Lines are `username:$7$<iterations>$<salt>$<hash>` with a 12-byte salt from the OS RNG
//! and 1,000 iterations (Mosquitto 2.1's count; 2.0 reads them, 2.0's own default is 101),
//! so the file works with Mosquitto 2.0 and 2.1 too. A changed file is written to a
//! temporary file in the same directory, synced and renamed over the old one, so a power
//! cut leaves the old file or the new one; a new file gets mode 0600, an existing one
//! keeps its mode and owner. Like one from mosquitto_passwd, a new file is then readable
//! only by whoever ran the tool: a broker started as root that drops to user `mosquitto`
//! (Debian's) cannot open it until it is `chown`ed (seen with mosquitto 2.0.11: "Unable
//! to open pwfile").
//!
//! Differences from mosquitto_passwd: `-U` leaves lines that are already hashed alone
//! (mosquitto_passwd hashes the hash); comments and blank lines are kept; usernames that
//! the broker would read differently (surrounding blanks, a leading `#`) are refused.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroU32;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use culex::auth::password_file::{DEFAULT_ITERATIONS, SALT_LEN};
use culex::auth::{hash_password, HashFormat};
use getopts::{Options, ParsingStyle};

/// Longest username and password, as mosquitto_passwd (MQTT's two-byte lengths).
const MAX_FIELD_LEN: usize = 65_535;

fn usage() -> String {
    format!(
        "culex_passwd version {}\n\n\
         culex_passwd is a tool for managing password files for culex (and mosquitto).\n\n\
         Usage: culex_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username\n       \
         culex_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password\n       \
         culex_passwd -U passwordfile\n \
         -b : run in batch mode to allow passing passwords on the command line.\n \
         -c : create a new password file. This will overwrite existing files ('-' writes to stdout).\n \
         -D : delete the username rather than adding/updating its password.\n \
         -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.\n      \
         Mosquitto 1.6 and earlier defaulted to sha512. argon2id is not supported.\n \
         -I : PBKDF2 iterations for sha512-pbkdf2 (default {DEFAULT_ITERATIONS}).\n \
         -U : update a plain text password file to use hashed passwords.",
        env!("CARGO_PKG_VERSION")
    )
}

/// What the command line asks for.
enum Command {
    /// `-c`: a new file (or stdout for `-`) with one user.
    Create {
        user: String,
        password: Option<String>,
    },
    /// Add or replace one user's line.
    Update {
        user: String,
        password: Option<String>,
    },
    /// `-D`.
    Delete { user: String },
    /// `-U`.
    HashPlaintext,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        println!("{}", usage());
        return Err("no password file given.".into());
    }
    let mut opts = Options::new();
    // As mosquitto_passwd: flags first; whatever follows the file name is not a flag,
    // so a batch password may start with '-'.
    opts.parsing_style(ParsingStyle::StopAtFirstFree);
    opts.optflag("b", "", "batch mode");
    opts.optflag("c", "", "create");
    opts.optflag("D", "", "delete");
    opts.optflag("U", "", "update a plain text file");
    opts.optopt("H", "", "hash", "HASH");
    opts.optopt("I", "", "iterations", "N");
    opts.optflag("h", "help", "help");
    let m = opts
        .parse(&args)
        .map_err(|e| format!("{e}.\n\n{}", usage()))?;
    if m.opt_present("h") {
        println!("{}", usage());
        return Ok(());
    }
    let iterations = match m.opt_str("I") {
        None => DEFAULT_ITERATIONS,
        Some(n) => n
            .parse::<NonZeroU32>()
            .map_err(|_| format!("Number of iterations must be > 0 (got '{n}')."))?,
    };
    let format = match m.opt_str("H") {
        None => HashFormat::Sha512Pbkdf2 { iterations },
        Some(name) if name == "argon2id" => {
            return Err(
                "culex_passwd does not write argon2id hashes: culex does not verify \
                        them (46 MiB per check on the broker's one thread). Use \
                        -H sha512-pbkdf2."
                    .into(),
            )
        }
        Some(name) => HashFormat::from_name(&name, iterations)
            .ok_or_else(|| format!("Unknown hash type '{name}'."))?,
    };
    let (batch, create, delete, plain) = (
        m.opt_present("b"),
        m.opt_present("c"),
        m.opt_present("D"),
        m.opt_present("U"),
    );
    for (a, b, both) in [
        (create, delete, "-c and -D"),
        (create, plain, "-c and -U"),
        (delete, plain, "-D and -U"),
        (delete, batch, "-b and -D"),
    ] {
        if a && b {
            return Err(format!("{both} cannot be used together."));
        }
    }
    let free = &m.free;
    let expected = match (plain, batch) {
        (true, _) => 1,
        (false, true) => 3,
        (false, false) => 2,
    };
    if free.len() != expected {
        println!("{}", usage());
        return Err("wrong number of arguments.".into());
    }
    let file = PathBuf::from(&free[0]);
    let user = free.get(1).cloned();
    let password = free.get(2).cloned();
    if let Some(user) = &user {
        check_username(user)?;
    }
    if password.as_ref().is_some_and(|p| p.len() > MAX_FIELD_LEN) {
        return Err("Password must be less than 65536 characters long.".into());
    }
    let command = match user {
        None => Command::HashPlaintext,
        Some(user) if create => Command::Create { user, password },
        Some(user) if delete => Command::Delete { user },
        Some(user) => Command::Update { user, password },
    };
    execute(command, &file, format)
}

fn execute(command: Command, file: &Path, format: HashFormat) -> Result<(), String> {
    match command {
        Command::Create { user, password } => {
            let password = password_or_prompt(password)?;
            let text = format!("{user}:{}\n", new_hash(&password, format)?);
            if file == Path::new("-") {
                io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| format!("Unable to write to stdout: {e}."))
            } else {
                write_atomically(file, &text)
            }
        }
        Command::Update { user, password } => {
            let (lines, file) = read_lines(file)?;
            let password = password_or_prompt(password)?;
            let new_line = format!("{user}:{}", new_hash(&password, format)?);
            let mut found = false;
            let mut out = Vec::with_capacity(lines.len() + 1);
            for line in lines {
                if username_of(&line) == Some(user.as_str()) {
                    if !found {
                        out.push(new_line.clone());
                    }
                    found = true;
                } else {
                    out.push(line);
                }
            }
            if !found {
                out.push(new_line);
            }
            write_atomically(&file, &join_lines(&out))
        }
        Command::Delete { user } => {
            let (lines, file) = read_lines(file)?;
            let before = lines.len();
            let out: Vec<String> = lines
                .into_iter()
                .filter(|line| username_of(line) != Some(user.as_str()))
                .collect();
            if out.len() == before {
                return Err(format!("User {user} not found in password file."));
            }
            write_atomically(&file, &join_lines(&out))
        }
        Command::HashPlaintext => {
            let (lines, file) = read_lines(file)?;
            let mut out = Vec::with_capacity(lines.len());
            for line in lines {
                let Some((user, password)) = line.split_once(':') else {
                    out.push(line);
                    continue;
                };
                let (user, password) = (user.trim(), password.trim());
                if user.starts_with('#') {
                    out.push(line);
                } else if password.starts_with('$') {
                    eprintln!("Warning: user {user} already has a hashed password; left as it is.");
                    out.push(line);
                } else {
                    out.push(format!("{user}:{}", new_hash(password, format)?));
                }
            }
            write_atomically(&file, &join_lines(&out))
        }
    }
}

/// The username a line is for, or None for comments and blank lines.
fn username_of(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    trimmed.split_once(':').map(|(user, _)| user.trim())
}

fn join_lines(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// Reads an existing password file, resolving symbolic links (the rename must replace
/// the file, not the link). Refuses lines that are neither comments, blank nor `user:..`.
fn read_lines(file: &Path) -> Result<(Vec<String>, PathBuf), String> {
    let real = fs::canonicalize(file)
        .map_err(|e| format!("Unable to open password file {}: {e}.", file.display()))?;
    let text = fs::read_to_string(&real)
        .map_err(|e| format!("Unable to read password file {}: {e}.", file.display()))?;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            match trimmed.split_once(':') {
                Some((user, rest)) if !user.trim().is_empty() && !rest.trim().is_empty() => {}
                _ => {
                    return Err(format!(
                        "Corrupt password file at line {} of {}.",
                        index + 1,
                        file.display()
                    ))
                }
            }
        }
        lines.push(line.to_owned());
    }
    Ok((lines, real))
}

/// Refuses usernames the broker would not read back as written.
fn check_username(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("Username must not be empty.".into());
    }
    if user.len() > MAX_FIELD_LEN {
        return Err("Username must be less than 65536 characters long.".into());
    }
    if user.chars().any(char::is_control) {
        return Err("Username must not contain control characters.".into());
    }
    if user.contains(':') {
        return Err("Username must not contain the ':' character.".into());
    }
    if user.trim() != user {
        return Err("Username must not start or end with blanks (the broker trims them).".into());
    }
    if user.starts_with('#') {
        return Err("Username must not start with '#' (the line would be a comment).".into());
    }
    Ok(())
}

fn new_hash(password: &str, format: HashFormat) -> Result<String, String> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt).map_err(|e| format!("Unable to get random salt: {e}."))?;
    Ok(hash_password(password.as_bytes(), format, &salt))
}

/// The batch password, or one read from the terminal without echo (twice, to confirm);
/// from standard input, one line, if it is not a terminal.
fn password_or_prompt(batch: Option<String>) -> Result<String, String> {
    if let Some(password) = batch {
        return Ok(password);
    }
    let password = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| format!("Unable to read the password: {e}."))?;
        let second = rpassword::prompt_password("Reenter password: ")
            .map_err(|e| format!("Unable to read the password: {e}."))?;
        if first != second {
            return Err("Passwords do not match.".into());
        }
        first
    } else {
        eprintln!(
            "Warning: standard input is not a terminal; reading the password from its first \
             line, without confirmation."
        );
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("Unable to read the password: {e}."))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err("Empty password.".into());
    }
    if password.len() > MAX_FIELD_LEN {
        return Err("Password must be less than 65536 characters long.".into());
    }
    Ok(password)
}

/// Writes `text` to `file` through a temporary file in the same directory: write, fsync,
/// rename, fsync the directory. A new file is created with mode 0600; an existing one
/// keeps its mode, owner and group.
fn write_atomically(file: &Path, text: &str) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("Unable to {what} {}: {e}.", file.display());
    let existing = fs::metadata(file).ok();
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file
        .file_name()
        .ok_or_else(|| format!("{} is not a file name.", file.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".culex_passwd.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A leftover from a crashed run with the same pid would make create_new fail.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Some(meta) = &existing {
            std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid())).or_else(|e| {
                if meta.uid() == current_uid(&out) {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            out.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, file)?;
        // Make the rename durable; a directory that cannot be opened is not fatal.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        fail("write", e)
    })
}

/// The owner of a file we just created: our effective uid, without `unsafe`.
fn current_uid(file: &fs::File) -> u32 {
    file.metadata().map(|m| m.uid()).unwrap_or(u32::MAX)
}
