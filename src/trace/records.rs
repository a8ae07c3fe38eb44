//! [`Records`]: a trace's records in memory, in blocks that are never moved ([`Blocks`]).
//!
//! A large run keeps a million records or more (`Keeper`). In one growing list, each
//! doubling copied every record kept so far into new pages while the old ones were still
//! held: at a thousand servers the last doubling copied 142 MB into a new list with room
//! for 285 MB, both held for the moment of the copy, and the room not yet used stayed
//! reserved to the end of the run. A block, once full, stays where it is; only the block
//! being filled has room to spare.

use crate::stdx::Blocks;

use super::Record;

/// Records per full block. At 104 bytes a record, a block is some 430 KB: large enough
/// that the list of blocks stays short, small enough that the one being filled wastes
/// little.
const BLOCK: usize = 1 << 12;

/// A trace's records in order, indexed like a list ([`Blocks`]).
pub type Records = Blocks<Record, BLOCK>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Body;

    fn record(t: u64) -> Record {
        Record { t, body: Body::FaultStart { fault: 0 } }
    }

    #[test]
    fn records_past_a_block_read_back_in_order_and_edit_as_one_list() {
        let count = BLOCK + 3;
        let mut records: Records = (0..count as u64).map(record).collect();
        assert_eq!(records.len(), count);
        assert_eq!(records[BLOCK].t, BLOCK as u64);
        assert_eq!(records.iter().nth(BLOCK + 2).map(|r| r.t), Some(count as u64 - 1));
        records.retain(|r| r.t % 2 == 1);
        let odd: Vec<u64> = records.iter().map(|r| r.t).collect();
        assert_eq!(odd, (0..count as u64).filter(|t| t % 2 == 1).collect::<Vec<_>>());
    }
}
