//! What every benchmark message carries, so the receiving side can tell lost, duplicated
//! and late messages apart: the publisher's id, its sequence number and the time it was
//! written, little-endian at the start of the payload, zero padding after.
//!
//! `[0..4]` publisher id, `[4..12]` sequence number (from 0), `[12..20]` send time in
//! nanoseconds since the tool started.

pub const MIN_PAYLOAD: usize = 20;

pub struct Stamp {
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

pub fn write(buf: &mut [u8], publisher: u32, seq: u64, sent_ns: u64) {
    buf[0..4].copy_from_slice(&publisher.to_le_bytes());
    buf[4..12].copy_from_slice(&seq.to_le_bytes());
    buf[12..20].copy_from_slice(&sent_ns.to_le_bytes());
}

/// `None` if the payload is too short to be one of ours.
pub fn read(payload: &[u8]) -> Option<Stamp> {
    let publisher = u32::from_le_bytes(payload.get(0..4)?.try_into().ok()?);
    let seq = u64::from_le_bytes(payload.get(4..12)?.try_into().ok()?);
    let sent_ns = u64::from_le_bytes(payload.get(12..20)?.try_into().ok()?);
    Some(Stamp {
        publisher,
        seq,
        sent_ns,
    })
}

/// The sequence numbers one subscriber has seen from one publisher: a bitmap, so a
/// duplicate is recognised exactly even when messages arrive out of order.
#[derive(Default)]
pub struct SeqSet {
    bits: Vec<u64>,
    pub unique: u64,
    pub dup: u64,
}

impl SeqSet {
    /// Records `seq`; false if it had been seen before.
    pub fn insert(&mut self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize((word + 1).max(self.bits.len() * 2), 0);
        }
        let mask = 1u64 << (seq % 64);
        if self.bits[word] & mask != 0 {
            self.dup += 1;
            return false;
        }
        self.bits[word] |= mask;
        self.unique += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let mut buf = [0xa5u8; 64];
        write(&mut buf, 7, 123_456_789_012, 42);
        let s = read(&buf).unwrap();
        assert_eq!((s.publisher, s.seq, s.sent_ns), (7, 123_456_789_012, 42));
        assert!(read(&buf[..19]).is_none());
    }

    #[test]
    fn seq_set_counts_duplicates_out_of_order() {
        let mut s = SeqSet::default();
        for seq in [5, 0, 1000, 5, 3, 0] {
            s.insert(seq);
        }
        assert_eq!((s.unique, s.dup), (4, 2));
    }
}
