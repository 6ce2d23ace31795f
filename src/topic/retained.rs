//! The retained-message tree: one node per topic-name level. [MQTT-3.3.1-5] [MQTT-4.7]
//!
//! Children are a `Vec` sorted by level (binary search), so a stored name costs one small
//! entry per level not shared with another name, and matching a subscription's filter
//! visits only the branches it can match. As in [`super::SubscriptionTree`], nothing
//! recurses per level: a valid name may have 65 536 levels.

/// At most one value per topic name.
pub struct RetainedTree<V> {
    root: Node<V>,
    len: usize,
}

struct Node<V> {
    /// Literal levels, sorted by bytes.
    children: Vec<(Box<str>, Node<V>)>,
    /// The value of the name ending at this node. Always `None` at the root: a name is
    /// never empty.
    value: Option<V>,
}

impl<V> Default for RetainedTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedTree<V> {
    pub fn new() -> Self {
        RetainedTree {
            root: Node::default(),
            len: 0,
        }
    }

    /// Stores `value` for `name` (valid), returning the value it replaced.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in name.split('/') {
            let i = match node.find(level) {
                Ok(i) => i,
                Err(i) => {
                    super::tree::insert_compact(
                        &mut node.children,
                        i,
                        (level.into(), Node::default()),
                    );
                    i
                }
            };
            node = &mut node.children[i].1;
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the value of `name`, freeing nodes left empty.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        // First pass, read-only: find the deepest node on the path that stays needed once
        // the value is gone; everything below it is a chain that exists only for `name`.
        let mut node = &self.root;
        let mut keep_depth = 0;
        for (depth, level) in name.split('/').enumerate() {
            if depth > 0 && (node.value.is_some() || node.children.len() > 1) {
                keep_depth = depth;
            }
            node = node.child(level)?;
        }
        node.value.as_ref()?;
        let target_emptied = node.children.is_empty();

        let mut node = &mut self.root;
        let mut levels = name.split('/');
        let value = if target_emptied {
            for level in levels.by_ref().take(keep_depth) {
                node = node.child_mut(level)?;
            }
            let i = node.find(levels.next()?).ok()?;
            let (_, mut leaf) = node.children.remove(i);
            super::tree::shrink_if_sparse(&mut node.children);
            let mut chain = &mut leaf;
            for level in levels {
                chain = chain.child_mut(level)?;
            }
            let value = chain.value.take();
            drop_iteratively(leaf);
            value
        } else {
            for level in levels {
                node = node.child_mut(level)?;
            }
            node.value.take()
        };
        self.len -= 1;
        value
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in name.split('/') {
            node = node.child(level)?;
        }
        node.value.as_ref()
    }

    /// Calls `f(name, value)` for every stored name that `filter` (valid) matches, with the
    /// `$` rule of [`super::matches`]. `name` is rebuilt from the levels into a scratch
    /// string, so callers copy it if they keep it.
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&str, &V)) {
        /// What is left to match below a node.
        #[derive(Clone, Copy)]
        enum Task {
            /// The filter from this byte on; `done` when every level has been matched.
            Filter(usize),
            /// Everything: the filter's `#` was reached.
            Subtree,
        }
        struct Frame<'a, V> {
            node: &'a Node<V>,
            /// The scratch length of the parent's name, and whether a `/` follows it.
            parent_len: usize,
            sep: bool,
            label: &'a str,
            task: Task,
        }

        let done = filter.len() + 1;
        let mut name = String::new();
        let mut stack = vec![Frame {
            node: &self.root,
            parent_len: 0,
            sep: false,
            label: "",
            task: Task::Filter(0),
        }];
        while let Some(Frame {
            node,
            parent_len,
            sep,
            label,
            task,
        }) = stack.pop()
        {
            name.truncate(parent_len);
            if sep {
                name.push('/');
            }
            name.push_str(label);
            let is_root = std::ptr::eq(node, &self.root);
            let (level, next) = match task {
                Task::Subtree => ("#", done),
                Task::Filter(pos) if pos == done => ("", done),
                Task::Filter(pos) => {
                    let rest = &filter[pos..];
                    match rest.find('/') {
                        Some(i) => (&rest[..i], pos + i + 1),
                        None => (rest, done),
                    }
                }
            };
            let (parent_len, sep) = (name.len(), !is_root);
            let frame = |(label, child): &'a (Box<str>, Node<V>), task| Frame {
                node: child,
                parent_len,
                sep,
                label,
                task,
            };
            // A filter starting with a wildcard does not match a name starting with `$`.
            // [MQTT-4.7.2-1]
            let wildcard_children = node
                .children
                .iter()
                .rev()
                .filter(|(l, _)| !(is_root && l.starts_with('$')));
            match (task, level) {
                (Task::Filter(pos), _) if pos == done => {
                    if let Some(value) = &node.value {
                        f(&name, value);
                    }
                }
                // `#` matches the parent level too: "a/#" matches "a". [MQTT-4.7.1-2]
                (_, "#") => {
                    if let Some(value) = &node.value {
                        f(&name, value);
                    }
                    stack.extend(wildcard_children.map(|c| frame(c, Task::Subtree)));
                }
                (_, "+") => stack.extend(wildcard_children.map(|c| frame(c, Task::Filter(next)))),
                (_, literal) => {
                    if let Ok(i) = node.find(literal) {
                        stack.push(frame(&node.children[i], Task::Filter(next)));
                    }
                }
            }
        }
    }

    /// Removes every entry for which `keep` returns false (message expiry).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        /// A node taken out of its parent while its children are visited, put back after.
        struct Frame<V> {
            node: Node<V>,
            /// The next child to visit.
            next: usize,
            /// Length of this node's name in the scratch string.
            name_len: usize,
        }

        let mut name = String::new();
        let root = std::mem::take(&mut self.root);
        let mut stack = vec![Frame {
            node: root,
            next: 0,
            name_len: 0,
        }];
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else { break };
            if let Some((label, child)) = top.node.children.get_mut(top.next) {
                name.truncate(top.name_len);
                if depth > 1 {
                    name.push('/');
                }
                name.push_str(label);
                let mut node = std::mem::take(child);
                if let Some(value) = &mut node.value {
                    if !keep(&name, value) {
                        node.value = None;
                        self.len -= 1;
                    }
                }
                stack.push(Frame {
                    node,
                    next: 0,
                    name_len: name.len(),
                });
                continue;
            }
            let Some(Frame { mut node, .. }) = stack.pop() else {
                break;
            };
            // The children were visited first, so an emptied subtree is an empty child here.
            node.children.retain(|(_, child)| !child.is_empty());
            super::tree::shrink_if_sparse(&mut node.children);
            match stack.last_mut() {
                Some(parent) => {
                    if let Some((_, slot)) = parent.node.children.get_mut(parent.next) {
                        *slot = node;
                    }
                    parent.next += 1;
                }
                None => self.root = node,
            }
        }
    }

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
        }
        count
    }
}

