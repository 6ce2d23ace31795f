//! Shared subscriptions: `$share/{ShareName}/{filter}` [MQTT-4.8.2]. Each (share name,
//! filter) pair is a group; a message matching the filter goes to one member of each
//! matching group, chosen round robin among the members the caller considers able to
//! take it (online ones, say). Mosquitto accepts `$share/` from MQTT 3.1.1 clients too.

use super::SubscriptionTree;
use crate::slab::Slab;
use std::collections::HashMap;

/// Splits `$share/{ShareName}/{filter}` into share name and filter; `None` if `filter`
/// is not a shared subscription or is malformed ([MQTT-4.8.2-1]: a non-empty share name
/// without `/`, `+` or `#`, followed by a filter).
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (name, filter) = rest.split_once('/')?;
    if name.is_empty() || name.contains(['+', '#']) || filter.is_empty() {
        return None;
    }
    Some((name, filter))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GroupId(u32);

struct Group<K, V> {
    name: Box<str>,
    filter: Box<str>,
    members: Vec<(K, V)>,
    /// Where the next round-robin search starts.
    cursor: usize,
}

/// All shared-subscription groups.
pub struct SharedSubscriptions<K, V> {
    tree: SubscriptionTree<GroupId, ()>,
    groups: Slab<Group<K, V>>,
    by_name: HashMap<(Box<str>, Box<str>), GroupId>,
    len: usize,
    /// Scratch for the groups matching one topic.
    matched: Vec<GroupId>,
}

impl<K: Copy + Eq, V> Default for SharedSubscriptions<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq, V> SharedSubscriptions<K, V> {
    pub fn new() -> Self {
        SharedSubscriptions {
            tree: SubscriptionTree::new(),
            groups: Slab::new(),
            by_name: HashMap::new(),
            len: 0,
            matched: Vec::new(),
        }
    }

    /// Adds `member` to group (`name`, `filter`), or replaces its value there.
    pub fn subscribe(&mut self, name: &str, filter: &str, member: K, value: V) -> Option<V> {
        let key = (Box::<str>::from(name), Box::<str>::from(filter));
        let id = match self.by_name.get(&key) {
            Some(id) => *id,
            None => {
                let group = Group {
                    name: key.0.clone(),
                    filter: key.1.clone(),
                    members: Vec::new(),
                    cursor: 0,
                };
                let id = GroupId(self.groups.insert(group));
                self.tree.subscribe(filter, id, ());
                self.by_name.insert(key, id);
                id
            }
        };
        let group = self
            .groups
            .get_mut(id.0)
            .expect("by_name names live groups");
        match group.members.iter_mut().find(|(k, _)| *k == member) {
            Some(entry) => Some(std::mem::replace(&mut entry.1, value)),
            None => {
                group.members.push((member, value));
                self.len += 1;
                None
            }
        }
    }

    /// Removes `member` from the group; a group left empty is removed.
    pub fn unsubscribe(&mut self, name: &str, filter: &str, member: K) -> Option<V> {
        let key = (Box::<str>::from(name), Box::<str>::from(filter));
        let id = *self.by_name.get(&key)?;
        let group = self.groups.get_mut(id.0)?;
        let pos = group.members.iter().position(|(k, _)| *k == member)?;
        let (_, value) = group.members.remove(pos);
        self.len -= 1;
        if group.members.is_empty() {
            self.groups.remove(id.0);
            self.by_name.remove(&key);
            self.tree.unsubscribe(filter, id);
        } else if group.cursor > pos {
            group.cursor -= 1;
        }
        Some(value)
    }

    /// For every group whose filter matches `topic`, calls `deliver` with one member:
    /// the next one, round robin, for which `can_take` is true; if none can, the next one
    /// regardless (its session queues the message, as Mosquitto does).
    pub fn for_each_match(
        &mut self,
        topic: &str,
        mut can_take: impl FnMut(K) -> bool,
        mut deliver: impl FnMut(K, &V),
    ) {
        let mut matched = std::mem::take(&mut self.matched);
        self.tree.for_each_match(topic, |id, _| matched.push(id));
        for id in matched.drain(..) {
            let Some(group) = self.groups.get_mut(id.0) else {
                continue;
            };
            let n = group.members.len();
            let start = group.cursor % n;
            let chosen = (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| can_take(group.members[i].0))
                .unwrap_or(start);
            group.cursor = (chosen + 1) % n;
            let (member, value) = &group.members[chosen];
            deliver(*member, value);
        }
        self.matched = matched;
    }

    /// Number of (group, member) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Names and filters of the groups, for diagnostics.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.groups
            .iter()
            .map(|(_, g)| (&*g.name, &*g.filter, g.members.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_are_split_into_name_and_filter() {
        assert_eq!(parse_shared("$share/g/a/+"), Some(("g", "a/+")));
        assert_eq!(parse_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(parse_shared("$share/g"), None);
        assert_eq!(parse_shared("$share//a"), None);
        assert_eq!(parse_shared("$share/g+/a"), None);
        assert_eq!(parse_shared("$share/g/"), None);
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$sharex/g/a"), None);
    }

    #[test]
    fn each_message_goes_to_one_member_per_group_round_robin() {
        let mut s = SharedSubscriptions::new();
        for m in [1, 2, 3] {
            s.subscribe("g", "t/+", m, ());
        }
        s.subscribe("h", "t/#", 9, ());
        let mut got = Vec::new();
        for _ in 0..6 {
            s.for_each_match("t/x", |_| true, |m, _| got.push(m));
        }
        let g: Vec<_> = got.iter().copied().filter(|m| *m != 9).collect();
        assert_eq!(g, [1, 2, 3, 1, 2, 3]);
        assert_eq!(got.iter().filter(|m| **m == 9).count(), 6);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn members_that_cannot_take_a_message_are_skipped() {
        let mut s = SharedSubscriptions::new();
        for m in [1, 2, 3] {
            s.subscribe("g", "t", m, ());
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            s.for_each_match("t", |m| m != 2, |m, _| got.push(m));
        }
        assert_eq!(got, [1, 3, 1, 3]);
        let mut got = Vec::new();
        s.for_each_match("t", |_| false, |m, _| got.push(m));
        assert_eq!(
            got.len(),
            1,
            "with nobody able to take it, one member still gets it"
        );
    }

    #[test]
    fn unsubscribing_the_last_member_removes_the_group() {
        let mut s = SharedSubscriptions::new();
        s.subscribe("g", "t", 1, 0u8);
        assert_eq!(
            s.subscribe("g", "t", 1, 2u8),
            Some(0),
            "resubscribing replaces"
        );
        s.subscribe("g", "t", 2, 0u8);
        assert_eq!(s.unsubscribe("g", "t", 1), Some(2));
        assert_eq!(s.unsubscribe("g", "t", 1), None);
        assert_eq!(s.unsubscribe("g", "t", 2), Some(0));
        assert!(s.is_empty());
        assert_eq!(s.groups().count(), 0);
        let mut hits = 0;
        s.for_each_match("t", |_| true, |_, _| hits += 1);
        assert_eq!(hits, 0);
    }
}
