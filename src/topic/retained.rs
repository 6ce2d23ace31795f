//! The retained-message tree: one node per topic-name level.

/// At most one value per topic name.
pub struct RetainedTree<V> {
    _v: std::marker::PhantomData<V>,
}

impl<V> Default for RetainedTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedTree<V> {
    pub fn new() -> Self {
        RetainedTree { _v: std::marker::PhantomData }
    }

    /// Stores `value` for `name` (valid), returning the value it replaced.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        let _ = (name, value);
        None
    }

    /// Removes the value of `name`, freeing nodes left empty.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let _ = name;
        None
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        let _ = name;
        None
    }

    /// Calls `f(name, value)` for every stored name that `filter` (valid) matches, with the
    /// `$` rule of [`super::matches`]. `name` is rebuilt from the levels into a scratch
    /// string, so callers copy it if they keep it.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let _ = (filter, &mut f);
    }

    /// Removes every entry for which `keep` returns false (message expiry).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        let _ = &mut keep;
    }

    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
