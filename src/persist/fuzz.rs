//! The journal-reader fuzz target's body, in the library so `cargo test` replays its seed
//! corpus on stable (as `protocol::fuzz` does for the decoder).

use super::record::{decode, decode_header, encode, resync, HEADER_LEN};
use super::replay::State;
use std::time::{Instant, SystemTime};

/// Reads arbitrary bytes as a journal or snapshot file, as start-up does: the header is
/// checked, records are decoded and replayed, resynchronising after damage. Nothing may panic,
/// and every record that decodes must encode back to the same bytes.
/// Returns how many records decoded.
pub fn fuzz_journal(data: &[u8]) -> usize {
    let body = match decode_header(data) {
        Ok(_) => data.get(HEADER_LEN..).unwrap_or_default(),
        // Headerless input still exercises the record decoder.
        Err(_) => data,
    };
    let mut state = State::new(SystemTime::UNIX_EPOCH, Instant::now());
    let mut rest = body;
    let mut count = 0;
    while let Ok(Some((record, n))) = decode(rest) {
        count += 1;
        let mut again = Vec::new();
        encode(&record, &mut again);
        assert_eq!(again, rest[..n], "a decoded record re-encodes to its bytes");
        state.apply(&record);
        rest = &rest[n..];
    }
    let _ = state.describe();
    // Recovery as start-up does it: past every damaged stretch to the next record. It
    // must end, and every record it goes on at must decode.
    let mut at = body.len() - rest.len();
    let mut resyncs = 0;
    while let Some((next, _)) = resync(body, at) {
        assert!(next > at, "resync moves forward");
        let mut tail = &body[next..];
        while let Ok(Some((record, n))) = decode(tail) {
            state.apply(&record);
            tail = &tail[n..];
        }
        at = body.len() - tail.len();
        resyncs += 1;
        if tail.is_empty() || resyncs > body.len() {
            break;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    /// Replays every file of the cargo-fuzz seed corpus (and anything the fuzzer added).
    #[test]
    fn journal_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/journal");
        let mut replayed = 0;
        let mut records = 0;
        for entry in std::fs::read_dir(dir).expect("fuzz/corpus/journal exists") {
            let path = entry.expect("readable corpus entry").path();
            let data = std::fs::read(&path).expect("readable corpus file");
            records += super::fuzz_journal(&data);
            replayed += 1;
        }
        assert!(replayed >= 4, "only {replayed} corpus files in {dir}");
        // The seeds are in the current format (a format change must renew them).
        assert!(
            records >= 30,
            "only {records} records decode from the seeds"
        );
    }
}
