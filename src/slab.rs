//! `Slab<T>`: values in numbered slots, the numbers handed out and reused by the slab.
//!
//! The broker's connections and sessions and the shared-subscription groups each keep
//! their values this way (a `Vec<Option<T>>` and a free list, which they used to write
//! out by hand). A number names its value until it is removed, then the next `insert`
//! may reuse it. Free slots are reused lowest first and free slots at the end are given
//! back, so the slab stays compact and its memory returns to near idle after many
//! values leave. Lookups are one bounds check and one tag check, as the hand-written
//! slabs were.

use std::collections::BTreeSet;

/// Values in numbered slots; see the module documentation.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    /// The empty slots below `slots.len()`. Ordered, so `insert` takes the lowest and
    /// `insert_at` can claim any one of them without a scan.
    free: BTreeSet<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> Slab<T> {
    pub const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: BTreeSet::new(),
            len: 0,
        }
    }

    /// The number of values held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` in the lowest free slot and returns its number.
    pub fn insert(&mut self, value: T) -> u32 {
        self.len += 1;
        match self.free.pop_first() {
            Some(index) => {
                self.slots[index as usize] = Some(value);
                index
            }
            None => {
                self.slots.push(Some(value));
                slot_number(self.slots.len() - 1)
            }
        }
    }

    /// Stores `value` in slot `index`, which someone else numbered (the loop's connection
    /// ids, a journal's session numbers), growing the slab if needed. Returns the value
    /// that was there.
    pub fn insert_at(&mut self, index: u32, value: T) -> Option<T> {
        let slot = index as usize;
        if self.slots.len() <= slot {
            let first_new = slot_number(self.slots.len());
            self.free.extend(first_new..index);
            self.slots.resize_with(slot + 1, || None);
        } else {
            self.free.remove(&index);
        }
        let old = self.slots[slot].replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn get(&self, index: u32) -> Option<&T> {
        self.slots.get(index as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.slots.get_mut(index as usize).and_then(Option::as_mut)
    }

    pub fn contains(&self, index: u32) -> bool {
        self.get(index).is_some()
    }

    /// Takes the value out of slot `index`; the number is free for reuse. Free slots at
    /// the end are dropped, and memory is given back when most of it is unused.
    pub fn remove(&mut self, index: u32) -> Option<T> {
        let value = self.slots.get_mut(index as usize).and_then(Option::take)?;
        self.len -= 1;
        self.free.insert(index);
        self.trim();
        Some(value)
    }

    /// The values with their numbers, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, value)| value.as_ref().map(|v| (slot_number(slot), v)))
    }

    fn trim(&mut self) {
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
            self.free.pop_last();
        }
        if self.slots.capacity() > 64 && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to_fit();
        }
    }
}

/// A slot's number. Slots are numbered by `u32` (connection and session ids): a slab
/// of 2^32 values would take hundreds of gigabytes before this could fail.
fn slot_number(slot: usize) -> u32 {
    u32::try_from(slot).expect("fewer than 2^32 slots")
}

