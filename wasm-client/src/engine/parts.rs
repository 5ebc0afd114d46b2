//! [`PartMap`] and [`PartSet`]: values keyed by part number, in a vector indexed by it. A
//! queue's item ids (1, 2, 3… in the order added) are numbered the same way and use it too.
//!
//! Part numbers run densely from 1 to at most 10,000, so a vector of slots does what a `BTreeMap`
//! did for the engine's bookkeeping (ascending iteration, lookups, removal) with a fraction of
//! the code: a `BTreeMap` brings its node code (insertion, rebalancing, the sort of `collect`)
//! once per key and value type. Moving the engine's maps here took the page from 524,343 to
//! 422,611 bytes (167,537 to 147,397 gzipped; BENCHMARKS.md, "Page weight"). A full map of
//! 10,000 parts is one allocation of 10,000 slots.

/// Values keyed by part number, iterated in ascending order.
#[derive(Debug, Clone)]
pub struct PartMap<T> {
    /// The value of part `n` at index `n` (index 0 unused).
    slots: Vec<Option<T>>,
    len: usize,
    /// No part below this one has a value: where iteration starts, so that a map whose low
    /// parts are done is not scanned from the front again and again.
    first: usize,
}

impl<T> Default for PartMap<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
            first: 0,
        }
    }
}

/// Equal when they hold the same parts with the same values, however they got there.
impl<T: PartialEq> PartialEq for PartMap<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for PartMap<T> {}

impl<T> PartMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, part: u32) -> Option<&T> {
        self.slots.get(part as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, part: u32) -> Option<&mut T> {
        self.slots.get_mut(part as usize)?.as_mut()
    }

    pub fn contains_key(&self, part: u32) -> bool {
        self.get(part).is_some()
    }

    /// Sets the value of `part`, returning the one it replaces.
    pub fn insert(&mut self, part: u32, value: T) -> Option<T> {
        let at = part as usize;
        if at >= self.slots.len() {
            self.slots.resize_with(at + 1, || None);
        }
        let old = self.slots[at].replace(value);
        if old.is_none() {
            self.len += 1;
            self.first = self.first.min(at);
        }
        old
    }

    pub fn remove(&mut self, part: u32) -> Option<T> {
        let old = self.slots.get_mut(part as usize)?.take();
        if old.is_some() {
            self.len -= 1;
            self.skip_empty();
        }
        old
    }

    /// The value of `part`, set to the default first if it has none.
    pub fn get_or_default(&mut self, part: u32) -> &mut T
    where
        T: Default,
    {
        if !self.contains_key(part) {
            self.insert(part, T::default());
        }
        // Set just above.
        self.get_mut(part).unwrap()
    }

    /// Moves `first` past empty slots: each slot is passed once while parts are removed from
    /// the front.
    fn skip_empty(&mut self) {
        while self.slots.get(self.first).is_some_and(Option::is_none) {
            self.first += 1;
        }
    }

    /// Parts and values, lowest part first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        let from = self.first.min(self.slots.len());
        self.slots[from..]
            .iter()
            .enumerate()
            .filter_map(move |(i, v)| Some(((from + i) as u32, v.as_ref()?)))
    }

    /// Parts with a value, lowest first.
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter().map(|(n, _)| n)
    }

    /// Keeps the parts for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(u32, &mut T) -> bool) {
        for (i, slot) in self.slots.iter_mut().enumerate().skip(self.first) {
            if let Some(value) = slot
                && !keep(i as u32, value)
            {
                *slot = None;
                self.len -= 1;
            }
        }
        self.skip_empty();
    }

    /// Takes every value out, lowest part first, leaving the map empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (u32, T)> {
        std::mem::take(self).into_iter()
    }
}

/// The value of a part that has one; panics otherwise, as a map's index does.
impl<T> std::ops::Index<u32> for PartMap<T> {
    type Output = T;

    fn index(&self, part: u32) -> &T {
        self.get(part)
            .unwrap_or_else(|| panic!("part {part} has no value"))
    }
}

