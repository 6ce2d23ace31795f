//! Fuzz target body for the mosquitto.conf parser, in the library so `cargo test` replays
//! the seed corpus on stable and `fuzz/` stays a thin wrapper (as `protocol::fuzz`).

use super::{Config, Includes};
use std::path::{Path, PathBuf};

/// The input is a main file and, after the first NUL byte, the one file an `include_dir`
/// line finds (any directory name), so both the lexer's include path and every option
/// parser see fuzzed text. Oracles: nothing panics; an error names a line that exists in
/// the file it names; whatever parses answers every question start-up asks of it.
pub fn fuzz_config(data: &[u8]) {
    let (main, included) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], data.get(nul + 1..).unwrap_or_default()),
        None => (data, &[][..]),
    };
    let main = String::from_utf8_lossy(main);
    let included = String::from_utf8_lossy(included);
    let includes = OneFile(included.to_string());
    match Config::parse_with(&main, Path::new("main.conf"), &includes) {
        Ok(config) => {
            for e in config.unsupported().iter().chain(&config.warnings()) {
                assert!(!e.to_string().is_empty());
            }
            let _ = config.effective_listeners();
            let _ = config.is_local_only();
            let _ = config.has_default_listener();
            let _ = config.allows_anonymous();
        }
        Err(e) => {
            let lines = if e.file == Path::new("main.conf") {
                main.lines().count()
            } else {
                included.lines().count()
            };
            assert!(e.line <= lines, "{e} names line {} of {lines}", e.line);
            assert!(!e.to_string().is_empty());
        }
    }
}

/// An `include_dir` that finds one file, `DIR/fuzz.conf`, with the fuzzed text.
struct OneFile(String);

impl Includes for OneFile {
    fn conf_files(&self, dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        Ok(vec![(dir.join("fuzz.conf"), self.0.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays every file of the cargo-fuzz seed corpus (and anything the fuzzer added
    /// there), so the oracle runs on stable.
    #[test]
    fn config_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/config");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).expect("fuzz/corpus/config exists") {
            let path = entry.expect("readable corpus entry").path();
            fuzz_config(&std::fs::read(&path).expect("readable corpus file"));
            replayed += 1;
        }
        assert!(replayed >= 5, "only {replayed} corpus files in {dir}");
    }

    /// The shipped example configuration is a seed, and it parses: the fuzzer starts from
    /// text that reaches the option parsers, not only the lexer.
    #[test]
    fn shipped_configuration_is_a_seed_that_parses() {
        let root = env!("CARGO_MANIFEST_DIR");
        let seed = std::fs::read(format!("{root}/fuzz/corpus/config/culex.conf"))
            .expect("the seed copy of conf/culex.conf");
        let shipped = std::fs::read(format!("{root}/conf/culex.conf")).expect("conf/culex.conf");
        assert_eq!(
            seed, shipped,
            "fuzz/corpus/config/culex.conf is out of date"
        );
        let text = String::from_utf8(seed).expect("UTF-8");
        Config::parse_str(&text, Path::new("culex.conf")).expect("conf/culex.conf parses");
    }
}
