//! The subscription tree: one node per filter level. [MQTT-4.7]
//!
//! A node keeps its literal children in a `Vec` sorted by level (binary search: no hashing
//! and no empty buckets, so a chain such as `site/gw1/dev/temp` costs one small entry per
//! level), and its `+` and `#` children in separate boxed slots, so routing a PUBLISH
//! visits only the nodes whose filters can match: O(levels × `+` branches), never a scan
//! of all filters. The tree must never recurse per level: a valid filter may have 65 536
//! levels (65 535 `/`), so matching, unsubscribing and dropping use loops and explicit stacks.

/// Subscriptions keyed by filter, each holding one value per subscriber `K`.
pub struct SubscriptionTree<K, V> {
    root: Node<K, V>,
    len: usize,
}

struct Node<K, V> {
    /// Literal levels, sorted by bytes.
    children: Vec<(Box<str>, Node<K, V>)>,
    /// The `+` child.
    plus: Option<Box<Node<K, V>>>,
    /// The `#` child: a leaf, only its `subscribers` are used.
    hash: Option<Box<Node<K, V>>>,
    /// The subscribers whose filter ends at this node.
    subscribers: Vec<(K, V)>,
}

impl<K: Copy + Eq, V> Default for SubscriptionTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq, V> SubscriptionTree<K, V> {
    pub fn new() -> Self {
        SubscriptionTree {
            root: Node::new(),
            len: 0,
        }
    }

    /// Adds or replaces `subscriber`'s subscription to `filter` (valid). Returns the value it
    /// replaced, if any.
    pub fn subscribe(&mut self, filter: &str, subscriber: K, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = match level {
                "+" => node.plus.get_or_insert_with(Default::default),
                "#" => node.hash.get_or_insert_with(Default::default),
                _ => {
                    let i = match node.find(level) {
                        Ok(i) => i,
                        Err(i) => {
                            insert_compact(&mut node.children, i, (level.into(), Node::new()));
                            i
                        }
                    };
                    &mut node.children[i].1
                }
            };
        }
        match node.subscribers.iter_mut().find(|(k, _)| *k == subscriber) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                let at = node.subscribers.len();
                insert_compact(&mut node.subscribers, at, (subscriber, value));
                self.len += 1;
                None
            }
        }
    }

    /// Removes `subscriber`'s subscription to exactly `filter`; returns its value.
    /// Frees nodes left empty.
    pub fn unsubscribe(&mut self, filter: &str, subscriber: K) -> Option<V> {
        // First pass, read-only: find the subscription and the deepest node on the path
        // that stays needed once it is gone. Every node below that one is a chain that
        // exists only for this filter, so cutting one edge frees all of it.
        let mut node = &self.root;
        let mut keep_depth = 0;
        for (depth, level) in filter.split('/').enumerate() {
            if depth > 0 && (!node.subscribers.is_empty() || node.degree() > 1) {
                keep_depth = depth;
            }
            node = node.child(level)?;
        }
        let at = node
            .subscribers
            .iter()
            .position(|(k, _)| *k == subscriber)?;
        let target_emptied = node.subscribers.len() == 1 && node.degree() == 0;

        // Second pass: remove the subscriber, or cut the edge below `keep_depth`.
        let mut node = &mut self.root;
        let mut levels = filter.split('/');
        if target_emptied {
            for level in levels.by_ref().take(keep_depth) {
                node = node.child_mut(level)?;
            }
            let cut = levels.next()?;
            let mut leaf = node.remove_child(cut)?;
            // The cut chain ends at the target; walk down to it to take the value out.
            let mut chain = &mut leaf;
            for level in levels {
                chain = chain.child_mut(level)?;
            }
            let (_, value) = chain.subscribers.swap_remove(at);
            self.len -= 1;
            drop_iteratively(leaf);
            return Some(value);
        }
        for level in levels {
            node = node.child_mut(level)?;
        }
        let (_, value) = node.subscribers.swap_remove(at);
        shrink_if_sparse(&mut node.subscribers);
        self.len -= 1;
        Some(value)
    }

    /// Calls `f` once per (filter, subscriber) pair whose filter matches `name` (a valid
    /// topic name). A subscriber with several matching filters is reported once per filter.
    pub fn for_each_match(&self, name: &str, mut f: impl FnMut(K, &V)) {
        // `pos` is where the next level of `name` starts; `done` means every level has been
        // consumed. Literal children are followed in a loop; a `+` child is pushed and
        // visited later, so the stack holds at most one entry per level of `name`.
        let done = name.len() + 1;
        let mut report = |node: &Node<K, V>| node.subscribers.iter().for_each(|(k, v)| f(*k, v));
        let mut stack = Stack::new();
        stack.push((&self.root, 0));
        while let Some((mut node, mut pos)) = stack.pop() {
            loop {
                // A filter starting with a wildcard does not match a name starting with `$`.
                // [MQTT-4.7.2-1]
                let wildcards = pos > 0 || !name.starts_with('$');
                if let Some(hash) = node.hash.as_deref().filter(|_| wildcards) {
                    // `#` matches this level and every level below, and also the parent
                    // level when `pos == done`: "a/#" matches "a". [MQTT-4.7.1-2]
                    report(hash);
                }
                if pos == done {
                    report(node);
                    break;
                }
                let rest = &name[pos..];
                let (level, next) = match rest.find('/') {
                    Some(i) => (&rest[..i], pos + i + 1),
                    None => (rest, done),
                };
                // `+` matches any one level, including an empty one.
                if let Some(plus) = node.plus.as_deref().filter(|_| wildcards) {
                    stack.push((plus, next));
                }
                match node.child(level) {
                    Some(child) => (node, pos) = (child, next),
                    None => break,
                }
            }
        }
    }

    /// Number of (filter, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of nodes, the root included.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children.iter().map(|(_, c)| c));
            stack.extend(node.plus.as_deref());
            stack.extend(node.hash.as_deref());
        }
        count
    }
}

