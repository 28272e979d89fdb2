//! The dm table algebra: build the table a device's members make (linear concatenates
//! them, striped maps `stripes x floor(min member / chunk) x chunk`), compare a live
//! table with a wanted one, and say what a reload moves. Used by the planner (the dm
//! layer's rule), by the apply-time guard on a reload (which rebuilds the table from the
//! members as they are then) and by the bound view of the declared devices. The kernel's
//! text form of a table line is in [`crate::actual::dm`].
//!
//! "Keeps data" is decided on the tables, not on what was recognised on the device (an
//! application may write the block device raw): the new table must map every sector of
//! the live device to the member sector it maps to now ([`keeps_data`]).

use crate::actual::dm::{TableLine, Target};
use crate::actual::Devno;
use crate::args::DmTarget;
use crate::units::Sectors;

/// Linear: members concatenated in order, each over its whole size.
/// `None` when the total overflows (only a corrupt snapshot has such sizes).
pub fn linear_table(members: &[(Devno, Sectors)]) -> Option<Vec<TableLine>> {
    let mut start = Sectors::ZERO;
    members
        .iter()
        .map(|(dev, size)| {
            let line = TableLine {
                start,
                length: *size,
                target: Target::Linear {
                    dev: *dev,
                    offset: Sectors::ZERO,
                },
            };
            start = start.checked_add(*size)?;
            Some(line)
        })
        .collect()
}

/// Striped: one line of `stripes x floor(min member / chunk) x chunk` sectors.
/// `None` when a member is smaller than one chunk (nothing to map), or the length
/// overflows.
pub fn striped_table(members: &[(Devno, Sectors)], chunk: Sectors) -> Option<Vec<TableLine>> {
    let min = members.iter().map(|(_, s)| *s).min()?;
    let per = min.align_down(chunk);
    if per.is_zero() || chunk.is_zero() {
        return None;
    }
    Some(vec![TableLine {
        start: Sectors::ZERO,
        length: per.checked_mul(members.len() as u64)?,
        target: Target::Striped {
            chunk,
            stripes: members.iter().map(|(d, _)| (*d, Sectors(0))).collect(),
        },
    }])
}

/// The table a `target` device maps over its members (`(devno, size)` in order):
/// [`linear_table`] or [`striped_table`]; `None` without members.
pub fn build_table(
    target: DmTarget,
    chunk: Sectors,
    members: &[(Devno, Sectors)],
) -> Option<Vec<TableLine>> {
    if members.is_empty() {
        return None;
    }
    match target {
        DmTarget::Linear => linear_table(members),
        DmTarget::Striped => striped_table(members, chunk),
    }
}

/// Total length of a table.
pub fn table_length(lines: &[TableLine]) -> Sectors {
    lines
        .iter()
        .fold(Sectors::ZERO, |n, l| n.saturating_add(l.length))
}

