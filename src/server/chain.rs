//! The hash chain, as plain functions: the canonical serialisation of an
//! event, its hashes, and the walk that checks a chain entry by entry.
//! docs/integrity.md describes the format for anyone re-implementing it.

use crate::integrity::{
    Checkpoint, DeletedBy, DeletedRange, Problem, ProblemKind, VerificationReport, VerifyMode,
    WalkStart, MAX_DELETED_RANGES, MAX_PROBLEMS,
};
use sha2::{Digest, Sha256};

/// Starts every canonical serialisation (the format's version).
pub const DOMAIN: &[u8] = b"auditdeck.event.v1\n";
/// The content of a tombstone whose event was deleted before the chain existed.
pub const OLD_TOMBSTONE_DOMAIN: &[u8] = b"auditdeck.tombstone.v1\n";

/// The canonical fields, in order.
pub const FIELDS: [&str; 19] = [
    "id",
    "occurred_at",
    "received_at",
    "ip",
    "initiator_kind",
    "initiator_id",
    "initiator_name",
    "initiator_email",
    "initiator_role",
    "action",
    "table_name",
    "primary_key",
    "description",
    "before",
    "after",
    "user_agent",
    "request_id",
    "session_id",
    "api_key_id",
];

/// Bytes of `field_sums`: two per field.
pub const SUMS_LEN: usize = FIELDS.len() * 2;

pub type Hash = [u8; 32];

/// The chain hash before the first entry.
pub const GENESIS: Hash = [0; 32];

/// An event's stored fields, exactly as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFields<'a> {
    pub id: i64,
    pub occurred_at: i64,
    pub received_at: i64,
    pub ip: Option<&'a str>,
    pub initiator_kind: &'a str,
    pub initiator_id: Option<&'a str>,
    pub initiator_name: Option<&'a str>,
    pub initiator_email: Option<&'a str>,
    pub initiator_role: Option<&'a str>,
    pub action: &'a str,
    pub table_name: Option<&'a str>,
    pub primary_key: Option<&'a str>,
    pub description: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub api_key_id: Option<i64>,
}

/// An event's content hash and field checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    pub content: Hash,
    pub sums: [u8; SUMS_LEN],
}

/// Writes the canonical serialisation into `buf` (cleared first) and hashes
/// it. Each field in [`FIELDS`] order: `0x00` for NULL, or `0x01`, the
/// value's byte length as a 4-byte big-endian number, then its bytes
/// (integers as decimal ASCII, text as UTF-8).
pub fn hash_event(f: &EventFields<'_>, buf: &mut Vec<u8>) -> Hashed {
    buf.clear();
    buf.extend_from_slice(DOMAIN);
    let mut sums = [0u8; SUMS_LEN];
    let mut n = 0;
    let mut put = |buf: &mut Vec<u8>, value: Option<&[u8]>| {
        let start = buf.len();
        match value {
            None => buf.push(0),
            Some(bytes) => {
                buf.push(1);
                // A field is at most a few MB (the ingest body limit).
                buf.extend_from_slice(
                    &u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes(),
                );
                buf.extend_from_slice(bytes);
            }
        }
        let sum = (crc32fast::hash(&buf[start..]) & 0xffff) as u16;
        sums[n * 2..n * 2 + 2].copy_from_slice(&sum.to_be_bytes());
        n += 1;
    };
    let mut int = itoa::Buffer::new();
    put(buf, Some(int.format(f.id).as_bytes()));
    put(buf, Some(int.format(f.occurred_at).as_bytes()));
    put(buf, Some(int.format(f.received_at).as_bytes()));
    put(buf, f.ip.map(str::as_bytes));
    put(buf, Some(f.initiator_kind.as_bytes()));
    put(buf, f.initiator_id.map(str::as_bytes));
    put(buf, f.initiator_name.map(str::as_bytes));
    put(buf, f.initiator_email.map(str::as_bytes));
    put(buf, f.initiator_role.map(str::as_bytes));
    put(buf, Some(f.action.as_bytes()));
    put(buf, f.table_name.map(str::as_bytes));
    put(buf, f.primary_key.map(str::as_bytes));
    put(buf, Some(f.description.as_bytes()));
    put(buf, f.before.map(str::as_bytes));
    put(buf, f.after.map(str::as_bytes));
    put(buf, f.user_agent.map(str::as_bytes));
    put(buf, f.request_id.map(str::as_bytes));
    put(buf, f.session_id.map(str::as_bytes));
    let api_key = f.api_key_id.map(|k| int.format(k).as_bytes().to_vec());
    put(buf, api_key.as_deref());
    Hashed {
        content: Sha256::digest(&buf[..]).into(),
        sums,
    }
}