impl<V> Drop for RetainedTree<V> {
    fn drop(&mut self) {
        drop_iteratively(std::mem::take(&mut self.root));
    }
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: Vec::new(),
            value: None,
        }
    }
}

impl<V> Node<V> {
    fn find(&self, level: &str) -> Result<usize, usize> {
        self.children.binary_search_by(|(l, _)| (**l).cmp(level))
    }

    fn child(&self, level: &str) -> Option<&Node<V>> {
        self.find(level).ok().map(|i| &self.children[i].1)
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<V>> {
        self.find(level).ok().map(|i| &mut self.children[i].1)
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }
}

/// Drops a subtree with a loop: the derived drop would recurse once per level.
fn drop_iteratively<V>(node: Node<V>) {
    let mut stack = vec![node];
    while let Some(mut node) = stack.pop() {
        stack.extend(node.children.drain(..).map(|(_, c)| c));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Rng, CASES};
    use super::*;
    use crate::topic::matches;
    use std::collections::BTreeMap;

    /// The (name, value) pairs `tree` reports for `filter`, in the order reported.
    fn matched(tree: &RetainedTree<u32>, filter: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        tree.for_each_match(filter, |name, v| out.push((name.to_owned(), *v)));
        out
    }

    #[test]
    fn each_case_alone() {
        for &(filter, name, expected) in CASES {
            let mut tree = RetainedTree::new();
            tree.insert(name, 1);
            let want = if expected {
                vec![(name.to_owned(), 1)]
            } else {
                vec![]
            };
            assert_eq!(matched(&tree, filter), want, "{filter} vs {name}");
        }
    }

    #[test]
    fn all_cases_in_one_tree() {
        let mut tree = RetainedTree::new();
        let names: BTreeMap<&str, u32> = CASES.iter().map(|&(_, name, _)| (name, 0)).collect();
        for &name in names.keys() {
            tree.insert(name, 0);
        }
        assert_eq!(tree.len(), names.len());
        for &(filter, _, _) in CASES {
            let mut got = matched(&tree, filter);
            got.sort_unstable();
            let want: Vec<(String, u32)> = (names.keys())
                .filter(|name| matches(filter, name))
                .map(|name| (name.to_string(), 0))
                .collect();
            assert_eq!(got, want, "{filter}");
        }
    }

    #[test]
    fn insert_replaces_get_finds_remove_frees() {
        let mut tree = RetainedTree::new();
        assert!(tree.is_empty());
        assert_eq!(tree.insert("a/b/c", 1), None);
        assert_eq!(tree.insert("a", 2), None);
        assert_eq!(tree.insert("a/b/c", 3), Some(1));
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.get("a/b/c"), Some(&3));
        assert_eq!(tree.get("a/b"), None);
        assert_eq!(tree.get("a/b/c/d"), None);
        assert_eq!(tree.node_count(), 1 + 3);

        assert_eq!(tree.remove("a/b"), None);
        assert_eq!(tree.remove("x"), None);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.remove("a/b/c"), Some(3));
        assert_eq!(tree.node_count(), 1 + 1);
        assert_eq!(tree.remove("a/b/c"), None);
        assert_eq!(tree.remove("a"), Some(2));
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn wildcards_report_names_in_level_order() {
        let mut tree = RetainedTree::new();
        for (i, name) in ["b", "a/b", "a", "/a", "$SYS/x", "a//"]
            .into_iter()
            .enumerate()
        {
            tree.insert(name, i as u32);
        }
        let names: Vec<String> = matched(&tree, "#").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["/a", "a", "a//", "a/b", "b"]);
    }

    #[test]
    fn retain_drops_rejected_values_and_prunes() {
        let mut tree = RetainedTree::new();
        tree.insert("a/b/c", 1);
        tree.insert("a/b", 2);
        tree.insert("a/x", 3);
        tree.insert("/", 4);
        let mut seen = Vec::new();
        tree.retain(|name, v| {
            seen.push(name.to_owned());
            *v += 10;
            *v == 12
        });
        assert_eq!(seen, ["/", "a/b", "a/b/c", "a/x"]);
        assert_eq!(tree.len(), 1);
        assert_eq!(tree.get("a/b"), Some(&12));
        assert_eq!(tree.node_count(), 1 + 2);
        tree.retain(|_, _| false);
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn randomized_against_the_reference_matcher() {
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let mut tree = RetainedTree::new();
            let mut model: BTreeMap<String, u32> = BTreeMap::new();
            for op in 0..60 {
                let name = rng.name();
                if rng.below(3) > 0 {
                    let want = model.insert(name.clone(), op);
                    assert_eq!(tree.insert(&name, op), want, "seed {seed}: insert {name:?}");
                } else {
                    let want = model.remove(&name);
                    assert_eq!(tree.remove(&name), want, "seed {seed}: remove {name:?}");
                }
                assert_eq!(tree.len(), model.len(), "seed {seed}");
            }
            for (name, value) in &model {
                assert_eq!(tree.get(name), Some(value), "seed {seed}: get {name:?}");
            }
            for _ in 0..40 {
                let filter = rng.filter();
                let mut got = matched(&tree, &filter);
                got.sort_unstable();
                let want: Vec<(String, u32)> = (model.iter())
                    .filter(|(name, _)| matches(&filter, name))
                    .map(|(name, &v)| (name.clone(), v))
                    .collect();
                assert_eq!(got, want, "seed {seed}: filter {filter:?} in {model:?}");
            }
            let odd = rng.below(2) as u32;
            tree.retain(|_, v| *v % 2 == odd);
            model.retain(|_, v| *v % 2 == odd);
            assert_eq!(tree.len(), model.len(), "seed {seed}");
            assert_eq!(
                matched(&tree, "#").len(),
                model.keys().filter(|n| !n.starts_with('$')).count()
            );
            for name in model.keys() {
                assert!(tree.remove(name).is_some(), "seed {seed}: remove {name:?}");
            }
            assert!(tree.is_empty(), "seed {seed}");
            assert_eq!(
                tree.node_count(),
                1,
                "seed {seed}: nodes left after removing all"
            );
        }
    }

    /// A valid name may have tens of thousands of levels; nothing may recurse per level
    /// (the test thread has a 2 MiB stack).
    #[test]
    fn deep_names_do_not_overflow_the_stack() {
        let levels = 30_000;
        let deep = vec!["a"; levels].join("/");
        let deep_plus = vec!["+"; levels].join("/");
        let mut tree = RetainedTree::new();
        tree.insert(&deep, 1);
        tree.insert(&deep[..deep.len() - 2], 2);
        assert_eq!(matched(&tree, "#").len(), 2);
        assert_eq!(matched(&tree, &deep_plus), vec![(deep.clone(), 1)]);
        assert_eq!(matched(&tree, &deep), vec![(deep.clone(), 1)]);
        tree.retain(|_, v| *v == 1);
        assert_eq!(tree.remove(&deep), Some(1));
        assert_eq!(tree.node_count(), 1);
        tree.insert(&deep, 1);
        // Dropped with `deep` still in the tree.
    }

    /// Not asserted: the figures for the memory budget (<= 200 bytes per retained 64-byte
    /// message, payload included).
    #[test]
    fn node_sizes() {
        println!(
            "RetainedTree node, V = Box<[u8]>: {} bytes",
            std::mem::size_of::<Node<Box<[u8]>>>()
        );
        println!(
            "RetainedTree node, V = u64: {} bytes",
            std::mem::size_of::<Node<u64>>()
        );
        println!(
            "child entry (Box<str>, node), V = Box<[u8]>: {} bytes",
            std::mem::size_of::<(Box<str>, Node<Box<[u8]>>)>()
        );
    }
}
