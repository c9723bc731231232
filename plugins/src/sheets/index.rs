//! Which row each response has in its sheet, and how a tab's responses split into overwrites of
//! existing rows and one append of new ones.
//!
//! The exporter keeps one [`RowIndex`] per sheet in memory. It is built from the sheet itself (the
//! `response_id` column read back) the first time a process writes to the sheet, kept up to date with
//! the rows each append reports, and dropped after a write whose outcome is unknown, so that the next
//! write reads the column again (see [`crate::sheets::export`]).

use std::collections::HashMap;

/// `response_id` → the number of its row in one sheet (the header is row 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowIndex {
    rows: HashMap<String, u64>,
}

impl RowIndex {
    /// An index from a `response_id` column read back from a sheet: the `n`th cell (from 0) is row
    /// `first_row + n`, `None` or an empty text is an empty cell. Row 1 (the header) and empty cells are
    /// skipped. An id in several rows (written twice before rows were updated in place) maps to its last
    /// row, the one readers of the sheet were told to take as current.
    pub fn from_column(first_row: u64, cells: impl IntoIterator<Item = Option<String>>) -> Self {
        let mut index = Self::default();
        for (row, cell) in (first_row..).zip(cells) {
            match cell {
                Some(id) if row > 1 && !id.is_empty() => index.insert(id, row),
                _ => {}
            }
        }
        index
    }

    /// The row of `response_id`, if it has one.
    pub fn row_of(&self, response_id: &str) -> Option<u64> {
        self.rows.get(response_id).copied()
    }

    /// Records that `response_id` is in row `row`.
    pub fn insert(&mut self, response_id: String, row: u64) {
        self.rows.insert(response_id, row);
    }

    /// How many responses have a row.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no response has a row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Where a response of a tab's group is written: the `k`th overwrite or the `k`th appended row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Update(usize),
    Append(usize),
}

/// A tab's writes for one group of responses: each entry names the response (its position in the
/// group) whose values are written.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `(row number, position)`: rows the sheet has already, overwritten in one request.
    pub(crate) updates: Vec<(u64, usize)>,
    /// Positions of the responses appended as new rows, in one request, in this order.
    pub(crate) appends: Vec<usize>,
    /// The slot of each response of the group, in the group's order.
    pub(crate) slots: Vec<Slot>,
}

/// Splits a group of responses, given by their ids in the events' order, into overwrites of the rows
/// `index` knows and one append of the others. An id met twice gets one slot, written with the values of
/// its last response (the later event wins); every response of that id answers with that slot.
pub(crate) fn plan<'a>(ids: impl IntoIterator<Item = &'a str>, index: &RowIndex) -> Plan {
    let mut plan = Plan::default();
    let mut slot_of: HashMap<&str, Slot> = HashMap::new();
    for (position, id) in ids.into_iter().enumerate() {
        let slot = match slot_of.get(id) {
            Some(&Slot::Update(k)) => {
                plan.updates[k].1 = position;
                Slot::Update(k)
            }
            Some(&Slot::Append(k)) => {
                plan.appends[k] = position;
                Slot::Append(k)
            }
            None => plan.new_slot(index.row_of(id), position),
        };
        slot_of.insert(id, slot);
        plan.slots.push(slot);
    }
    plan
}

impl Plan {
    fn new_slot(&mut self, row: Option<u64>, position: usize) -> Slot {
        match row {
            Some(row) => {
                self.updates.push((row, position));
                Slot::Update(self.updates.len() - 1)
            }
            None => {
                self.appends.push(position);
                Slot::Append(self.appends.len() - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(cells: &[&str]) -> Vec<Option<String>> {
        cells
            .iter()
            .map(|c| (!c.is_empty()).then(|| (*c).to_owned()))
            .collect()
    }

    #[test]
    fn the_index_skips_the_header_and_empty_cells_and_keeps_the_last_row() {
        let index = RowIndex::from_column(1, column(&["response_id", "r-1", "", "r-2", "r-1"]));
        assert_eq!(index.row_of("r-1"), Some(5));
        assert_eq!(index.row_of("r-2"), Some(4));
        assert_eq!(index.row_of("response_id"), None);
        assert_eq!(index.len(), 2);
        // A column read from row 3 on counts from there.
        let index = RowIndex::from_column(3, column(&["r-7"]));
        assert_eq!(index.row_of("r-7"), Some(3));
        assert!(RowIndex::from_column(1, column(&["response_id"])).is_empty());
    }

    #[test]
    fn known_ids_are_updates_and_the_others_one_append() {
        let mut index = RowIndex::default();
        index.insert("r-1".into(), 2);
        index.insert("r-2".into(), 3);
        let plan = plan(["r-3", "r-2", "r-4"], &index);
        assert_eq!(plan.updates, [(3, 1)]);
        assert_eq!(plan.appends, [0, 2]);
        assert_eq!(plan.slots, [Slot::Append(0), Slot::Update(0), Slot::Append(1)]);
    }

    #[test]
    fn an_id_twice_in_a_group_gets_one_slot_with_the_later_values() {
        let mut index = RowIndex::default();
        index.insert("r-1".into(), 2);
        let plan = plan(["r-1", "r-5", "r-1", "r-5", "r-6"], &index);
        assert_eq!(plan.updates, [(2, 2)]);
        assert_eq!(plan.appends, [3, 4]);
        assert_eq!(
            plan.slots,
            [
                Slot::Update(0),
                Slot::Append(0),
                Slot::Update(0),
                Slot::Append(0),
                Slot::Append(1)
            ]
        );
        assert_eq!(super::plan([], &index), Plan::default());
    }
}
