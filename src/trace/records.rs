//! [`Records`]: a trace's records in memory, in blocks that are never moved.
//!
//! A large run keeps a million records or more (`Keeper`). In one growing list, each
//! doubling copied every record kept so far into new pages while the old ones were still
//! held: at a thousand servers the last doubling copied 142 MB into a new list with room
//! for 285 MB, both held for the moment of the copy, and the room not yet used stayed
//! reserved to the end of the run. A block, once full, stays where it is; only the block
//! being filled has room to spare.

use std::fmt;
use std::ops::{Index, IndexMut};

use super::Record;

/// Records per full block (a power of two, so that a position splits by shifts). At
/// 136 bytes a record, a block is some 550 KB: large enough that the list of blocks stays
/// short, small enough that the one being filled wastes little.
const BLOCK: usize = 1 << 12;

/// A trace's records in order, indexed like a list.
///
/// Every block but the last holds exactly [`BLOCK`] records, so a position's block and
/// place follow from the position, and two lists of the same records have the same
/// blocks (the derived equality compares records). The first block grows as a list
/// does, so a small trace takes room in proportion to its records; later blocks are
/// made whole.
///
/// Changes other than [`Records::push`] (used by tests and tools that edit a trace, not
/// by a run) go through [`Records::edit`], which rebuilds the blocks.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Records {
    blocks: Vec<Vec<Record>>,
    len: usize,
}