impl<K, V> Drop for SubscriptionTree<K, V> {
    fn drop(&mut self) {
        drop_iteratively(std::mem::take(&mut self.root));
    }
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node::new()
    }
}

impl<K, V> Node<K, V> {
    fn new() -> Self {
        Node {
            children: Vec::new(),
            plus: None,
            hash: None,
            subscribers: Vec::new(),
        }
    }

    fn find(&self, level: &str) -> Result<usize, usize> {
        self.children.binary_search_by(|(l, _)| (**l).cmp(level))
    }

    /// The child for `level` of a filter.
    fn child(&self, level: &str) -> Option<&Node<K, V>> {
        match level {
            "+" => self.plus.as_deref(),
            "#" => self.hash.as_deref(),
            _ => self.find(level).ok().map(|i| &self.children[i].1),
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match level {
            "+" => self.plus.as_deref_mut(),
            "#" => self.hash.as_deref_mut(),
            _ => self.find(level).ok().map(|i| &mut self.children[i].1),
        }
    }

    fn remove_child(&mut self, level: &str) -> Option<Node<K, V>> {
        match level {
            "+" => self.plus.take().map(|b| *b),
            "#" => self.hash.take().map(|b| *b),
            _ => {
                let (_, node) = self.children.remove(self.find(level).ok()?);
                shrink_if_sparse(&mut self.children);
                Some(node)
            }
        }
    }

    fn degree(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some()) + usize::from(self.hash.is_some())
    }
}

/// Drops a subtree with a loop: the derived drop would recurse once per level.
fn drop_iteratively<K, V>(node: Node<K, V>) {
    let mut stack = vec![node];
    while let Some(mut node) = stack.pop() {
        stack.extend(node.children.drain(..).map(|(_, c)| c));
        stack.extend(node.plus.take().map(|b| *b));
        stack.extend(node.hash.take().map(|b| *b));
    }
}

/// Inserts into `v`, growing a short `Vec` one slot at a time: the default first growth
/// reserves 4 slots, which for a chain of single-child nodes would quadruple the cost of
/// every level.
pub(super) fn insert_compact<T>(v: &mut Vec<T>, index: usize, item: T) {
    if v.len() == v.capacity() && v.len() < 4 {
        v.reserve_exact(1);
    }
    v.insert(index, item);
}

/// Gives memory back after a fan-out shrinks (clients leaving a popular filter).
pub(super) fn shrink_if_sparse<T>(v: &mut Vec<T>) {
    if v.capacity() > 4 && v.len() <= v.capacity() / 4 {
        v.shrink_to(v.len() * 2);
    }
}

