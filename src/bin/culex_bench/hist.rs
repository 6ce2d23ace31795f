//! A log-bucketed latency histogram in the spirit of HdrHistogram: exact below 256 ns,
//! then 128 linear sub-buckets per power of two, so a recorded value is off by at most
//! 1/128 (0.8 %) of itself. 7,424 `u64` counters cover the whole `u64` range; recording is
//! a shift and an add, with no allocation after `new`.

/// Sub-bucket bits: 2^7 = 128 sub-buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Values below this are their own bucket.
const EXACT_LIMIT: u64 = 2 << SUB_BITS;
/// Highest magnitude is 63 - SUB_BITS, whose buckets end at index (magnitude + 2) * 128.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_COUNT;

pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0 to 1.0): the upper end of the bucket holding the
    /// `ceil(q * count)`-th smallest value, capped at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_in_bucket(i).min(self.max);
            }
        }
        self.max
    }
}

fn index(v: u64) -> usize {
    if v < EXACT_LIMIT {
        return v as usize;
    }
    // v >= 256, so the magnitude is at least 1 and `sub` is in [128, 256).
    let magnitude = 63 - v.leading_zeros() - SUB_BITS;
    let sub = (v >> magnitude) as usize;
    magnitude as usize * SUB_COUNT + sub
}

fn highest_in_bucket(i: usize) -> u64 {
    if (i as u64) < EXACT_LIMIT {
        return i as u64;
    }
    let magnitude = (i / SUB_COUNT - 1) as u32;
    let sub = (i % SUB_COUNT + SUB_COUNT) as u64;
    (sub << magnitude) | ((1u64 << magnitude) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for v in 0..EXACT_LIMIT {
            assert_eq!(highest_in_bucket(index(v)), v);
        }
    }

    #[test]
    fn bucket_holds_its_values_within_one_percent() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            for x in [v, v + 1, v + v / 3, v * 2 - 1] {
                let top = highest_in_bucket(index(x));
                assert!(top >= x, "{x} above its bucket's top {top}");
                assert!((top - x) as f64 <= x as f64 / 128.0, "{x} -> {top}");
            }
            v *= 2;
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_one_to_thousand() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5);
        assert!((500_000..=504_000).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990_000..=998_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
    }
}