impl Records {
    pub fn new() -> Records {
        Records::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `record`, moving none of those before it once the first block is full.
    pub fn push(&mut self, record: Record) {
        match self.blocks.last_mut() {
            Some(block) if block.len() < BLOCK => block.push(record),
            _ => {
                // The first block starts small and grows; later ones are made whole.
                let mut block =
                    if self.blocks.is_empty() { Vec::new() } else { Vec::with_capacity(BLOCK) };
                block.push(record);
                self.blocks.push(block);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, index: usize) -> Option<&Record> {
        self.blocks.get(index / BLOCK)?.get(index % BLOCK)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut Record> {
        self.blocks.get_mut(index / BLOCK)?.get_mut(index % BLOCK)
    }

    pub fn last(&self) -> Option<&Record> {
        self.blocks.last()?.last()
    }

    /// The records in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { blocks: self.blocks.iter().flatten(), left: self.len }
    }

    /// The records as one list, copied.
    pub fn to_vec(&self) -> Vec<Record> {
        self.iter().cloned().collect()
    }

    /// The records as one list.
    pub fn into_vec(self) -> Vec<Record> {
        let mut whole = Vec::with_capacity(self.len);
        for block in self.blocks {
            whole.extend(block);
        }
        whole
    }

    /// Changes the records as one list (inserting, removing, reordering), then rebuilds
    /// the blocks. Every record is moved twice: for edits of a trace, not for a run.
    pub fn edit<T>(&mut self, change: impl FnOnce(&mut Vec<Record>) -> T) -> T {
        let mut whole = std::mem::take(self).into_vec();
        let result = change(&mut whole);
        *self = Records::from(whole);
        result
    }

    /// Inserts `record` at `index` ([`Records::edit`]). Panics if `index > len`, as a
    /// list's `insert` does.
    pub fn insert(&mut self, index: usize, record: Record) {
        self.edit(|whole| whole.insert(index, record));
    }

    /// Removes and returns the record at `index` ([`Records::edit`]). Panics if `index`
    /// is out of bounds, as a list's `remove` does.
    pub fn remove(&mut self, index: usize) -> Record {
        self.edit(|whole| whole.remove(index))
    }

    /// Removes every record.
    pub fn clear(&mut self) {
        *self = Records::new();
    }

    /// Keeps the records `keep` accepts ([`Records::edit`]).
    pub fn retain(&mut self, keep: impl FnMut(&Record) -> bool) {
        self.edit(|whole| whole.retain(keep));
    }
}

impl From<Vec<Record>> for Records {
    fn from(whole: Vec<Record>) -> Records {
        whole.into_iter().collect()
    }
}

impl FromIterator<Record> for Records {
    fn from_iter<I: IntoIterator<Item = Record>>(records: I) -> Records {
        let mut list = Records::new();
        list.extend(records);
        list
    }
}

impl Extend<Record> for Records {
    fn extend<I: IntoIterator<Item = Record>>(&mut self, records: I) {
        for record in records {
            self.push(record);
        }
    }
}

impl Index<usize> for Records {
    type Output = Record;

    fn index(&self, index: usize) -> &Record {
        match self.get(index) {
            Some(record) => record,
            None => panic!("record {index} of {} is out of bounds", self.len),
        }
    }
}

impl IndexMut<usize> for Records {
    fn index_mut(&mut self, index: usize) -> &mut Record {
        let len = self.len;
        match self.get_mut(index) {
            Some(record) => record,
            None => panic!("record {index} of {len} is out of bounds"),
        }
    }
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The records of a [`Records`] in order ([`Records::iter`]).
#[derive(Clone)]
pub struct Iter<'a> {
    blocks: std::iter::Flatten<std::slice::Iter<'a, Vec<Record>>>,
    /// Records not yet given, from either end.
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Record;

    fn next(&mut self) -> Option<&'a Record> {
        let record = self.blocks.next()?;
        self.left -= 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }

    /// Skips whole blocks without reading their records.
    fn nth(&mut self, n: usize) -> Option<&'a Record> {
        if n >= self.left {
            self.blocks = Default::default();
            self.left = 0;
            return None;
        }
        self.left -= n + 1;
        self.blocks.nth(n)
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let record = self.blocks.next_back()?;
        self.left -= 1;
        Some(record)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Records {
    type Item = &'a Record;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Records {
    type Item = &'a mut Record;
    type IntoIter = std::iter::Flatten<std::slice::IterMut<'a, Vec<Record>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.iter_mut().flatten()
    }
}

impl IntoIterator for Records {
    type Item = Record;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<Record>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Body;

    fn record(t: u64) -> Record {
        Record { t, body: Body::FaultStart { fault: 0 } }
    }

    fn times(records: &Records) -> Vec<u64> {
        records.iter().map(|r| r.t).collect()
    }

    #[test]
    fn records_across_blocks_read_as_one_list_and_full_blocks_are_never_moved() {
        let count = 3 * BLOCK + 5;
        let mut records = Records::new();
        let mut first_of_block = Vec::new();
        for t in 0..count as u64 {
            records.push(record(t));
            // A block just filled: where its first record is now.
            if t as usize % BLOCK == BLOCK - 1 {
                first_of_block.push(std::ptr::from_ref(&records[t as usize + 1 - BLOCK]));
            }
        }
        assert_eq!(records.len(), count);
        assert_eq!(records.blocks.len(), 4);
        assert!(records.blocks[..3].iter().all(|b| b.len() == BLOCK && b.capacity() == BLOCK));
        // The block being filled was made whole, not grown from its first record.
        assert_eq!(records.blocks[3].capacity(), BLOCK);
        // Pushing on never moved a full block's records (the first block's moved while
        // it grew, before it was full).
        for (k, &at) in first_of_block.iter().enumerate() {
            assert!(std::ptr::eq(at, &records[k * BLOCK]), "block {k} moved");
        }
        assert_eq!(times(&records), (0..count as u64).collect::<Vec<_>>());
        assert_eq!(records.iter().len(), count);
        assert_eq!(records.iter().rev().map(|r| r.t).next(), Some(count as u64 - 1));
        for i in [0, BLOCK - 1, BLOCK, 2 * BLOCK + 1, count - 1] {
            assert_eq!(records[i].t, i as u64);
            assert_eq!(records.get(i).map(|r| r.t), Some(i as u64));
        }
        assert!(records.get(count).is_none());
        // From a position on (past `nth`), across blocks, with the count of those left.
        for start in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, count - 1, count, count + 9] {
            let mut from = records.iter();
            if start > 0 {
                from.nth(start - 1);
            }
            assert_eq!(from.len(), count.saturating_sub(start), "{start}");
            let expected: Vec<u64> = (start.min(count) as u64..count as u64).collect();
            assert_eq!(from.map(|r| r.t).collect::<Vec<_>>(), expected, "{start}");
        }
        assert_eq!(records.iter().next().map(|r| r.t), Some(0));
        assert_eq!(records.last().map(|r| r.t), Some(count as u64 - 1));
        let owned: Vec<u64> = records.clone().into_iter().map(|r| r.t).collect();
        assert_eq!(owned, times(&records));
    }

    #[test]
    fn a_small_list_takes_the_room_of_its_records() {
        let mut records = Records::new();
        for t in 0..10 {
            records.push(record(t));
        }
        assert!(records.blocks[0].capacity() < 64, "{}", records.blocks[0].capacity());
    }

    #[test]
    fn edits_keep_every_block_but_the_last_full() {
        let count = 2 * BLOCK + 3;
        let mut records: Records = (0..count as u64).map(record).collect();
        records.insert(1, record(1_000_000));
        assert_eq!(records[1].t, 1_000_000);
        assert_eq!(records[BLOCK].t, BLOCK as u64 - 1);
        assert_eq!(records.remove(1).t, 1_000_000);
        records.retain(|r| r.t % 2 == 0);
        assert_eq!(records.len(), count.div_ceil(2));
        let expected: Vec<u64> = (0..count as u64).filter(|t| t % 2 == 0).collect();
        assert_eq!(times(&records), expected);
        let last = records.blocks.len() - 1;
        assert!(records.blocks[..last].iter().all(|b| b.len() == BLOCK));
        // The same records built another way are equal.
        let rebuilt: Records = expected.iter().map(|&t| record(t)).collect();
        assert_eq!(records, rebuilt);
        records[0].t = 7;
        assert_ne!(records, rebuilt);
    }
}