/// The chain hash of an entry: SHA-256(previous chain hash ‖ content hash).
pub fn link(prev: &Hash, content: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(content);
    h.finalize().into()
}

/// The content hash given to a tombstone whose event was deleted before the
/// chain existed (its content is gone): SHA-256 of the tombstone domain, id
/// and time.
pub fn old_tombstone_content(id: i64, occurred_at: i64) -> Hash {
    let mut h = Sha256::new();
    h.update(OLD_TOMBSTONE_DOMAIN);
    h.update(id.to_be_bytes());
    h.update(occurred_at.to_be_bytes());
    h.finalize().into()
}

/// The names of the fields whose checksums differ.
pub fn changed_fields(stored: &[u8], computed: &[u8; SUMS_LEN]) -> Vec<String> {
    if stored.len() != SUMS_LEN {
        return Vec::new();
    }
    FIELDS
        .iter()
        .enumerate()
        .filter(|(i, _)| stored[i * 2..i * 2 + 2] != computed[i * 2..i * 2 + 2])
        .map(|(_, name)| (*name).to_string())
        .collect()
}

fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// One chain entry as the walk reads it. A short-lived value on the stack,
/// one per entry walked: boxing the larger variant would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    Event {
        fields: EventFields<'a>,
        content_hash: Option<&'a [u8]>,
        chain_hash: Option<&'a [u8]>,
        field_sums: Option<&'a [u8]>,
    },
    Tombstone {
        id: i64,
        content_hash: Option<&'a [u8]>,
        chain_hash: Option<&'a [u8]>,
        by: DeletedBy,
    },
}

impl Entry<'_> {
    pub fn id(&self) -> i64 {
        match self {
            Self::Event { fields, .. } => fields.id,
            Self::Tombstone { id, .. } => *id,
        }
    }
}

/// A checkpoint to hold the chain to, from the database or a file kept elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub checkpoint: i64,
    pub last_id: i64,
    pub entry_count: i64,
    pub hash: Hash,
}

impl Expected {
    pub fn of(c: &Checkpoint) -> Option<Self> {
        Some(Self {
            checkpoint: c.id,
            last_id: c.last_id,
            entry_count: c.entry_count,
            hash: to_hash(&hex::decode(&c.chain_hash).ok()?)?,
        })
    }
}

/// Walks chain entries in id order and builds the report: constant memory
/// (at most [`MAX_PROBLEMS`] problems and [`MAX_DELETED_RANGES`] ranges kept).
pub struct Walker {
    prev_id: i64,
    prev_hash: Hash,
    count: i64,
    /// Checkpoints still ahead, by `last_id` descending (the next one last).
    ahead: Vec<Expected>,
    buf: Vec<u8>,
    report: VerificationReport,
    open_range: Option<DeletedRange>,
    /// The entry before was a row moved from another position.
    prev_moved: bool,
}

