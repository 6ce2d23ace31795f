//! Fuzz target bodies, in the library so `cargo test` replays the seed corpus on stable
//! and `fuzz/` stays a thin wrapper (rustls `fuzz/fuzzers/message.rs`).

use super::{frame, Packet, ProtocolVersion};

/// Frames as many packets as `data` holds and decodes each in every protocol version.
/// Oracle: whatever decodes re-encodes to exactly `encoded_len` bytes, one whole frame,
/// that decodes to the same packet and encodes to the same bytes again.
pub fn fuzz_decode(data: &[u8]) {
    for version in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        // The raw input as one frame: exercises the length checks of `decode` itself.
        if let Ok(packet) = Packet::decode(data, version) {
            assert_round_trip(&packet, version);
        }
        let mut rest = data;
        while let Ok(Some(len)) = frame::check(rest, 1 << 20) {
            let Some((frame, tail)) = rest.split_at_checked(len) else {
                panic!("check returned {len} for a buffer of {} bytes", rest.len());
            };
            if let Ok(packet) = Packet::decode(frame, version) {
                assert_round_trip(&packet, version);
            }
            rest = tail;
        }
    }
}

fn assert_round_trip(packet: &Packet<'_>, version: ProtocolVersion) {
    let mut bytes = Vec::new();
    packet.encode(version, &mut bytes);
    assert_eq!(bytes.len(), packet.encoded_len(version), "{packet:?}");
    assert_eq!(frame::check(&bytes, usize::MAX), Ok(Some(bytes.len())));
    let decoded = Packet::decode(&bytes, version);
    assert_eq!(decoded.as_ref(), Ok(packet), "re-encoded as {bytes:02x?}");
    let mut again = Vec::new();
    packet.encode(version, &mut again);
    assert_eq!(again, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays every file of the cargo-fuzz seed corpus (and anything the fuzzer added
    /// there), so the oracle runs on stable.
    #[test]
    fn decode_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/decode");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).expect("fuzz/corpus/decode exists") {
            let path = entry.expect("readable corpus entry").path();
            let data = std::fs::read(&path).expect("readable corpus file");
            fuzz_decode(&data);
            replayed += 1;
        }
        assert!(replayed >= 10, "only {replayed} corpus files in {dir}");
    }

    /// The MQTT 5 seeds are valid MQTT 5 frames (but the one named "bad"), so the fuzzer
    /// starts from packets that get past the property decoder.
    #[test]
    fn v5_seeds_decode_in_mqtt5() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/decode");
        for entry in std::fs::read_dir(dir).expect("fuzz/corpus/decode exists") {
            let path = entry.expect("readable corpus entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("v5-") {
                continue;
            }
            let data = std::fs::read(&path).expect("readable corpus file");
            let mut rest = &data[..];
            let mut frames = 0;
            while let Ok(Some(len)) = frame::check(rest, 1 << 20) {
                let decoded = Packet::decode(&rest[..len], ProtocolVersion::V5);
                assert_eq!(
                    decoded.is_ok(),
                    !name.contains("bad"),
                    "{name}: {decoded:?}"
                );
                rest = &rest[len..];
                frames += 1;
            }
            assert!(rest.is_empty() && frames > 0, "{name} is whole frames");
        }
    }
}
