//! [`Blocks`]: a list kept in blocks of a fixed length, which are never moved.
//!
//! A list that grows by doubling copies everything it holds into new memory at each
//! doubling, while the old copy is still held, and keeps the room it doubled into until
//! it is dropped: on average a quarter of it unused, and up to a half. A large run keeps
//! many such lists that only grow (a trace's records; each server's state groups), and
//! their unused room was a tenth of a 1,000-server run's heap. In blocks, a full block
//! stays where it is; only the block being filled has room to spare.

use std::fmt;
use std::ops::{Index, IndexMut};

/// A list of `T` in order, indexed like a list, in blocks of `LEN` items (a power of two,
/// so that a position splits into block and place by shifts).
///
/// Every block but the last holds exactly `LEN` items, so a position's block and place
/// follow from the position, and two lists of the same items have the same blocks (the
/// derived equality compares items). The first block grows as a list does, so a small
/// list takes room in proportion to its items; later blocks are made whole.
///
/// Changes other than [`Blocks::push`] go through [`Blocks::edit`], which rebuilds the
/// blocks: they are for tests and tools, not for the lists a run grows.
#[derive(Clone, PartialEq, Eq)]
pub struct Blocks<T, const LEN: usize> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T, const LEN: usize> Default for Blocks<T, LEN> {
    fn default() -> Self {
        Blocks::new()
    }
}

impl<T, const LEN: usize> Blocks<T, LEN> {
    /// Checked at build time for each `LEN` a list is made with: a block length that is
    /// not a power of two would make every position a division.
    const LEN_IS_A_POWER_OF_TWO: () = assert!(LEN.is_power_of_two());

    pub fn new() -> Self {
        let () = Self::LEN_IS_A_POWER_OF_TWO;
        Blocks { blocks: Vec::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `item`, moving none of those before it once the first block is full.
    pub fn push(&mut self, item: T) {
        let later = self.blocks.len() > 1;
        match self.blocks.last_mut() {
            Some(block) if block.len() < LEN => {
                // A later block is made whole, but a clone of the list holds its items
                // alone: given back its whole room, it does not grow by doubling.
                if later && block.len() == block.capacity() {
                    block.reserve_exact(LEN - block.len());
                }
                block.push(item);
            }
            _ => {
                // The first block starts small and grows; later ones are made whole.
                let mut block =
                    if self.blocks.is_empty() { Vec::new() } else { Vec::with_capacity(LEN) };
                block.push(item);
                self.blocks.push(block);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.blocks.get(index / LEN)?.get(index % LEN)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.blocks.get_mut(index / LEN)?.get_mut(index % LEN)
    }

    pub fn last(&self) -> Option<&T> {
        self.blocks.last()?.last()
    }

    /// The items in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { blocks: self.blocks.iter().flatten(), left: self.len }
    }

    /// The items as one list.
    pub fn into_vec(self) -> Vec<T> {
        let mut whole = Vec::with_capacity(self.len);
        for block in self.blocks {
            whole.extend(block);
        }
        whole
    }

    /// Changes the items as one list (inserting, removing, reordering), then rebuilds the
    /// blocks. Every item is moved twice: for edits by tests and tools, not for a run.
    pub fn edit<R>(&mut self, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut whole = std::mem::take(self).into_vec();
        let result = change(&mut whole);
        *self = Blocks::from(whole);
        result
    }

    /// Inserts `item` at `index` ([`Blocks::edit`]). Panics if `index > len`, as a list's
    /// `insert` does.
    pub fn insert(&mut self, index: usize, item: T) {
        self.edit(|whole| whole.insert(index, item));
    }

    /// Removes and returns the item at `index` ([`Blocks::edit`]). Panics if `index` is
    /// out of bounds, as a list's `remove` does.
    pub fn remove(&mut self, index: usize) -> T {
        self.edit(|whole| whole.remove(index))
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        *self = Blocks::new();
    }

    /// Keeps the items `keep` accepts ([`Blocks::edit`]).
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.edit(|whole| whole.retain(keep));
    }
}

impl<T: Clone, const LEN: usize> Blocks<T, LEN> {
    /// The items as one list, copied.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().cloned().collect()
    }
}

impl<T, const LEN: usize> From<Vec<T>> for Blocks<T, LEN> {
    fn from(whole: Vec<T>) -> Self {
        whole.into_iter().collect()
    }
}

impl<T, const LEN: usize> FromIterator<T> for Blocks<T, LEN> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut list = Blocks::new();
        list.extend(items);
        list
    }
}

impl<T, const LEN: usize> Extend<T> for Blocks<T, LEN> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        for item in items {
            self.push(item);
        }
    }
}

impl<T, const LEN: usize> Index<usize> for Blocks<T, LEN> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(item) => item,
            None => panic!("item {index} of {} is out of bounds", self.len),
        }
    }
}

impl<T, const LEN: usize> IndexMut<usize> for Blocks<T, LEN> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        match self.get_mut(index) {
            Some(item) => item,
            None => panic!("item {index} of {len} is out of bounds"),
        }
    }
}

impl<T: fmt::Debug, const LEN: usize> fmt::Debug for Blocks<T, LEN> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The items of a [`Blocks`] in order ([`Blocks::iter`]).
pub struct Iter<'a, T> {
    blocks: std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>,
    /// Items not yet given, from either end.
    left: usize,
}

impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter { blocks: self.blocks.clone(), left: self.left }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let item = self.blocks.next()?;
        self.left -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }

    /// Skips whole blocks without reading their items.
    fn nth(&mut self, n: usize) -> Option<&'a T> {
        if n >= self.left {
            self.blocks = Default::default();
            self.left = 0;
            return None;
        }
        self.left -= n + 1;
        self.blocks.nth(n)
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.blocks.next_back()?;
        self.left -= 1;
        Some(item)
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<'a, T, const LEN: usize> IntoIterator for &'a Blocks<T, LEN> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<'a, T, const LEN: usize> IntoIterator for &'a mut Blocks<T, LEN> {
    type Item = &'a mut T;
    type IntoIter = std::iter::Flatten<std::slice::IterMut<'a, Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.iter_mut().flatten()
    }
}

impl<T, const LEN: usize> IntoIterator for Blocks<T, LEN> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short blocks, so that a test crosses several.
    const LEN: usize = 8;
    type List = Blocks<u64, LEN>;

    fn items(list: &List) -> Vec<u64> {
        list.iter().copied().collect()
    }

    #[test]
    fn items_across_blocks_read_as_one_list_and_full_blocks_are_never_moved() {
        let count = 3 * LEN + 5;
        let mut list = List::new();
        let mut first_of_block = Vec::new();
        for t in 0..count as u64 {
            list.push(t);
            // A block just filled: where its first item is now.
            if t as usize % LEN == LEN - 1 {
                first_of_block.push(std::ptr::from_ref(&list[t as usize + 1 - LEN]));
            }
        }
        assert_eq!(list.len(), count);
        assert_eq!(list.blocks.len(), 4);
        assert!(list.blocks[..3].iter().all(|b| b.len() == LEN && b.capacity() == LEN));
        // The block being filled was made whole, not grown from its first item.
        assert_eq!(list.blocks[3].capacity(), LEN);
        // Pushing on never moved a full block's items (the first block's moved while it
        // grew, before it was full).
        for (k, &at) in first_of_block.iter().enumerate() {
            assert!(std::ptr::eq(at, &list[k * LEN]), "block {k} moved");
        }
        assert_eq!(items(&list), (0..count as u64).collect::<Vec<_>>());
        assert_eq!(list.iter().len(), count);
        assert_eq!(list.iter().rev().copied().next(), Some(count as u64 - 1));
        for i in [0, LEN - 1, LEN, 2 * LEN + 1, count - 1] {
            assert_eq!(list[i], i as u64);
            assert_eq!(list.get(i), Some(&(i as u64)));
        }
        assert!(list.get(count).is_none());
        // From a position on (past `nth`), across blocks, with the count of those left.
        for start in [0, 1, LEN - 1, LEN, LEN + 1, 3 * LEN, count - 1, count, count + 9] {
            let mut from = list.iter();
            if start > 0 {
                from.nth(start - 1);
            }
            assert_eq!(from.len(), count.saturating_sub(start), "{start}");
            let expected: Vec<u64> = (start.min(count) as u64..count as u64).collect();
            assert_eq!(from.copied().collect::<Vec<_>>(), expected, "{start}");
        }
        assert_eq!(list.iter().next(), Some(&0));
        assert_eq!(list.last(), Some(&(count as u64 - 1)));
        let owned: Vec<u64> = list.clone().into_iter().collect();
        assert_eq!(owned, items(&list));
        assert_eq!(list.to_vec(), owned);
    }

    #[test]
    fn a_clones_later_block_is_given_its_whole_room_again() {
        let mut list: List = (0..(2 * LEN + 1) as u64).collect();
        let mut copy = list.clone();
        for list in [&mut list, &mut copy] {
            list.push(0);
            assert_eq!(list.blocks[2].capacity(), LEN);
        }
        assert_eq!(items(&copy), items(&list));
    }

    #[test]
    fn a_small_list_takes_the_room_of_its_items() {
        let mut list = Blocks::<u64, 4096>::new();
        for t in 0..10 {
            list.push(t);
        }
        assert!(list.blocks[0].capacity() < 64, "{}", list.blocks[0].capacity());
    }

    #[test]
    fn edits_keep_every_block_but_the_last_full() {
        let count = 2 * LEN + 3;
        let mut list: List = (0..count as u64).collect();
        list.insert(1, 1_000_000);
        assert_eq!(list[1], 1_000_000);
        assert_eq!(list[LEN], LEN as u64 - 1);
        assert_eq!(list.remove(1), 1_000_000);
        list.retain(|t| t % 2 == 0);
        assert_eq!(list.len(), count.div_ceil(2));
        let expected: Vec<u64> = (0..count as u64).filter(|t| t % 2 == 0).collect();
        assert_eq!(items(&list), expected);
        let last = list.blocks.len() - 1;
        assert!(list.blocks[..last].iter().all(|b| b.len() == LEN));
        // The same items built another way are equal.
        let rebuilt: List = expected.iter().copied().collect();
        assert_eq!(list, rebuilt);
        list[0] = 7;
        assert_ne!(list, rebuilt);
        for t in &mut list {
            *t += 1;
        }
        assert_eq!(list[1], expected[1] + 1);
        list.clear();
        assert!(list.is_empty() && list.iter().next().is_none());
    }
}