/// Drops the free slots at the end of a hand-written slab and gives memory back when most
/// of it is unused, as [`Slab::remove`] does. Returns whether the slab got shorter. For
/// the slabs not yet on [`Slab`] (`net`'s connections).
pub(crate) fn trim_slab<T>(slab: &mut Vec<Option<T>>) -> bool {
    let before = slab.len();
    while slab.last().is_some_and(Option::is_none) {
        slab.pop();
    }
    if slab.capacity() > 64 && slab.len() < slab.capacity() / 4 {
        slab.shrink_to_fit();
    }
    slab.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers<T>(slab: &Slab<T>) -> Vec<u32> {
        slab.iter().map(|(i, _)| i).collect()
    }

    #[test]
    fn insert_numbers_from_zero_and_get_finds_each_value() {
        let mut slab = Slab::new();
        assert!(slab.is_empty());
        assert_eq!(slab.insert("a"), 0);
        assert_eq!(slab.insert("b"), 1);
        assert_eq!(slab.insert("c"), 2);
        assert_eq!(slab.len(), 3);
        assert_eq!(slab.get(1), Some(&"b"));
        assert_eq!(slab.get(3), None);
        *slab.get_mut(2).expect("slot 2 is taken") = "C";
        assert_eq!(
            slab.iter().collect::<Vec<_>>(),
            [(0, &"a"), (1, &"b"), (2, &"C")]
        );
    }

    #[test]
    fn removed_numbers_are_reused_lowest_first() {
        let mut slab = Slab::new();
        for i in 0..5 {
            slab.insert(i);
        }
        assert_eq!(slab.remove(3), Some(3));
        assert_eq!(slab.remove(1), Some(1));
        assert_eq!(slab.remove(1), None, "a number is removed once");
        assert!(!slab.contains(1));
        assert_eq!(slab.len(), 3);
        assert_eq!(slab.insert(10), 1);
        assert_eq!(slab.insert(30), 3);
        assert_eq!(slab.insert(50), 5);
        assert_eq!(numbers(&slab), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn free_slots_at_the_end_are_dropped_and_memory_given_back() {
        let mut slab = Slab::new();
        for i in 0..1000 {
            slab.insert(i);
        }
        for i in (1..1000).rev() {
            slab.remove(i);
        }
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.slots.len(), 1);
        assert!(slab.free.is_empty());
        assert!(slab.slots.capacity() < 64, "{}", slab.slots.capacity());
        // A hole below the end stays until the values above it leave.
        slab.insert(1);
        slab.insert(2);
        slab.remove(1);
        assert_eq!(slab.slots.len(), 3);
        slab.remove(2);
        assert_eq!(slab.slots.len(), 1);
        assert!(slab.free.is_empty());
        assert_eq!(slab.insert(7), 1);
    }

    #[test]
    fn insert_at_grows_the_slab_and_its_holes_are_filled_first() {
        let mut slab = Slab::new();
        assert_eq!(slab.insert_at(3, "d"), None);
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.insert_at(1, "b"), None);
        assert_eq!(slab.insert_at(1, "B"), Some("b"));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.insert(" a"), 0);
        assert_eq!(slab.insert(" c"), 2);
        assert_eq!(slab.insert(" e"), 4);
        assert_eq!(numbers(&slab), [0, 1, 2, 3, 4]);
        assert_eq!(slab.get(1), Some(&"B"));
    }

    #[test]
    fn random_operations_agree_with_a_map() {
        use std::collections::BTreeMap;
        let mut slab = Slab::new();
        let mut model = BTreeMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let index = (seed % 64) as u32;
            match seed >> 60 {
                0..=5 => {
                    let lowest_free = (0..).find(|i| !model.contains_key(i));
                    let i = slab.insert(step);
                    assert_eq!(Some(i), lowest_free);
                    model.insert(i, step);
                }
                6..=7 => assert_eq!(slab.insert_at(index, step), model.insert(index, step)),
                _ => assert_eq!(slab.remove(index), model.remove(&index)),
            }
            assert_eq!(slab.len(), model.len());
            assert!(slab
                .iter()
                .map(|(i, v)| (i, *v))
                .eq(model.iter().map(|(i, v)| (*i, *v))));
            let holes = slab.slots.iter().filter(|s| s.is_none()).count();
            assert_eq!(slab.free.len(), holes);
            assert!(slab.slots.last().is_none_or(Option::is_some));
        }
    }

    #[test]
    fn trim_slab_drops_trailing_free_slots() {
        let mut slab = vec![Some(1), None, Some(3), None, None];
        assert!(trim_slab(&mut slab));
        assert_eq!(slab, [Some(1), None, Some(3)]);
        assert!(!trim_slab(&mut slab));
    }
}
