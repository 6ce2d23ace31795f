//! mosquitto.conf lines: `name value`, `#` comments, `include_dir`.
//!
//! Mosquitto's reader (`config__read_file_core`) takes a line as a comment when its first
//! character is `#`; a `#` anywhere else is part of the value (`topic # both` bridges
//! everything, a password may contain `#`). culex also takes a `#` after leading blanks as
//! a comment, where Mosquitto would report an unknown option `#`. The option name ends at
//! the first blank (space or tab); the value is the rest of the line without its leading
//! and trailing blanks, so paths and `topic` lines keep their inner spaces. Options that
//! take single words split the value themselves (see `defs.rs`).
//!
//! `include_dir DIR` (main file only, as Mosquitto: an `include_dir` in an included file is
//! reported and skipped) reads the files of DIR ending in `.conf`, in byte order (uppercase
//! before lowercase, as Mosquitto's case-sensitive sort), in place of the line. Reading
//! directories goes through [`Includes`], so the lexer itself needs no file system.

use super::{ConfigError, ErrorKind, Location};
use std::path::{Path, PathBuf};

/// One option line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub at: Location,
    pub name: String,
    pub value: String,
    /// 0 for the main file, 1 for a file read through `include_dir`.
    pub depth: u8,
}

/// Where `include_dir` finds its files.
pub trait Includes {
    /// The files of `dir` whose names end in `.conf`, sorted by name (bytes), each with its
    /// text; or why the directory cannot be read.
    fn conf_files(&self, dir: &Path) -> Result<Vec<(PathBuf, String)>, String>;
}

/// The real file system ([`super::Config::load`]).
pub struct FileSystem;

impl Includes for FileSystem {
    fn conf_files(&self, dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let is_conf = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".conf"));
            if is_conf && !path.is_dir() {
                paths.push(path);
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|p| match std::fs::read_to_string(&p) {
                Ok(text) => Ok((p, text)),
                Err(e) => Err(format!("{}: {e}", p.display())),
            })
            .collect()
    }
}

/// No file system: `include_dir` is an error ([`super::Config::parse_str`]).
pub struct NoIncludes;

impl Includes for NoIncludes {
    fn conf_files(&self, _dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        Err("include_dir needs the file system; this text was parsed without one".into())
    }
}

/// Splits `text` (read from `file`) into option lines, expanding `include_dir` at depth 0.
pub(crate) fn lex(
    text: &str,
    file: &Path,
    depth: u8,
    includes: &dyn Includes,
) -> Result<Vec<Line>, ConfigError> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = Location {
            file: file.to_path_buf(),
            line: index + 1,
        };
        let (name, value) = match trimmed.split_once([' ', '\t']) {
            Some((n, v)) => (n, v.trim_matches([' ', '\t'])),
            None => (trimmed, ""),
        };
        let line = Line {
            at: at.clone(),
            name: name.to_string(),
            value: value.to_string(),
            depth,
        };
        let expand = name == "include_dir" && depth == 0;
        lines.push(line);
        if !expand {
            continue;
        }
        if value.is_empty() {
            return Err(at.error(ErrorKind::MissingValue("include_dir".into())));
        }
        let files = includes.conf_files(Path::new(value)).map_err(|why| {
            at.error(ErrorKind::Invalid(
                "include_dir".into(),
                format!("cannot read directory '{value}': {why}"),
            ))
        })?;
        for (path, text) in files {
            lines.extend(lex(&text, &path, depth + 1, includes)?);
        }
    }
    Ok(lines)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Directories in memory for tests: dir -> [(file, text)], already sorted.
    #[derive(Default)]
    pub struct MemIncludes(pub HashMap<PathBuf, Vec<(PathBuf, String)>>);

    impl Includes for MemIncludes {
        fn conf_files(&self, dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
            self.0
                .get(dir)
                .cloned()
                .ok_or_else(|| "No such file or directory".into())
        }
    }

    fn names(lines: &[Line]) -> Vec<(String, String, usize)> {
        lines
            .iter()
            .map(|l| (l.name.clone(), l.value.clone(), l.at.line))
            .collect()
    }

    #[test]
    fn comments_blank_lines_and_trailing_blanks_are_skipped() {
        let text =
            "# comment\n\n   \n  # indented comment\nport 1883  \r\n\tmax_queued_messages\t7\n";
        let lines = lex(text, Path::new("a.conf"), 0, &NoIncludes).unwrap();
        assert_eq!(
            names(&lines),
            vec![
                ("port".into(), "1883".into(), 5),
                ("max_queued_messages".into(), "7".into(), 6)
            ]
        );
    }

    #[test]
    fn a_hash_inside_a_line_is_part_of_the_value() {
        let lines = lex(
            "topic # both 0\npassword_file /etc/my pass#1\n",
            Path::new("a.conf"),
            0,
            &NoIncludes,
        )
        .unwrap();
        assert_eq!(lines[0].value, "# both 0");
        assert_eq!(lines[1].value, "/etc/my pass#1");
    }

    #[test]
    fn include_dir_reads_conf_files_in_place_and_keeps_their_names() {
        let mut inc = MemIncludes::default();
        inc.0.insert(
            PathBuf::from("/etc/culex/conf.d"),
            vec![
                (
                    PathBuf::from("/etc/culex/conf.d/A.conf"),
                    "sys_interval 3\n".into(),
                ),
                (
                    PathBuf::from("/etc/culex/conf.d/b.conf"),
                    "\nmax_keepalive 9\ninclude_dir /nested\n".into(),
                ),
            ],
        );
        let text = "port 1\ninclude_dir /etc/culex/conf.d\nport 2\n";
        let lines = lex(text, Path::new("main.conf"), 0, &inc).unwrap();
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.at.to_string(), l.name.as_str(), l.depth))
            .collect();
        assert_eq!(
            got,
            vec![
                ("main.conf:1".into(), "port", 0),
                ("main.conf:2".into(), "include_dir", 0),
                ("/etc/culex/conf.d/A.conf:1".into(), "sys_interval", 1),
                ("/etc/culex/conf.d/b.conf:2".into(), "max_keepalive", 1),
                ("/etc/culex/conf.d/b.conf:3".into(), "include_dir", 1),
                ("main.conf:3".into(), "port", 0),
            ]
        );
    }

    #[test]
    fn an_unreadable_include_dir_names_the_line() {
        let e = lex(
            "\ninclude_dir /nope\n",
            Path::new("m.conf"),
            0,
            &MemIncludes::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.conf:2: invalid value for 'include_dir': cannot read directory '/nope': No such file or directory"
        );
        let e = lex("include_dir\n", Path::new("m.conf"), 0, &NoIncludes).unwrap_err();
        assert_eq!(e.to_string(), "m.conf:1: 'include_dir' needs a value");
    }

    #[test]
    fn file_system_include_dir_takes_only_conf_files_sorted() {
        let dir = std::env::temp_dir().join(format!("culex-include-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.conf"), "max_keepalive 5\n").unwrap();
        std::fs::write(dir.join("B.conf"), "sys_interval 5\n").unwrap();
        std::fs::write(dir.join("a.conf.bak"), "bogus\n").unwrap();
        let files = FileSystem.conf_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<_> = files
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["B.conf", "b.conf"]);
    }
}
