//! Topic names, topic filters, the subscription tree and the retained-message tree.
//! Pure data structures: no I/O, no clock, no knowledge of sessions or ACLs. [MQTT-4.7]

mod retained;
mod tree;

pub use retained::RetainedTree;
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