/// Entries of the match stack kept inline: 16 × (&Node, usize) is 256 bytes of the
/// caller's stack, and a name needs more only with more than 16 pending `+` branches.
const MATCH_STACK_INLINE: usize = 16;

/// The match stack: inline for the usual depth, spilling to the heap beyond it.
struct Stack<T: Copy> {
    inline: [Option<T>; MATCH_STACK_INLINE],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy> Stack<T> {
    fn new() -> Self {
        Stack {
            inline: [None; MATCH_STACK_INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.len < self.inline.len() {
            self.inline[self.len] = Some(item);
            self.len += 1;
        } else {
            self.spill.push(item);
        }
    }

    fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline[self.len].take()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Rng, CASES};
    use super::*;
    use crate::topic::matches;

    /// The (subscriber, value) pairs `tree` reports for `name`, sorted.
    fn matched(tree: &SubscriptionTree<u32, u32>, name: &str) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        tree.for_each_match(name, |k, v| out.push((k, *v)));
        out.sort_unstable();
        out
    }

    #[test]
    fn each_case_alone() {
        for &(filter, name, expected) in CASES {
            let mut tree = SubscriptionTree::new();
            tree.subscribe(filter, 7, 1);
            let want = if expected { vec![(7, 1)] } else { vec![] };
            assert_eq!(matched(&tree, name), want, "{filter} vs {name}");
        }
    }

    #[test]
    fn all_cases_in_one_tree() {
        let mut tree = SubscriptionTree::new();
        for (i, &(filter, _, _)) in CASES.iter().enumerate() {
            tree.subscribe(filter, i as u32, 0);
        }
        for &(_, name, _) in CASES {
            let want: Vec<(u32, u32)> = (CASES.iter().enumerate())
                .filter(|(_, (filter, _, _))| matches(filter, name))
                .map(|(i, _)| (i as u32, 0))
                .collect();
            assert_eq!(matched(&tree, name), want, "{name}");
        }
    }

    #[test]
    fn subscribe_replaces_and_unsubscribe_removes() {
        let mut tree = SubscriptionTree::new();
        assert!(tree.is_empty());
        assert_eq!(tree.subscribe("a/+", 1, 10), None);
        assert_eq!(tree.subscribe("a/+", 2, 20), None);
        assert_eq!(tree.subscribe("a/#", 1, 30), None);
        assert_eq!(tree.len(), 3);
        assert_eq!(tree.subscribe("a/+", 1, 11), Some(10));
        assert_eq!(tree.len(), 3);
        // One report per matching filter, not per subscriber.
        assert_eq!(matched(&tree, "a/b"), vec![(1, 11), (1, 30), (2, 20)]);

        assert_eq!(tree.unsubscribe("a/+", 3), None);
        assert_eq!(tree.unsubscribe("a/b", 1), None);
        assert_eq!(tree.unsubscribe("a", 1), None);
        assert_eq!(tree.unsubscribe("a/+/c", 1), None);
        assert_eq!(tree.len(), 3);
        assert_eq!(tree.unsubscribe("a/+", 1), Some(11));
        assert_eq!(tree.unsubscribe("a/+", 1), None);
        assert_eq!(matched(&tree, "a/b"), vec![(1, 30), (2, 20)]);
        assert_eq!(tree.unsubscribe("a/#", 1), Some(30));
        assert_eq!(tree.unsubscribe("a/+", 2), Some(20));
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn unsubscribe_frees_only_the_nodes_left_empty() {
        let mut tree = SubscriptionTree::new();
        tree.subscribe("a/b/c/d", 1, ());
        tree.subscribe("a/b", 1, ());
        tree.subscribe("a/+/x", 1, ());
        assert_eq!(tree.node_count(), 1 + 4 + 2);
        tree.unsubscribe("a/b/c/d", 1);
        assert_eq!(tree.node_count(), 1 + 2 + 2);
        tree.unsubscribe("a/b", 1);
        assert_eq!(tree.node_count(), 1 + 1 + 2);
        tree.subscribe("a/+/x/#", 2, ());
        assert_eq!(tree.node_count(), 1 + 1 + 2 + 1);
        tree.unsubscribe("a/+/x", 1);
        assert_eq!(tree.node_count(), 1 + 1 + 2 + 1);
        tree.unsubscribe("a/+/x/#", 2);
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn randomized_against_the_reference_matcher() {
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let mut tree = SubscriptionTree::new();
            // (filter, subscriber, value), at most one entry per (filter, subscriber).
            let mut model: Vec<(String, u32, u32)> = Vec::new();
            for op in 0..60 {
                let subscriber = rng.below(4) as u32;
                let filter = match model.len() {
                    n if n > 0 && rng.below(2) == 0 => model[rng.below(n)].0.clone(),
                    _ => rng.filter(),
                };
                let at = model
                    .iter()
                    .position(|(f, k, _)| *f == filter && *k == subscriber);
                if rng.below(3) > 0 {
                    let old = tree.subscribe(&filter, subscriber, op);
                    let want = match at {
                        Some(i) => Some(std::mem::replace(&mut model[i].2, op)),
                        None => {
                            model.push((filter.clone(), subscriber, op));
                            None
                        }
                    };
                    assert_eq!(old, want, "seed {seed}: subscribe {filter} {subscriber}");
                } else {
                    let old = tree.unsubscribe(&filter, subscriber);
                    let want = at.map(|i| model.swap_remove(i).2);
                    assert_eq!(old, want, "seed {seed}: unsubscribe {filter} {subscriber}");
                }
                assert_eq!(tree.len(), model.len(), "seed {seed}");
            }
            for _ in 0..40 {
                let name = rng.name();
                let mut want: Vec<(u32, u32)> = (model.iter())
                    .filter(|(f, _, _)| matches(f, &name))
                    .map(|&(_, k, v)| (k, v))
                    .collect();
                want.sort_unstable();
                assert_eq!(
                    matched(&tree, &name),
                    want,
                    "seed {seed}: name {name:?} in {model:?}"
                );
            }
            for (filter, subscriber, value) in model.drain(..) {
                assert_eq!(
                    tree.unsubscribe(&filter, subscriber),
                    Some(value),
                    "seed {seed}"
                );
            }
            assert!(tree.is_empty(), "seed {seed}");
            assert_eq!(
                tree.node_count(),
                1,
                "seed {seed}: nodes left after unsubscribing all"
            );
        }
    }

    /// A valid filter or name may have tens of thousands of levels; nothing may recurse
    /// per level (the test thread has a 2 MiB stack).
    #[test]
    fn deep_topics_do_not_overflow_the_stack() {
        let levels = 30_000;
        let mut tree = SubscriptionTree::new();
        let deep = vec!["a"; levels].join("/");
        let deep_plus = vec!["+"; levels].join("/");
        let deep_hash = format!("{}/#", vec!["+"; levels - 1].join("/"));
        tree.subscribe(&deep, 1, 1);
        tree.subscribe(&deep_plus, 2, 2);
        tree.subscribe(&deep_hash, 3, 3);
        tree.subscribe("#", 4, 4);
        assert_eq!(matched(&tree, &deep), vec![(1, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(tree.unsubscribe(&deep_plus, 2), Some(2));
        assert_eq!(tree.unsubscribe(&deep, 1), Some(1));
        assert_eq!(matched(&tree, &deep), vec![(3, 3), (4, 4)]);
        // Dropped with `deep_hash` still in the tree.
    }

    /// Not asserted: the figures for the memory budget (< 1 KB per idle connection with
    /// one subscription).
    #[test]
    fn node_sizes() {
        type N = Node<u32, u8>;
        println!("SubscriptionTree node: {} bytes", std::mem::size_of::<N>());
        println!(
            "child entry (Box<str>, node): {} bytes",
            std::mem::size_of::<(Box<str>, N)>()
        );
        println!(
            "subscriber (u32, u8): {} bytes",
            std::mem::size_of::<(u32, u8)>()
        );
        let mut tree = SubscriptionTree::new();
        tree.subscribe("site/gw1/dev/temp", 1u32, 0u8);
        let children = tree.root.children[0].1.children.capacity();
        assert_eq!(children, 1, "a single-child node holds one slot, not four");
    }
}
