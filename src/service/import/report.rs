//! What an import reads and what it answers: the files, and the report the summary is printed
//! from.

use serde::{Deserialize, Serialize};

use crate::domain::users::Role;

/// One export file, as the client read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportFile {
    /// Shown in the report (`name:line`).
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    pub files: usize,
    /// Documents read (JSON objects), whatever became of them.
    pub documents: usize,
    /// Written now (or, in a dry run, that would be).
    pub imported: Counts,
    /// Imported by an earlier run.
    pub already_there: Counts,
    pub skipped: Vec<Skipped>,
    /// Documents whose id meet could not keep.
    pub mapped_ids: Vec<MappedId>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub admins: u64,
    pub hosts: u64,
    pub students: u64,
    pub meetings: u64,
    pub recordings: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.admins + self.hosts + self.students + self.meetings + self.recordings
    }

    pub(super) fn add(&mut self, what: What) {
        *match what {
            What::User(Role::Admin) => &mut self.admins,
            What::User(Role::Host) => &mut self.hosts,
            What::User(Role::Student) => &mut self.students,
            What::Meeting => &mut self.meetings,
            What::Recording => &mut self.recordings,
        } += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// `file:line`.
    pub at: String,
    /// `user 65b1… (alice)`, when the document could be read.
    pub document: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedId {
    pub collection: String,
    pub original: String,
    pub meet: String,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum What {
    User(Role),
    Meeting,
    Recording,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let mut c = Counts::default();
        for w in [
            What::User(Role::Admin),
            What::User(Role::Student),
            What::Meeting,
        ] {
            c.add(w);
        }
        assert_eq!((c.admins, c.students, c.meetings, c.total()), (1, 1, 1, 3));
    }
}