impl Walker {
    /// Starts after entry `start.after_id`, whose chain hash is `hash`, with
    /// `count` entries up to it.
    pub fn new(
        mode: VerifyMode,
        start: WalkStart,
        hash: Hash,
        count: i64,
        mut checkpoints: Vec<Expected>,
    ) -> Self {
        checkpoints.retain(|c| c.last_id > start.after_id);
        checkpoints.sort_by_key(|c| std::cmp::Reverse(c.last_id));
        Self {
            prev_id: start.after_id,
            prev_hash: hash,
            count,
            ahead: checkpoints,
            buf: Vec::with_capacity(1024),
            report: VerificationReport {
                mode,
                end_id: start.after_id,
                end_hash: hex::encode(hash),
                end_count: count,
                start,
                checked: 0,
                events: 0,
                tombstones: 0,
                problems: Vec::new(),
                more_problems: 0,
                deleted: Vec::new(),
                more_deleted: 0,
                checkpoints_confirmed: 0,
            },
            open_range: None,
            prev_moved: false,
        }
    }

    pub fn checked(&self) -> u64 {
        self.report.checked
    }

    pub fn problems(&self) -> usize {
        self.report.problems.len()
    }

    fn problem(&mut self, id: i64, kind: ProblemKind) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(Problem { id, kind });
        } else {
            self.report.more_problems += 1;
        }
    }

    /// A checkpoint the chain does not match: another hash or count at its
    /// entry (`found`), or no such entry at all (`None`).
    fn checkpoint_problem(&mut self, c: &Expected, found: Option<&Hash>) {
        self.problem(
            c.last_id,
            ProblemKind::Checkpoint {
                checkpoint: c.checkpoint,
                recorded_hash: hex::encode(c.hash),
                found_hash: found.map(hex::encode).unwrap_or_default(),
                recorded_count: c.entry_count,
                found_count: self.count,
            },
        );
    }

    /// Adds tombstone `id` to the open range, or opens a new one.
    fn extend_range(&mut self, id: i64, by: DeletedBy) {
        match &mut self.open_range {
            Some(range) if range.by == by && range.last + 1 == id => {
                range.last = id;
                range.count += 1;
            }
            _ => {
                self.close_range();
                self.open_range = Some(DeletedRange {
                    first: id,
                    last: id,
                    count: 1,
                    by,
                });
            }
        }
    }

    fn close_range(&mut self) {
        if let Some(range) = self.open_range.take() {
            if self.report.deleted.len() < MAX_DELETED_RANGES {
                self.report.deleted.push(range);
            } else {
                self.report.more_deleted += 1;
            }
        }
    }

    /// Checks one entry against the one before it.
    pub fn push(&mut self, entry: Entry<'_>) {
        let id = entry.id();
        self.report.checked += 1;
        let gap = id != self.prev_id + 1;
        if gap {
            self.problem(
                id,
                ProblemKind::Missing {
                    first: self.prev_id + 1,
                    last: id - 1,
                },
            );
        }
        // Checkpoints the walk stepped over without landing on.
        while self.ahead.last().is_some_and(|c| c.last_id < id) {
            if let Some(c) = self.ahead.pop() {
                self.checkpoint_problem(&c, None);
            }
        }
        let (content_hash, chain_hash, event) = match entry {
            Entry::Event {
                fields,
                content_hash,
                chain_hash,
                field_sums,
            } => {
                self.report.events += 1;
                self.close_range();
                (content_hash, chain_hash, Some((fields, field_sums)))
            }
            Entry::Tombstone {
                content_hash,
                chain_hash,
                by,
                ..
            } => {
                self.report.tombstones += 1;
                self.extend_range(id, by);
                (content_hash, chain_hash, None)
            }
        };
        let (Some(content), Some(chain)) =
            (content_hash.and_then(to_hash), chain_hash.and_then(to_hash))
        else {
            self.problem(id, ProblemKind::Unchained);
            self.prev_id = id;
            self.prev_moved = false;
            return;
        };
        let mut moved = false;
        // An event's fields must still hash to its content hash (a
        // tombstone's content is gone: its stored hash stands for it).
        if let Some((fields, field_sums)) = event {
            let computed = hash_event(&fields, &mut self.buf);
            if computed.content != content {
                let fields = changed_fields(field_sums.unwrap_or_default(), &computed.sums);
                moved = fields.iter().any(|f| f == "id");
                self.problem(
                    id,
                    ProblemKind::Content {
                        fields,
                        stored: hex::encode(content),
                        computed: hex::encode(computed.content),
                    },
                );
            }
        }
        let computed = link(&self.prev_hash, &content);
        // A moved row breaks its own link and the next one's: the move
        // (already reported) explains both.
        let explained = gap || moved || self.prev_moved;
        self.prev_moved = moved;
        if computed != chain && !explained {
            self.problem(
                id,
                ProblemKind::Link {
                    stored: hex::encode(chain),
                    computed: hex::encode(computed),
                },
            );
        }
        // Go on from what is stored, so that each later problem shows on its own.
        self.prev_id = id;
        self.prev_hash = chain;
        self.count += 1;
        while self.ahead.last().is_some_and(|c| c.last_id == id) {
            if let Some(c) = self.ahead.pop() {
                if c.hash == chain && c.entry_count == self.count {
                    self.report.checkpoints_confirmed += 1;
                } else {
                    self.checkpoint_problem(&c, Some(&chain));
                }
            }
        }
    }

    /// Ends the walk: the chain must end at the head Auditdeck recorded.
    pub fn finish(mut self, head_id: i64, head_hash: &Hash) -> VerificationReport {
        self.close_range();
        if self.prev_id != head_id || (self.prev_hash != *head_hash && head_id > 0) {
            self.problem(
                head_id.max(self.prev_id),
                ProblemKind::Head {
                    recorded_id: head_id,
                    recorded_hash: hex::encode(head_hash),
                    found_id: self.prev_id,
                    found_hash: hex::encode(self.prev_hash),
                },
            );
        }
        while let Some(c) = self.ahead.pop() {
            self.checkpoint_problem(&c, None);
        }
        self.report.end_id = self.prev_id;
        self.report.end_hash = hex::encode(self.prev_hash);
        self.report.end_count = self.count;
        self.report
    }

    /// The entry count so far (entries up to the last one walked).
    pub fn count(&self) -> i64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(id: i64, description: &str) -> EventFields<'_> {
        EventFields {
            id,
            occurred_at: 1_700_000_000_000_000 + id,
            received_at: 1_700_000_000_000_000,
            ip: Some("10.0.0.1"),
            initiator_kind: "user",
            initiator_id: Some("u1"),
            initiator_name: Some("Ann"),
            initiator_email: None,
            initiator_role: None,
            action: "UPDATE",
            table_name: Some("orders"),
            primary_key: Some("7"),
            description,
            before: Some("{\"a\":1}"),
            after: None,
            user_agent: None,
            request_id: None,
            session_id: None,
            api_key_id: Some(3),
        }
    }

    struct Stored {
        fields: EventFields<'static>,
        content: Hash,
        chain: Hash,
        sums: [u8; SUMS_LEN],
    }

    impl Stored {
        fn entry(&self) -> Entry<'_> {
            Entry::Event {
                fields: self.fields,
                content_hash: Some(&self.content),
                chain_hash: Some(&self.chain),
                field_sums: Some(&self.sums),
            }
        }
    }

    fn from_the_beginning() -> WalkStart {
        WalkStart {
            after_id: 0,
            hash: hex::encode(GENESIS),
            from: "the beginning".into(),
        }
    }

    fn chain(descriptions: &[&'static str]) -> Vec<Stored> {
        let mut prev = GENESIS;
        let mut buf = Vec::new();
        descriptions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let f = fields(i as i64 + 1, d);
                let h = hash_event(&f, &mut buf);
                prev = link(&prev, &h.content);
                Stored {
                    fields: f,
                    content: h.content,
                    chain: prev,
                    sums: h.sums,
                }
            })
            .collect()
    }

    fn walk(rows: &[Stored]) -> VerificationReport {
        let start = from_the_beginning();
        let mut w = Walker::new(VerifyMode::Full, start, GENESIS, 0, Vec::new());
        for r in rows {
            w.push(r.entry());
        }
        let head = rows
            .last()
            .map(|r| (r.fields.id, r.chain))
            .unwrap_or((0, GENESIS));
        w.finish(head.0, &head.1)
    }

    #[test]
    fn the_serialisation_is_fixed() {
        let mut buf = Vec::new();
        let h = hash_event(&fields(1, "x"), &mut buf);
        // Changing the format changes this: bump the domain's version then.
        assert!(buf.starts_with(DOMAIN));
        assert_eq!(&buf[DOMAIN.len()..DOMAIN.len() + 6], &[1, 0, 0, 0, 1, b'1']);
        assert_eq!(h.content, <[u8; 32]>::from(Sha256::digest(&buf)));
        // NULL and empty text differ.
        let mut none = fields(1, "x");
        none.after = Some("");
        assert_ne!(hash_event(&none, &mut buf).content, h.content);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(&["a", "b", "c"]);
        let report = walk(&rows);
        assert!(report.intact(), "{:?}", report.problems);
        assert_eq!(report.checked, 3);
        assert_eq!(report.end_id, 3);
    }

    #[test]
    fn an_edited_field_is_named() {
        let mut rows = chain(&["a", "b", "c"]);
        rows[1].fields.description = "B";
        let report = walk(&rows);
        assert_eq!(report.problems.len(), 1);
        let p = &report.problems[0];
        assert_eq!(p.id, 2);
        assert!(
            matches!(&p.kind, ProblemKind::Content { fields, .. } if fields == &["description"])
        );
    }

    #[test]
    fn a_removed_entry_and_a_swap_are_pinpointed() {
        let mut rows = chain(&["a", "b", "c", "d"]);
        rows.remove(1);
        let report = walk(&rows);
        assert_eq!(report.problems[0].id, 3);
        assert_eq!(
            report.problems[0].kind,
            ProblemKind::Missing { first: 2, last: 2 }
        );

        let rows = chain(&["a", "b", "c", "d"]);
        // Rows 2 and 3 exchange ids, everything else moving with them.
        let mut swapped: Vec<Stored> = rows;
        swapped.swap(1, 2);
        swapped[1].fields.id = 2;
        swapped[2].fields.id = 3;
        let report = walk(&swapped);
        let first = &report.problems[0];
        assert_eq!(first.id, 2);
        assert!(
            matches!(&first.kind, ProblemKind::Content { fields, .. } if fields.contains(&"id".to_string()))
        );
    }

    #[test]
    fn a_truncated_tail_is_caught_by_the_head() {
        let rows = chain(&["a", "b", "c"]);
        let start = from_the_beginning();
        let mut w = Walker::new(VerifyMode::Full, start, GENESIS, 0, Vec::new());
        for r in &rows[..2] {
            w.push(r.entry());
        }
        let report = w.finish(3, &rows[2].chain);
        assert!(matches!(
            report.problems[0].kind,
            ProblemKind::Head {
                recorded_id: 3,
                found_id: 2,
                ..
            }
        ));
    }

    #[test]
    fn tombstones_keep_the_chain_and_form_ranges() {
        let rows = chain(&["a", "b", "c", "d"]);
        let start = from_the_beginning();
        let checkpoint = Expected {
            checkpoint: 1,
            last_id: 3,
            entry_count: 3,
            hash: rows[2].chain,
        };
        let mut w = Walker::new(VerifyMode::Full, start, GENESIS, 0, vec![checkpoint]);
        for (i, r) in rows.iter().enumerate() {
            if i == 1 || i == 2 {
                w.push(Entry::Tombstone {
                    id: r.fields.id,
                    content_hash: Some(&r.content),
                    chain_hash: Some(&r.chain),
                    by: DeletedBy::Deletion { event_id: 9 },
                });
            } else {
                w.push(r.entry());
            }
        }
        let report = w.finish(4, &rows[3].chain);
        assert!(report.intact(), "{:?}", report.problems);
        assert_eq!(report.checkpoints_confirmed, 1);
        assert_eq!(report.deleted.len(), 1);
        assert_eq!(
            (
                report.deleted[0].first,
                report.deleted[0].last,
                report.deleted[0].count
            ),
            (2, 3, 2)
        );
    }
}