impl<T> FromIterator<(u32, T)> for PartMap<T> {
    fn from_iter<I: IntoIterator<Item = (u32, T)>>(iter: I) -> Self {
        let mut map = Self::new();
        map.extend(iter);
        map
    }
}

impl<T> Extend<(u32, T)> for PartMap<T> {
    fn extend<I: IntoIterator<Item = (u32, T)>>(&mut self, iter: I) {
        for (part, value) in iter {
            self.insert(part, value);
        }
    }
}

impl<T> IntoIterator for PartMap<T> {
    type Item = (u32, T);
    type IntoIter = std::iter::FilterMap<
        std::iter::Enumerate<std::vec::IntoIter<Option<T>>>,
        fn((usize, Option<T>)) -> Option<(u32, T)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as u32, v?)))
    }
}

/// A set of part numbers, iterated in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartSet(PartMap<()>);

impl PartSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, part: u32) -> bool {
        self.0.contains_key(part)
    }

    /// Adds `part`; false if it was there.
    pub fn insert(&mut self, part: u32) -> bool {
        self.0.insert(part, ()).is_none()
    }

    /// Removes `part`; false if it was not there.
    pub fn remove(&mut self, part: u32) -> bool {
        self.0.remove(part).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.keys()
    }

    /// Moves every part of `other` into this set.
    pub fn append(&mut self, other: &mut Self) {
        for (part, ()) in other.0.drain() {
            self.insert(part);
        }
    }

    pub fn clear(&mut self) {
        self.0 = PartMap::new();
    }
}

impl FromIterator<u32> for PartSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        Self(iter.into_iter().map(|part| (part, ())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_keeps_parts_in_order_and_counts_them() {
        let mut map = PartMap::new();
        assert_eq!(map.insert(5, "e"), None);
        assert_eq!(map.insert(2, "b"), None);
        assert_eq!(map.insert(9, "i"), None);
        assert_eq!(map.insert(5, "E"), Some("e"));
        assert_eq!(map.len(), 3);
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [(2, &"b"), (5, &"E"), (9, &"i")]
        );
        assert_eq!(map.remove(2), Some("b"));
        assert_eq!(map.remove(2), None);
        assert_eq!(map.remove(10_000), None);
        assert_eq!(map.get(0), None);
        assert_eq!(map.keys().collect::<Vec<_>>(), [5, 9]);
        // A part below the ones left is found again.
        map.insert(1, "a");
        assert_eq!(map.keys().collect::<Vec<_>>(), [1, 5, 9]);
        map.retain(|n, _| n != 5);
        assert_eq!(map.len(), 2);
        *map.get_mut(9).unwrap() = "I";
        assert_eq!(
            map.clone().into_iter().collect::<Vec<_>>(),
            [(1, "a"), (9, "I")]
        );
        assert_eq!(map.drain().count(), 2);
        assert!(map.is_empty());
        assert_eq!(map.iter().count(), 0);
    }

    #[test]
    fn a_map_gives_defaults_and_compares_by_content() {
        let mut tries: PartMap<u32> = PartMap::new();
        *tries.get_or_default(3) += 1;
        *tries.get_or_default(3) += 1;
        assert_eq!(tries.get(3), Some(&2));
        let collected: PartMap<u32> = [(3, 2)].into_iter().collect();
        assert_eq!(tries, collected);
    }

    #[test]
    fn a_set_of_ten_thousand_parts_drains_from_the_front() {
        let mut set: PartSet = (1..=10_000).collect();
        assert_eq!(set.len(), 10_000);
        for part in 1..=10_000 {
            assert_eq!(set.iter().next(), Some(part));
            assert!(set.remove(part));
            assert!(!set.contains(part));
        }
        assert!(set.is_empty());
        let mut other: PartSet = [4, 2].into_iter().collect();
        set.insert(7);
        set.append(&mut other);
        assert!(other.is_empty());
        assert_eq!(set.iter().collect::<Vec<_>>(), [2, 4, 7]);
        assert!(!set.insert(4));
        set.clear();
        assert!(set.is_empty());
    }
}
