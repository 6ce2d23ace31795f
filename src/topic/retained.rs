//! The retained-message tree: one entry per topic-name level. [MQTT-3.3.1-5] [MQTT-4.7]
//!
//! A stored message already holds its topic name, so the tree does not store it again
//! where it can avoid it: a name with no longer name below it (most of them: `site/3/temp`
//! under `site/3`) is a *leaf*, kept in its parent as the value alone (one pointer for an
//! `Rc`), found by the last level of the value's own name. Only levels with names below
//! them are nodes with a label of their own. Children and leaves are `Vec`s sorted by
//! level (binary search), so matching a subscription's filter visits only the branches it
//! can match. As in [`super::SubscriptionTree`], nothing recurses per level: a valid name
//! may have 65 536 levels.
//!
//! Measured with 100,000 retained 64-byte messages (`tests/alloc_guard.rs`): 269 heap
//! bytes per message with a labelled node per name, 185 with leaves.

/// A value that knows the topic name it is stored under, so that a leaf needs no label.
pub trait Named {
    fn name(&self) -> &str;
}

/// At most one value per topic name.
pub struct RetainedTree<V> {
    root: Node<V>,
    len: usize,
}

struct Node<V> {
    /// Levels with names below them, sorted by bytes.
    children: Vec<(Box<str>, Node<V>)>,
    /// Values of names that end one level below this node and have nothing below them,
    /// sorted by that last level. A level is a child or a leaf, never both.
    leaves: Vec<V>,
    /// The value of the name ending at this node. Always `None` at the root: a name is
    /// never empty.
    value: Option<V>,
}