/// The chunk of the striped lines of a table, in KiB (0 when none is striped): what a
/// dm device's `max_sectors_kb` is raised to, so one request carries a whole chunk.
pub fn striped_chunk_kb(table: &[TableLine]) -> u32 {
    table
        .iter()
        .filter_map(|l| match &l.target {
            Target::Striped { chunk, .. } => u32::try_from(chunk.bytes().0 / 1024).ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// A member of a wanted table: an existing device, or one this run makes (named by its
/// reference; it has no device number yet).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    /// An existing block device.
    Dev(Devno),
    /// A device that does not exist (or is remade) before the step runs.
    New(String),
}

/// The table a reload would load, as far as it is known when deciding.
pub struct Wanted {
    /// Target type.
    pub target: DmTarget,
    /// Chunk (striped).
    pub chunk: Sectors,
    /// Members in order.
    pub members: Vec<Member>,
    /// The lines known now: the whole table, or the start of a linear one (the members
    /// before the first one that does not exist yet), or nothing.
    pub mapped: Vec<TableLine>,
    /// `mapped` is the whole table.
    pub complete: bool,
}

impl Wanted {
    /// A whole table, built from existing members.
    pub fn whole(target: DmTarget, chunk: Sectors, table: &[TableLine]) -> Wanted {
        Wanted {
            target,
            chunk,
            members: table
                .iter()
                .flat_map(|l| l.members())
                .map(Member::Dev)
                .collect(),
            mapped: table.to_vec(),
            complete: true,
        }
    }
}

/// What loading a new table over a live one does to what the device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Every sector of the live device maps to the same member sector in the new table
    /// (the device may be longer): its data stays where it is.
    Keeps,
    /// Some sector maps elsewhere or no longer at all: the data on the device is
    /// scrambled or cut off, whether or not anything on it is recognised.
    Moves {
        /// What changes, for people ("chunk 2M -> 1M", "members reordered (...)").
        reasons: Vec<String>,
        /// The only change is a shrink: data is cut off, not moved.
        cuts_only: bool,
    },
}

/// Decide whether a reload of `live` with `wanted` keeps the data (see the matrix).
pub fn reload_effect(
    live: &[TableLine],
    wanted: &Wanted,
    name: &dyn Fn(&Member) -> String,
) -> Reload {
    if keeps_data(live, &wanted.mapped) {
        return Reload::Keeps;
    }
    let reasons = move_reasons(live, wanted, name);
    let cuts_only = reasons.len() == 1 && reasons[0].starts_with("shrinks");
    Reload::Moves { reasons, cuts_only }
}

/// "the change moves data already on it (chunk 2M -> 1M): ..." for refusals and details.
pub fn moves_phrase(reasons: &[String], cuts_only: bool) -> String {
    format!(
        "the change {} data already on it ({}), so whatever the device holds is lost, a filesystem or raw data alike, recognised or not",
        if cuts_only { "cuts off" } else { "moves" },
        reasons.join("; ")
    )
}

/// A device or member for messages: its path, else its number.
pub fn member_name(a: &crate::actual::Actual, m: &Member) -> String {
    match m {
        Member::Dev(d) => a
            .block(*d)
            .map(|b| b.path.clone())
            .unwrap_or_else(|| d.to_string()),
        Member::New(r) => format!("{r} (made by this run)"),
    }
}

/// A target as far as where its sectors go is concerned: a striped line of one stripe
/// maps like a linear one (the chunk is then irrelevant).
#[derive(Debug, PartialEq, Eq)]
enum Seg<'a> {
    Linear(Devno, Sectors),
    Striped(Sectors, &'a [(Devno, Sectors)]),
    Other,
}

fn seg(t: &Target) -> Seg<'_> {
    match t {
        Target::Linear { dev, offset } => Seg::Linear(*dev, *offset),
        Target::Striped { stripes, .. } if stripes.len() == 1 => match stripes.first() {
            Some((d, o)) => Seg::Linear(*d, *o),
            None => Seg::Other,
        },
        Target::Striped { chunk, stripes } => Seg::Striped(*chunk, stripes),
        Target::Other { .. } => Seg::Other,
    }
}

