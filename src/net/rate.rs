//! `max_connection_rate N` (a culex option; Mosquitto has none): new connections accepted
//! per second from one IP address, with a burst of N. A device in a reconnect loop, or a
//! host opening sockets as fast as it can, is refused at accept and costs a close, not a
//! session; clients from other addresses are not affected.
//!
//! One token bucket per address, refilled continuously at N per second up to N. A bucket
//! that is full again carries no information (a missing bucket is a full one), so when
//! the table reaches [`MAX_TRACKED`] addresses the full ones are dropped; if every bucket
//! is still in use, the table is full and further addresses are admitted untracked until
//! some refill (a table bounded in memory beats a limit that cannot be evaded by a host
//! with more than [`MAX_TRACKED`] addresses; docs/SECURITY.md says so).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Addresses tracked at once: 4,096 buckets of 32 bytes and their keys, under 256 KB.
pub const MAX_TRACKED: usize = 4_096;

#[derive(Debug)]
pub(super) struct ConnectionRate {
    /// Tokens per second, and the bucket's size.
    per_second: u32,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ConnectionRate {
    /// `per_second` must be at least 1.
    pub fn new(per_second: u32) -> ConnectionRate {
        ConnectionRate {
            per_second: per_second.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Whether a new connection from `ip` may be accepted at `now`; takes a token if so.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        let rate = f64::from(self.per_second);
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_TRACKED {
            self.buckets.retain(|_, b| refilled(b, now, rate) < rate);
            if self.buckets.len() >= MAX_TRACKED {
                return true;
            }
        }
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

fn refilled(bucket: &Bucket, now: Instant, rate: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_burst_of_n_then_n_per_second() {
        let t0 = Instant::now();
        let mut rate = ConnectionRate::new(3);
        assert!((0..3).all(|_| rate.admit(A, t0)));
        assert!(!rate.admit(A, t0), "a fourth at once is refused");
        assert!(rate.admit(B, t0), "another address has its own bucket");
        assert!(!rate.admit(A, t0 + Duration::from_millis(300)));
        assert!(
            rate.admit(A, t0 + Duration::from_millis(340)),
            "one token per 333 ms"
        );
        assert!(!rate.admit(A, t0 + Duration::from_millis(350)));
        let later = t0 + Duration::from_secs(10);
        assert!(
            (0..3).all(|_| rate.admit(A, later)),
            "refilled up to 3, no more"
        );
        assert!(!rate.admit(A, later));
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_full_buckets() {
        let t0 = Instant::now();
        let mut rate = ConnectionRate::new(1);
        let ip = |i: usize| IpAddr::V6(std::net::Ipv6Addr::from(i as u128));
        for i in 0..MAX_TRACKED {
            assert!(rate.admit(ip(i), t0));
        }
        assert_eq!(rate.tracked(), MAX_TRACKED);
        // Every bucket is empty: a new address is admitted untracked.
        assert!(rate.admit(ip(MAX_TRACKED), t0));
        assert_eq!(rate.tracked(), MAX_TRACKED);
        // A second later all are full again and are forgotten to make room.
        let t1 = t0 + Duration::from_secs(1);
        assert!(rate.admit(ip(MAX_TRACKED + 1), t1));
        assert_eq!(rate.tracked(), 1);
        assert!(!rate.admit(ip(MAX_TRACKED + 1), t1));
    }
}