/// The last level of a name.
fn last_level(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The levels of `name` above its last one, and the last one.
fn split_last(name: &str) -> (Option<&str>, &str) {
    match name.rfind('/') {
        Some(i) => (Some(&name[..i]), &name[i + 1..]),
        None => (None, name),
    }
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

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V: Named> RetainedTree<V> {
    /// Stores `value` under `name` (valid, and `value.name()`), returning the value it
    /// replaced.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        debug_assert_eq!(name, value.name());
        let (parents, last) = split_last(name);
        let mut node = &mut self.root;
        for level in parents.into_iter().flat_map(|p| p.split('/')) {
            let i = match node.find(level) {
                Ok(i) => i,
                Err(i) => {
                    // A leaf with names below it now becomes a node.
                    let value = node.find_leaf(level).ok().map(|j| node.leaves.remove(j));
                    super::tree::shrink_if_sparse(&mut node.leaves);
                    let child = Node {
                        value,
                        ..Node::default()
                    };
                    super::tree::insert_compact(&mut node.children, i, (level.into(), child));
                    i
                }
            };
            node = &mut node.children[i].1;
        }
        let old = if let Ok(i) = node.find(last) {
            node.children[i].1.value.replace(value)
        } else {
            match node.find_leaf(last) {
                Ok(j) => Some(std::mem::replace(&mut node.leaves[j], value)),
                Err(j) => {
                    insert_growing(&mut node.leaves, j, value);
                    None
                }
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the value of `name`, freeing nodes left empty.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let levels: Vec<&str> = name.split('/').collect();
        let (&last, parents) = levels.split_last()?;
        // First pass, read-only: find the deepest node on the path that stays needed once
        // the value is gone (the root at depth 0 always does); everything below it is a
        // chain that exists only for `name`.
        let mut node = &self.root;
        let mut keep_depth = 0;
        for (depth, level) in parents.iter().enumerate() {
            node = node.child(level)?;
            if node.value.is_some() || node.entries() > 1 {
                keep_depth = depth + 1;
            }
        }
        // `node` is the parent of the name's last level.
        let emptied = match node.child(last) {
            Some(target) => {
                target.value.as_ref()?;
                target.children.is_empty() && target.leaves.is_empty()
            }
            None => {
                node.find_leaf(last).ok()?;
                true
            }
        };

        let mut node = &mut self.root;
        let value = if !emptied {
            for level in &levels {
                node = node.child_mut(level)?;
            }
            node.value.take()
        } else if keep_depth == parents.len() {
            // The parent stays: only the name's own entry goes.
            for level in parents {
                node = node.child_mut(level)?;
            }
            node.take_entry(last)
        } else {
            for level in &parents[..keep_depth] {
                node = node.child_mut(level)?;
            }
            let i = node.find(parents[keep_depth]).ok()?;
            let (_, mut chain) = node.children.remove(i);
            super::tree::shrink_if_sparse(&mut node.children);
            let mut parent = &mut chain;
            for level in &parents[keep_depth + 1..] {
                parent = parent.child_mut(level)?;
            }
            let value = parent.take_entry(last);
            drop_iteratively(chain);
            value
        };
        if value.is_some() {
            self.len -= 1;
        }
        value
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        let (parents, last) = split_last(name);
        let mut node = &self.root;
        for level in parents.into_iter().flat_map(|p| p.split('/')) {
            node = node.child(level)?;
        }
        match node.child(last) {
            Some(child) => child.value.as_ref(),
            None => node.find_leaf(last).ok().map(|j| &node.leaves[j]),
        }
    }

    /// Calls `f(name, value)` for every stored name that `filter` (valid) matches, with the
    /// `$` rule of [`super::matches`], in the order of the names' levels. `name` may be
    /// rebuilt from the levels into a scratch string, so callers copy it if they keep it.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        /// What is left to match below an entry.
        #[derive(Clone, Copy)]
        enum Task {
            /// The filter from this byte on; `done` when every level has been matched.
            Filter(usize),
            /// Everything: the filter's `#` was reached.
            Subtree,
        }
        /// An entry whose level matched: a node or a leaf (a value with nothing below).
        enum Entry<'a, V> {
            Node(&'a str, &'a Node<V>),
            Leaf(&'a V),
        }
        struct Frame<'a, V> {
            entry: Entry<'a, V>,
            /// The scratch length of the parent's name, and whether a `/` follows it.
            parent_len: usize,
            sep: bool,
            task: Task,
        }

        let done = filter.len() + 1;
        let mut name = String::new();
        let mut stack = vec![Frame {
            entry: Entry::Node("", &self.root),
            parent_len: 0,
            sep: false,
            task: Task::Filter(0),
        }];
        while let Some(Frame {
            entry,
            parent_len,
            sep,
            task,
        }) = stack.pop()
        {
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
            let at_end = matches!(task, Task::Filter(pos) if pos == done);
            let node = match entry {
                // Nothing below a leaf: it matches if the filter is used up, or only a
                // `#` is left (which matches the parent level too). [MQTT-4.7.1-2]
                Entry::Leaf(value) => {
                    if at_end || level == "#" {
                        f(value.name(), value);
                    }
                    continue;
                }
                Entry::Node(label, node) => {
                    name.truncate(parent_len);
                    if sep {
                        name.push('/');
                    }
                    name.push_str(label);
                    node
                }
            };
            let is_root = std::ptr::eq(node, &self.root);
            let (parent_len, sep) = (name.len(), !is_root);
            let frame = |entry, task| Frame {
                entry,
                parent_len,
                sep,
                task,
            };
            if at_end || level == "#" {
                if let Some(value) = &node.value {
                    f(&name, value);
                }
            }
            let next_task = match (at_end, level) {
                (true, _) => continue,
                (_, "#") => Task::Subtree,
                _ => Task::Filter(next),
            };
            if level == "#" || level == "+" {
                // Children and leaves merged by level, pushed last first so that the
                // first level is visited first. A filter starting with a wildcard does
                // not match a name starting with `$`. [MQTT-4.7.2-1]
                let skip = |l: &str| is_root && l.starts_with('$');
                let (mut c, mut l) = (node.children.len(), node.leaves.len());
                while c > 0 || l > 0 {
                    let leaf_level = (l > 0).then(|| last_level(node.leaves[l - 1].name()));
                    let child_level = (c > 0).then(|| &*node.children[c - 1].0);
                    let entry = match (child_level, leaf_level) {
                        (Some(cl), Some(ll)) if cl > ll => {
                            c -= 1;
                            Entry::Node(cl, &node.children[c].1)
                        }
                        (Some(cl), None) => {
                            c -= 1;
                            Entry::Node(cl, &node.children[c].1)
                        }
                        (_, Some(_)) => {
                            l -= 1;
                            Entry::Leaf(&node.leaves[l])
                        }
                        (None, None) => break,
                    };
                    let level = match entry {
                        Entry::Node(label, _) => label,
                        Entry::Leaf(value) => last_level(value.name()),
                    };
                    if !skip(level) {
                        stack.push(frame(entry, next_task));
                    }
                }
            } else if let Ok(i) = node.find(level) {
                let (label, child) = &node.children[i];
                stack.push(frame(Entry::Node(label, child), next_task));
            } else if let Ok(j) = node.find_leaf(level) {
                stack.push(frame(Entry::Leaf(&node.leaves[j]), next_task));
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
        let mut leaf_name = String::new();
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
            let before = node.leaves.len();
            node.leaves.retain_mut(|value| {
                leaf_name.clear();
                leaf_name.push_str(value.name());
                keep(&leaf_name, value)
            });
            self.len -= before - node.leaves.len();
            super::tree::shrink_if_sparse(&mut node.leaves);
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

    /// Number of entries (nodes and leaves), the root included.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1 + node.leaves.len();
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
            leaves: Vec::new(),
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

    /// Children and leaves.
    fn entries(&self) -> usize {
        self.children.len() + self.leaves.len()
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty() && self.leaves.is_empty()
    }
}

impl<V: Named> Node<V> {
    fn find_leaf(&self, level: &str) -> Result<usize, usize> {
        self.leaves
            .binary_search_by(|v| last_level(v.name()).cmp(level))
    }

    /// Takes the value of the entry for `level`, a leaf or a child with nothing below it,
    /// and removes the entry.
    fn take_entry(&mut self, level: &str) -> Option<V> {
        let value = match self.find(level) {
            Ok(i) => self.children.remove(i).1.value,
            Err(_) => {
                let j = self.find_leaf(level).ok()?;
                Some(self.leaves.remove(j))
            }
        };
        super::tree::shrink_if_sparse(&mut self.children);
        super::tree::shrink_if_sparse(&mut self.leaves);
        value
    }
}

/// `Vec::insert`, growing a full vector by an eighth instead of doubling it: a level with
/// 100,000 retained names then carries at most 12.5 % unused capacity, not up to 100 %,
/// and appending stays amortised constant time.
fn insert_growing<T>(v: &mut Vec<T>, index: usize, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(1));
    }
    v.insert(index, item);
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

    /// A test value: a number stored under a name.
    #[derive(Debug, PartialEq)]
    struct V(String, u32);

    impl Named for V {
        fn name(&self) -> &str {
            &self.0
        }
    }

    type Tree = RetainedTree<V>;

    fn insert(tree: &mut Tree, name: &str, v: u32) -> Option<u32> {
        tree.insert(name, V(name.to_owned(), v)).map(|v| v.1)
    }

    fn remove(tree: &mut Tree, name: &str) -> Option<u32> {
        tree.remove(name).map(|v| v.1)
    }

    fn get(tree: &Tree, name: &str) -> Option<u32> {
        tree.get(name).map(|v| v.1)
    }

    /// The (name, value) pairs `tree` reports for `filter`, in the order reported; each
    /// reported name is the value's own.
    fn matched(tree: &Tree, filter: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        tree.for_each_match(filter, |name, v| {
            assert_eq!(name, v.0, "reported name");
            out.push((name.to_owned(), v.1))
        });
        out
    }

    #[test]
    fn each_case_alone() {
        for &(filter, name, expected) in CASES {
            let mut tree = Tree::new();
            insert(&mut tree, name, 1);
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
        let mut tree = Tree::new();
        let names: BTreeMap<&str, u32> = CASES.iter().map(|&(_, name, _)| (name, 0)).collect();
        for &name in names.keys() {
            insert(&mut tree, name, 0);
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
        let mut tree = Tree::new();
        assert!(tree.is_empty());
        assert_eq!(insert(&mut tree, "a/b/c", 1), None);
        assert_eq!(insert(&mut tree, "a", 2), None);
        assert_eq!(insert(&mut tree, "a/b/c", 3), Some(1));
        assert_eq!(tree.len(), 2);
        assert_eq!(get(&tree, "a/b/c"), Some(3));
        assert_eq!(get(&tree, "a/b"), None);
        assert_eq!(get(&tree, "a/b/c/d"), None);
        assert_eq!(tree.node_count(), 1 + 3);

        assert_eq!(remove(&mut tree, "a/b"), None);
        assert_eq!(remove(&mut tree, "x"), None);
        assert_eq!(tree.len(), 2);
        assert_eq!(remove(&mut tree, "a/b/c"), Some(3));
        assert_eq!(tree.node_count(), 1 + 1);
        assert_eq!(remove(&mut tree, "a/b/c"), None);
        assert_eq!(remove(&mut tree, "a"), Some(2));
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn wildcards_report_names_in_level_order() {
        let mut tree = Tree::new();
        for (i, name) in ["b", "a/b", "a", "/a", "$SYS/x", "a//"]
            .into_iter()
            .enumerate()
        {
            insert(&mut tree, name, i as u32);
        }
        let names: Vec<String> = matched(&tree, "#").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["/a", "a", "a//", "a/b", "b"]);
    }

    #[test]
    fn retain_drops_rejected_values_and_prunes() {
        let mut tree = Tree::new();
        insert(&mut tree, "a/b/c", 1);
        insert(&mut tree, "a/b", 2);
        insert(&mut tree, "a/x", 3);
        insert(&mut tree, "/", 4);
        let mut seen = Vec::new();
        tree.retain(|name, v| {
            assert_eq!(name, v.0);
            seen.push(name.to_owned());
            v.1 += 10;
            v.1 == 12
        });
        seen.sort_unstable();
        assert_eq!(seen, ["/", "a/b", "a/b/c", "a/x"]);
        assert_eq!(tree.len(), 1);
        assert_eq!(get(&tree, "a/b"), Some(12));
        assert_eq!(tree.node_count(), 1 + 2);
        tree.retain(|_, _| false);
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1);
    }

    #[test]
    fn randomized_against_the_reference_matcher() {
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let mut tree = Tree::new();
            let mut model: BTreeMap<String, u32> = BTreeMap::new();
            for op in 0..60 {
                let name = rng.name();
                if rng.below(3) > 0 {
                    let want = model.insert(name.clone(), op);
                    assert_eq!(
                        insert(&mut tree, &name, op),
                        want,
                        "seed {seed}: insert {name:?}"
                    );
                } else {
                    let want = model.remove(&name);
                    assert_eq!(
                        remove(&mut tree, &name),
                        want,
                        "seed {seed}: remove {name:?}"
                    );
                }
                assert_eq!(tree.len(), model.len(), "seed {seed}");
            }
            for (name, value) in &model {
                assert_eq!(get(&tree, name), Some(*value), "seed {seed}: get {name:?}");
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
            tree.retain(|_, v| v.1 % 2 == odd);
            model.retain(|_, v| *v % 2 == odd);
            assert_eq!(tree.len(), model.len(), "seed {seed}");
            assert_eq!(
                matched(&tree, "#").len(),
                model.keys().filter(|n| !n.starts_with('$')).count()
            );
            for name in model.keys() {
                assert!(
                    remove(&mut tree, name).is_some(),
                    "seed {seed}: remove {name:?}"
                );
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
        let mut tree = Tree::new();
        insert(&mut tree, &deep, 1);
        insert(&mut tree, &deep[..deep.len() - 2], 2);
        assert_eq!(matched(&tree, "#").len(), 2);
        assert_eq!(matched(&tree, &deep_plus), vec![(deep.clone(), 1)]);
        assert_eq!(matched(&tree, &deep), vec![(deep.clone(), 1)]);
        tree.retain(|_, v| v.1 == 1);
        assert_eq!(remove(&mut tree, &deep), Some(1));
        assert_eq!(tree.node_count(), 1);
        insert(&mut tree, &deep, 1);
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
