//! The subscription tree: one node per filter level.

/// Subscriptions keyed by filter, each holding one value per subscriber `K`.
pub struct SubscriptionTree<K, V> {
    _k: std::marker::PhantomData<(K, V)>,
}

impl<K: Copy + Eq, V> Default for SubscriptionTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq, V> SubscriptionTree<K, V> {
    pub fn new() -> Self {
        SubscriptionTree { _k: std::marker::PhantomData }
    }

    /// Adds or replaces `subscriber`'s subscription to `filter` (valid). Returns the value it
    /// replaced, if any.
    pub fn subscribe(&mut self, filter: &str, subscriber: K, value: V) -> Option<V> {
        let _ = (filter, subscriber, value);
        None
    }

    /// Removes `subscriber`'s subscription to exactly `filter`; returns its value.
    /// Frees nodes left empty.
    pub fn unsubscribe(&mut self, filter: &str, subscriber: K) -> Option<V> {
        let _ = (filter, subscriber);
        None
    }

    /// Calls `f` once per (filter, subscriber) pair whose filter matches `name` (a valid
    /// topic name). A subscriber with several matching filters is reported once per filter.
    pub fn for_each_match(&self, name: &str, mut f: impl FnMut(K, &V)) {
        let _ = (name, &mut f);
    }

    /// Number of (filter, subscriber) pairs.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