/// Whether every sector of `old` maps to the same member sector in `new`.
/// Linear: each old sector `s` of a line must fall in a linear line of `new` over the
/// same member with the same `offset - start` (lines may be split, merged or extended).
/// Striped: dm-stripe maps a sector from the line's start, its chunk and its stripes
/// (member, offset) in order, not from its length; so a line with the same start,
/// chunk and stripes that is at least as long keeps every sector. Anything else: only
/// the very same line.
pub fn keeps_data(old: &[TableLine], new: &[TableLine]) -> bool {
    old.iter().all(|l| {
        let Some(end) = l.start.0.checked_add(l.length.0) else {
            return false;
        };
        match seg(&l.target) {
            Seg::Linear(dev, offset) => {
                let mut pos = l.start.0;
                while pos < end {
                    let Some(n) = new
                        .iter()
                        .find(|n| n.start.0 <= pos && pos - n.start.0 < n.length.0)
                    else {
                        return false;
                    };
                    let Seg::Linear(d2, o2) = seg(&n.target) else {
                        return false;
                    };
                    // the member sector of `pos` under both lines
                    let before = offset.0.checked_add(pos - l.start.0);
                    let after = o2.0.checked_add(pos - n.start.0);
                    if d2 != dev || before.is_none() || before != after {
                        return false;
                    }
                    pos = end.min(n.start.0.saturating_add(n.length.0));
                }
                true
            }
            s @ Seg::Striped(..) => new
                .iter()
                .any(|n| n.start == l.start && n.length >= l.length && seg(&n.target) == s),
            Seg::Other => new.contains(l),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Linear,
    Striped(Sectors),
    Mixed,
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Linear => "linear",
        Kind::Striped(_) => "striped",
        Kind::Mixed => "a table of other targets",
    }
}

/// The kind and members (in mapping order) of a live table.
fn shape(t: &[TableLine]) -> (Kind, Vec<Member>) {
    let segs: Vec<Seg> = t.iter().map(|l| seg(&l.target)).collect();
    let all: Vec<Member> = t
        .iter()
        .flat_map(|l| l.members())
        .map(Member::Dev)
        .collect();
    if !segs.is_empty() && segs.iter().all(|s| matches!(s, Seg::Linear(..))) {
        return (Kind::Linear, all);
    }
    match segs.as_slice() {
        [Seg::Striped(chunk, _)] => (Kind::Striped(*chunk), all),
        _ => (Kind::Mixed, all),
    }
}

/// What a reload that does not keep the data changes, in words.
fn move_reasons(live: &[TableLine], w: &Wanted, name: &dyn Fn(&Member) -> String) -> Vec<String> {
    let (old_kind, old) = shape(live);
    let new_kind = match w.target {
        DmTarget::Striped if w.members.len() > 1 => Kind::Striped(w.chunk),
        _ => Kind::Linear,
    };
    let list = |ms: &[Member]| ms.iter().map(name).collect::<Vec<_>>().join(", ");
    let set = |ms: &[Member]| {
        ms.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut why = Vec::new();
    match (old_kind, new_kind) {
        (Kind::Striped(a), Kind::Striped(b)) => {
            if a != b {
                why.push(format!("chunk {} -> {}", a.bytes(), b.bytes()));
            }
            if old.len() != w.members.len() {
                why.push(format!("stripes {} -> {}", old.len(), w.members.len()));
            }
        }
        (a, b) if a != b => why.push(format!("{} -> {}", kind_word(a), kind_word(b))),
        _ => {}
    }
    if set(&old) == set(&w.members) {
        if old != w.members {
            why.push(format!(
                "members reordered ({} -> {})",
                list(&old),
                list(&w.members)
            ));
        }
    } else if !(old_kind == Kind::Linear && new_kind == Kind::Linear && w.members.starts_with(&old))
    {
        why.push(format!(
            "member set changed ({} -> {})",
            list(&old),
            list(&w.members)
        ));
    }
    let old_len = table_length(live);
    let new_len = table_length(&w.mapped);
    if w.complete && new_len < old_len {
        why.push(format!(
            "shrinks from {old_len} to {new_len} sectors, cutting off the data past sector {new_len}"
        ));
    }
    if why.is_empty() {
        // same kind, same members in the same order: a member's size or offset changed
        let resized = (old_kind == Kind::Linear && w.complete)
            .then(|| {
                live.iter()
                    .zip(&w.mapped)
                    .take(live.len().saturating_sub(1))
                    .find(|(o, n)| o.length != n.length)
            })
            .flatten();
        why.push(match resized {
            Some((o, n)) => format!(
                "{} changed size from {} to {} sectors, which shifts everything mapped after it",
                o.members()
                    .first()
                    .map(|d| name(&Member::Dev(*d)))
                    .unwrap_or_default(),
                o.length,
                n.length
            ),
            None => "the members' sectors are mapped to other places".to_string(),
        });
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::dm::table_text;

    fn dn(minor: u32) -> Devno {
        Devno { major: 259, minor }
    }

    /// Where sector `s` lives, sector by sector (a second model of dm-linear/dm-stripe).
    fn place(t: &[TableLine], s: u64) -> Option<(Devno, u64)> {
        let l = t
            .iter()
            .find(|l| l.start.0 <= s && s < l.start.0 + l.length.0)?;
        let rel = s - l.start.0;
        match &l.target {
            Target::Linear { dev, offset } => Some((*dev, offset.0 + rel)),
            Target::Striped { chunk, stripes } => {
                let n = stripes.len() as u64;
                let c = rel / chunk.0;
                let (d, o) = stripes[(c % n) as usize];
                Some((d, o.0 + (c / n) * chunk.0 + rel % chunk.0))
            }
            Target::Other { .. } => None,
        }
    }

    fn all_tables(sizes: [u64; 3]) -> Vec<Vec<TableLine>> {
        let mut seqs: Vec<Vec<usize>> = Vec::new();
        for a in 0..3 {
            seqs.push(vec![a]);
            for b in (0..3).filter(|b| *b != a) {
                seqs.push(vec![a, b]);
                for c in (0..3).filter(|c| *c != a && *c != b) {
                    seqs.push(vec![a, b, c]);
                }
            }
        }
        let mut out = Vec::new();
        for seq in &seqs {
            let members: Vec<(Devno, Sectors)> = seq
                .iter()
                .map(|i| (dn(*i as u32), Sectors(sizes[*i])))
                .collect();
            for (target, chunk) in [
                (DmTarget::Linear, 8),
                (DmTarget::Striped, 8),
                (DmTarget::Striped, 16),
            ] {
                if let Some(t) = build_table(target, Sectors(chunk), &members) {
                    out.push(t);
                }
            }
        }
        out
    }

    #[test]
    fn keeps_data_agrees_with_sector_by_sector_mapping() {
        let size_sets = [[32, 32, 32], [48, 32, 32], [32, 48, 48], [48, 48, 48]];
        let mut kept = 0;
        let mut moved = 0;
        for old_sizes in size_sets {
            for new_sizes in size_sets {
                for old in all_tables(old_sizes) {
                    for new in all_tables(new_sizes) {
                        let brute =
                            (0..table_length(&old).0).all(|s| place(&old, s) == place(&new, s));
                        assert_eq!(
                            keeps_data(&old, &new),
                            brute,
                            "{:?} -> {:?}",
                            table_text(&old),
                            table_text(&new)
                        );
                        if brute {
                            kept += 1;
                        } else {
                            moved += 1;
                        }
                    }
                }
            }
        }
        // both sides are exercised, including grows that are not identities
        assert!(kept > 200 && moved > 10_000, "kept {kept}, moved {moved}");
    }

    fn wanted(target: DmTarget, chunk: u64, t: &[TableLine]) -> Wanted {
        Wanted::whole(target, Sectors(chunk), t)
    }

    fn reasons(old: &[TableLine], w: &Wanted) -> Vec<String> {
        match reload_effect(old, w, &|m| match m {
            Member::Dev(d) => format!("m{}", d.minor),
            Member::New(r) => format!("{r} (new)"),
        }) {
            Reload::Keeps => Vec::new(),
            Reload::Moves { reasons, .. } => reasons,
        }
    }

    #[test]
    fn each_data_moving_change_is_named() {
        let m = |s: &[(u32, u64)]| -> Vec<(Devno, Sectors)> {
            s.iter().map(|(i, z)| (dn(*i), Sectors(*z))).collect()
        };
        let striped = |s: &[(u32, u64)], c: u64| {
            build_table(DmTarget::Striped, Sectors(c), &m(s)).expect("table")
        };
        let linear =
            |s: &[(u32, u64)]| build_table(DmTarget::Linear, Sectors(8), &m(s)).expect("table");
        let old = striped(&[(0, 64), (1, 64)], 16);
        let cases: [(Vec<TableLine>, DmTarget, u64, &str); 6] = [
            (
                striped(&[(0, 64), (1, 64)], 8),
                DmTarget::Striped,
                8,
                "chunk 8K -> 4K",
            ),
            (
                striped(&[(1, 64), (0, 64)], 16),
                DmTarget::Striped,
                16,
                "members reordered (m0, m1 -> m1, m0)",
            ),
            (
                striped(&[(0, 64), (1, 64), (2, 64)], 16),
                DmTarget::Striped,
                16,
                "stripes 2 -> 3",
            ),
            (
                striped(&[(0, 64), (2, 64)], 16),
                DmTarget::Striped,
                16,
                "member set changed (m0, m1 -> m0, m2)",
            ),
            (
                linear(&[(0, 64), (1, 64)]),
                DmTarget::Linear,
                8,
                "striped -> linear",
            ),
            (
                striped(&[(0, 32), (1, 32)], 16),
                DmTarget::Striped,
                16,
                "shrinks from 128 to 64 sectors",
            ),
        ];
        for (new, target, chunk, want) in cases {
            let got = reasons(&old, &wanted(target, chunk, &new));
            assert!(got.iter().any(|r| r.starts_with(want)), "{want}: {got:?}");
        }
        // the same members grown: dm-stripe keeps every sector
        let grown = striped(&[(0, 96), (1, 96)], 16);
        assert!(reasons(&old, &wanted(DmTarget::Striped, 16, &grown)).is_empty());
        // linear: appending, and the last member growing, keep; the first growing moves
        let lin = linear(&[(0, 64), (1, 64)]);
        for keeps in [
            linear(&[(0, 64), (1, 64), (2, 64)]),
            linear(&[(0, 64), (1, 96)]),
        ] {
            assert!(reasons(&lin, &wanted(DmTarget::Linear, 8, &keeps)).is_empty());
        }
        let got = reasons(
            &lin,
            &wanted(DmTarget::Linear, 8, &linear(&[(0, 96), (1, 64)])),
        );
        assert_eq!(
            got,
            ["m0 changed size from 64 to 96 sectors, which shifts everything mapped after it"]
        );
        let got = reasons(&lin, &wanted(DmTarget::Linear, 8, &linear(&[(0, 64)])));
        assert_eq!(
            got,
            [
                "member set changed (m0, m1 -> m0)",
                "shrinks from 128 to 64 sectors, cutting off the data past sector 64"
            ]
        );
        // a member this run makes: linear appended keeps, striped moves
        let mut w = wanted(DmTarget::Linear, 8, &lin);
        w.members.push(Member::New("namespace pm2".into()));
        w.complete = false;
        assert!(reasons(&lin, &w).is_empty());
        let mut w = wanted(DmTarget::Striped, 16, &old);
        w.members.push(Member::New("namespace pm2".into()));
        w.mapped.clear();
        w.complete = false;
        assert_eq!(
            reasons(&old, &w),
            [
                "stripes 2 -> 3",
                "member set changed (m0, m1 -> m0, m1, namespace pm2 (new))"
            ]
        );
    }

    fn d(s: &str) -> Devno {
        s.parse().expect("devno")
    }

    #[test]
    fn striped_length_uses_the_smaller_member_rounded_to_chunks() {
        let t = striped_table(
            &[
                (d("259:0"), Sectors(520_192 + 100)),
                (d("259:1"), Sectors(530_000)),
            ],
            Sectors(4096),
        )
        .expect("table");
        assert_eq!(
            table_text(&t),
            vec!["0 1040384 striped 2 4096 259:0 0 259:1 0"]
        );
        assert!(striped_table(
            &[(d("1:1"), Sectors(10)), (d("1:2"), Sectors(10))],
            Sectors(4096)
        )
        .is_none());
    }

    #[test]
    fn linear_concatenates() {
        let t =
            linear_table(&[(d("259:0"), Sectors(100)), (d("259:1"), Sectors(50))]).expect("fits");
        let fits = linear_table(&[
            (d("259:0"), Sectors(u64::MAX - 1)),
            (d("259:1"), Sectors(1)),
        ]);
        assert_eq!(
            fits.map(|t| t.len()),
            Some(2),
            "a total of u64::MAX sectors fits"
        );
        assert!(
            linear_table(&[(d("259:0"), Sectors(u64::MAX)), (d("259:1"), Sectors(1))]).is_none(),
            "a total beyond u64::MAX is no table"
        );
        assert_eq!(
            table_text(&t),
            vec!["0 100 linear 259:0 0", "100 50 linear 259:1 0"]
        );
        assert_eq!(table_length(&t), Sectors(150));
    }
}
