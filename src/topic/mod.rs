//! Topic names, topic filters, the subscription tree and the retained-message tree.
//! Pure data structures: no I/O, no clock, no knowledge of sessions or ACLs. [MQTT-4.7]
//!
//! # Filters, by example
//!
//! Levels are separated by `/` and may be empty; `+` matches exactly one level (an empty
//! one too), `#` matches any number of levels, zero included, so it also matches the
//! parent level. A filter starting with a wildcard never matches a name starting with `$`.
//!
//! ```
//! use culex::topic::{is_valid_filter, matches};
//!
//! // Valid filters.
//! for filter in ["a/b/c", "a/+/c", "+/b/c", "a/#", "#", "+", "+/+", "/+", "a//b", "$SYS/#"] {
//!     assert!(is_valid_filter(filter), "{filter}");
//! }
//! // Invalid filters: empty, `#` not alone or not last, `+` not alone in its level.
//! for filter in ["", "a/b#", "a/#/c", "#/a", "a+", "a/+b/c", "++", "##"] {
//!     assert!(!is_valid_filter(filter), "{filter}");
//! }
//! // Valid, matching.
//! assert!(matches("a/#", "a/b/c"));
//! assert!(matches("a/#", "a")); // `#` matches the parent level [MQTT-4.7.1-2]
//! assert!(matches("a/+", "a/")); // `+` matches an empty level
//! assert!(matches("+/+", "/")); // two empty levels
//! assert!(matches("$SYS/#", "$SYS/broker/uptime"));
//! // Valid, but not matching.
//! assert!(!matches("a/+", "a")); // `+` needs a level to match
//! assert!(!matches("a/+", "a/b/c")); // ... and exactly one
//! assert!(!matches("+", "/a")); // "/a" has two levels, "" and "a"
//! assert!(!matches("a//b", "a/b")); // an empty level is a level
//! assert!(!matches("a/b", "A/b")); // case-sensitive
//! assert!(!matches("#", "$SYS/broker/uptime")); // [MQTT-4.7.2-1]
//! assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
//! ```

mod retained;
mod shared;
mod tree;

pub use retained::{Named, RetainedTree};
pub use shared::{parse_shared, SharedSubscriptions};
pub use tree::SubscriptionTree;

/// A valid topic name: non-empty, no `+` or `#`. [MQTT-4.7.3-1] [MQTT-3.3.2-2]
/// (UTF-8 validity and U+0000 are the codec's checks.)
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.bytes().any(|b| b == b'+' || b == b'#')
}

/// A valid topic filter: non-empty; `#` only alone in the last level; `+` only alone in
/// a level. [MQTT-4.7.1-2] [MQTT-4.7.1-3]
pub fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if is_last => {}
            _ if level.bytes().any(|b| b == b'+' || b == b'#') => return false,
            _ => {}
        }
    }
    true
}

/// The reference matcher: does `filter` match `name`? Both must be valid. A name starting
/// with `$` is not matched by a filter starting with a wildcard. [MQTT-4.7.2-1]
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut names = name.split('/');
    for level in filter.split('/') {
        match (level, names.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (l, Some(n)) if l == n => {}
            _ => return false,
        }
    }
    names.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (filter, name, matches): the cases both trees are checked against too.
    pub(super) const CASES: &[(&str, &str, bool)] = &[
        ("a/b/c", "a/b/c", true),
        ("a/b/c", "a/b", false),
        ("a/b", "a/b/c", false),
        ("A", "a", false),
        ("a/+/c", "a/b/c", true),
        ("+/b/c", "a/b/c", true),
        ("a/b/+", "a/b/c", true),
        ("a/+", "a/b/c", false),
        ("+/+/+", "a/b", false),
        ("a/#", "a/b/c", true),
        // `#` matches the parent level. [MQTT-4.7.1-2]
        ("a/#", "a", true),
        ("a/b/#", "a/b", true),
        ("a/#", "ab", false),
        ("a/b/#", "a/bc", false),
        ("a/+/#", "a/b", true),
        ("a/+/#", "a", false),
        ("#", "a", true),
        ("#", "/", true),
        ("#", "a//", true),
        // `+` matches an empty level, at either end or in the middle.
        ("+", "a", true),
        ("+", "/a", false),
        ("+/+", "/", true),
        ("+/+", "a", false),
        ("+/+", "/a", true),
        ("/+", "/", true),
        ("+/a", "/a", true),
        ("a/+", "a/", true),
        ("a/+", "a", false),
        ("/#", "/a", true),
        ("a//b", "a//b", true),
        ("a//b", "a/b", false),
        ("a/+/b", "a//b", true),
        ("a/", "a/", true),
        ("a/", "a", false),
        ("/a", "a", false),
        ("a/#", "a/", true),
        // A wildcard first level does not match a `$` name. [MQTT-4.7.2-1]
        ("#", "$SYS/broker/uptime", false),
        ("+/broker/uptime", "$SYS/broker/uptime", false),
        ("+/#", "$SYS", false),
        ("+", "$SYS", false),
        ("$SYS/#", "$SYS/broker/uptime", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/+/uptime", "$SYS/broker/uptime", true),
        ("$SYS", "$SYS", true),
        ("#", "a/$SYS", true),
        ("+/$SYS", "a/$SYS", true),
        ("+/+", "$x/a", false),
        ("$x/+", "$x/a", true),
    ];

    /// splitmix64: enough for generated topics, no crate needed.
    pub(super) struct Rng(u64);

    impl Rng {
        pub(super) fn new(seed: u64) -> Self {
            Rng(seed)
        }

        pub(super) fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(super) fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        fn topic(&mut self, alphabet: &[&str]) -> String {
            let levels = 1 + self.below(4);
            let picked: Vec<&str> = (0..levels)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect();
            picked.join("/")
        }

        /// A valid filter of 1 to 4 levels over a small alphabet, so that matches are common.
        pub(super) fn filter(&mut self) -> String {
            loop {
                let filter = self.topic(&["", "a", "b", "$SYS", "+", "+", "#"]);
                if is_valid_filter(&filter) {
                    return filter;
                }
            }
        }

        /// A valid name of 1 to 4 levels over the same alphabet.
        pub(super) fn name(&mut self) -> String {
            loop {
                let name = self.topic(&["", "a", "b", "$SYS"]);
                if is_valid_name(&name) {
                    return name;
                }
            }
        }
    }

    #[test]
    fn reference_matcher_agrees_with_the_table() {
        for &(filter, name, expected) in CASES {
            assert!(is_valid_filter(filter), "{filter}");
            assert!(is_valid_name(name), "{name}");
            assert_eq!(matches(filter, name), expected, "{filter} vs {name}");
        }
    }
}
