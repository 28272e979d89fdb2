//! GPT partition layer. A declared partition is found by its GPT name on its disk.
//! Partitions not declared are kept as they are; only declared ones are added.
//!
//! | disk has GPT | entry (by name) | matches (number, start, size) | content at risk | allowed | steps |
//! |---|---|---|---|---|---|
//! | no (disk new or bare) | - | - | no | - | create GPT, add |
//! | no, disk holds a filesystem / is used | - | - | yes | yes / no | teardown, create GPT, add / refuse |
//! | yes | no | - | - | - | add (refused if the number is taken or the range overlaps another entry or does not fit) |
//! | yes | yes | yes | - | - | nothing (map it at its entry if on a dm disk and unmapped; tell the kernel of it if it has no partition for it) |
//! | yes | yes | no (number, start or size) | whatever is or is not recognised | no | refuse, naming the partition and the change |
//! | yes | yes | no (number, start or size) | - | yes | teardown (users, its mapping), delete, add (and map), destructive |
//!
//! A change to an existing entry is made by deleting it and adding it again (and on a
//! dm disk by removing its mapping and mapping it again), so any change moves or drops
//! the data on the partition, recognised or not (an application may write the block
//! device raw): another start reads it from elsewhere, a shrink cuts its end off, another
//! number re-makes its device (`pmem0p1` becomes `pmem0p2`, the mapping `dv0p1` becomes
//! `dv0p2`). It is refused without `allow_data_loss` with the partition, the change and
//! the flag named, and planned as destructive with it. Growing at the end into free
//! space would move nothing, but the layer has no in-place resize (`BLKPG_RESIZE_PARTITION`,
//! a mapping reloaded longer): it too deletes and re-adds the entry and treats what is on
//! it as new, so it is refused the same way. A new entry (an undeclared name) is never
//! placed over another entry (refused here, and checked again when it is written);
//! entries not declared are never changed or deleted. `state: absent` deletes declared
//! entries (the data stays on the disk), see `absent.rs`.
//!
//! Size default: the rest of the disk from `start`, rounded down to 2 MiB (an unaligned
//! end makes the kernel refuse DAX). The kernel never shows partitions of a dm device:
//! those are exposed as dm-linear mappings named like kpartx does (`<disk>p<N>` when
//! the disk's name ends in a digit, else `<disk><N>`).

use super::{Action, Ctx, Layer, Refused, Resolved};
use crate::actual::dm::{TableLine, Target};
use crate::actual::{partition_name, PartitionTable};
use crate::args::validate::{DevRef, PartitionSpec};
use crate::args::State;
use crate::bind::Bound;
use crate::op::{GptEntry, Op};
use crate::units::{Sectors, HUGE_PAGE};

/// The default size: the rest of the usable area from `start`, rounded down to 2 MiB.
pub fn rest_of_disk(last_usable: Sectors, start: Sectors) -> Sectors {
    last_usable
        .saturating_add(Sectors(1))
        .saturating_sub(start)
        .align_down(HUGE_PAGE.sectors())
}

pub(crate) fn plan(cx: &mut Ctx, name: &str) {
    let Some(spec) = cx.d.partition(name).cloned() else {
        return;
    };
    let disk_bd = cx.current(&spec.disk);
    let disk_fresh = cx.o.is_fresh(&spec.disk);
    let dm_disk = match &spec.disk {
        DevRef::Device(n) => Some(n.clone()),
        _ => disk_bd
            .and_then(|bd| cx.a.dm_by_devno(bd.devno))
            .map(|d| d.name.clone()),
    };
    if disk_bd.is_none() && !disk_fresh {
        if let DevRef::Path(p) = &spec.disk {
            cx.refusals.push(Refused::because(format!(
                "partition {name}: disk {p} does not exist"
            )));
        }
        return; // a declared disk that could not be planned was refused already
    }
    let gpt = if cx.o.has_new_gpt(&spec.disk) {
        None
    } else {
        disk_bd.and_then(|bd| cx.a.gpt(bd.devno))
    };
    let Some(gpt) = gpt else {
        if !cx.o.has_new_gpt(&spec.disk) {
            let mut destructive = false;
            if let Some(bd) = disk_bd {
                destructive = !cx.lost_with(bd).is_empty();
                if !cx.destroy(bd, &format!("writing a GPT on {}", bd.path)) {
                    return;
                }
            }
            cx.step(
                Action::CreateGpt {
                    disk: spec.disk.clone(),
                    if_blank: cx.o.is_unknown(&spec.disk),
                },
                format!("new GPT (protective MBR) on {}", cx.b.describe(&spec.disk)),
                destructive,
            );
            cx.o.new_gpt(&spec.disk);
        }
        let number = spec
            .number
            .unwrap_or_else(|| next_free(cx, &spec.disk, None));
        // a new GPT's last usable sector: the backup header and entries take the last 33
        let last_usable = disk_bd.map(|b| b.size.saturating_sub(Sectors(34)));
        add(cx, &spec, number, dm_disk.as_deref(), last_usable);
        return;
    };
    match gpt.partitions.iter().find(|p| p.name == spec.name) {
        Some(e) => {
            let want_size = spec
                .size
                .unwrap_or_else(|| rest_of_disk(gpt.last_usable, spec.start));
            let number_ok = spec.number.is_none_or(|n| n == e.number);
            if e.start == spec.start && e.size == want_size && number_ok {
                cx.o.use_number(&spec.disk, e.number);
                if let Some(dm) = &dm_disk {
                    let mapped = cx.a.dm(&partition_name(dm, e.number)).is_some()
                        && cx.current(&DevRef::Partition(spec.name.clone())).is_some();
                    if !mapped {
                        // the entry existed: the mapping shows its old content
                        map(cx, &spec, e.number, dm);
                        cx.o.mark_unknown(DevRef::Partition(spec.name.clone()));
                    }
                } else if disk_bd.is_some()
                    && cx.current(&DevRef::Partition(spec.name.clone())).is_none()
                {
                    // the entry is written but the kernel has no partition for it (a run
                    // stopped between the write and BLKPG): the add, finding the entry
                    // there, only tells the kernel; the partition shows its old content
                    cx.step(
                        Action::AddPartition {
                            disk: spec.disk.clone(),
                            number: e.number,
                            name: spec.name.clone(),
                            start: e.start,
                            size: Some(e.size),
                            if_missing: false,
                        },
                        format!(
                            "GPT entry {} {:?} on {} is there but the kernel has no partition for it (a run stopped half-way leaves this): tell the kernel (BLKPG)",
                            e.number,
                            spec.name,
                            cx.b.describe(&spec.disk)
                        ),
                        false,
                    );
                    cx.o.mark_fresh(DevRef::Partition(spec.name.clone()));
                    cx.o.mark_unknown(DevRef::Partition(spec.name.clone()));
                }
                return;
            }
            let number = spec.number.unwrap_or(e.number);
            let why = format!(
                "changing partition {} on {} ({})",
                spec.name,
                cx.b.describe(&spec.disk),
                changes(e.number, e.start, e.size, number, spec.start, want_size).join(", ")
            );
            // Any change re-makes the entry (and its mapping on a dm disk): the data on it
            // moves or is cut, whatever is or is not recognised there (raw data counts).
            if !cx.d.allow_data_loss {
                let pbd = cx.b.block(&DevRef::Partition(spec.name.clone()));
                let lost = pbd.map(|b| cx.lost_with(b)).unwrap_or_default();
                let also = if lost.is_empty() {
                    String::new()
                } else {
                    format!("; it would also destroy {}", lost.join(", "))
                };
                cx.refusals.push(Refused::losing_data(
                    &why,
                    format!("the entry would be deleted and made again, which moves or drops the data on the partition whatever is or is not recognised on it (raw data counts){also}"),
                ));
                return;
            }
            let pbd = cx.b.block(&DevRef::Partition(spec.name.clone()));
            if let Some(pbd) = pbd {
                if !cx.destroy(pbd, &why) {
                    return;
                }
            }
            if !fits(cx, &spec, gpt, number, want_size, Some(e.number)) {
                return;
            }
            if let Some(dm) = &dm_disk {
                let m = partition_name(dm, e.number);
                if cx.a.dm(&m).is_some() && !cx.o.is_removed_dm(&m) {
                    cx.step(
                        Action::RemoveDm { name: m.clone() },
                        format!("dmsetup remove {m} (partition {} is made again)", spec.name),
                        true,
                    );
                    cx.o.remove_dm(&m);
                }
            }
            cx.step(
                Action::DeletePartition {
                    disk: spec.disk.clone(),
                    number: e.number,
                },
                format!(
                    "delete GPT entry {} ({}) to make it again: {} (allowed by allow_data_loss)",
                    e.number,
                    e.name,
                    changes(e.number, e.start, e.size, number, spec.start, want_size).join(", ")
                ),
                true,
            );
            add(cx, &spec, number, dm_disk.as_deref(), Some(gpt.last_usable));
        }
        None => {
            let number = match spec.number {
                Some(n) => n,
                None => next_free(cx, &spec.disk, Some(gpt)),
            };
            let want_size = spec
                .size
                .unwrap_or_else(|| rest_of_disk(gpt.last_usable, spec.start));
            if !fits(cx, &spec, gpt, number, want_size, None) {
                return;
            }
            add(cx, &spec, number, dm_disk.as_deref(), Some(gpt.last_usable));
        }
    }
}

/// What changes when entry `number`/`start`/`size` becomes `to_*`, and what that does to
/// the data on it, for messages.
fn changes(
    number: u32,
    start: Sectors,
    size: Sectors,
    to_number: u32,
    to_start: Sectors,
    to_size: Sectors,
) -> Vec<String> {
    let mut out = Vec::new();
    if to_number != number {
        out.push(format!(
            "number {number} -> {to_number}: the entry and its device are made again under the new number"
        ));
    }
    if to_start != start {
        out.push(format!(
            "start {start} -> {to_start}: its data would be read from another place"
        ));
    }
    if to_size < size {
        out.push(format!(
            "size {size} -> {to_size} sectors: shrinking cuts off its end"
        ));
    } else if to_size > size {
        out.push(format!(
            "size {size} -> {to_size} sectors: growing is done by deleting the entry and adding it again, not in place"
        ));
    }
    out
}

/// Check number and range against the entries we do not manage; refuse otherwise.
fn fits(
    cx: &mut Ctx,
    spec: &PartitionSpec,
    gpt: &PartitionTable,
    number: u32,
    size: Sectors,
    replacing: Option<u32>,
) -> bool {
    let end = spec.start.saturating_add(size); // exclusive
    let mut ok = true;
    if size.is_zero()
        || end.saturating_sub(Sectors(1)) > gpt.last_usable
        || spec.start < gpt.first_usable
        || end == Sectors(u64::MAX)
    {
        cx.refusals.push(Refused::because(format!(
            "partition {}: start {} size {} does not fit the disk (usable sectors {}-{})",
            spec.name, spec.start, size, gpt.first_usable, gpt.last_usable
        )));
        ok = false;
    }
    for p in gpt
        .partitions
        .iter()
        .filter(|p| Some(p.number) != replacing && p.name != spec.name)
    {
        if p.number == number {
            cx.refusals.push(Refused::because(format!(
                "partition {}: number {number} is taken by partition {:?}, which these arguments do not declare; choose another number",
                spec.name, p.name
            )));
            ok = false;
        }
        let p_end = p.start.saturating_add(p.size);
        if spec.start < p_end && p.start < end {
            cx.refusals.push(Refused::because(format!(
                "partition {}: sectors {}-{} overlap partition {} ({:?}, sectors {}-{})",
                spec.name,
                spec.start,
                end - Sectors(1),
                p.number,
                p.name,
                p.start,
                p_end.saturating_sub(Sectors(1))
            )));
            ok = false;
        }
    }
    ok
}

fn next_free(cx: &Ctx, disk: &DevRef, gpt: Option<&PartitionTable>) -> u32 {
    let planned = cx.o.numbers(disk);
    let taken = |n: u32| {
        planned.is_some_and(|s| s.contains(&n))
            || gpt.is_some_and(|g| g.partitions.iter().any(|p| p.number == n))
            || cx
                .d
                .partitions
                .iter()
                .any(|p| p.disk == *disk && p.number == Some(n))
    };
    (1..=128).find(|n| !taken(*n)).unwrap_or(128)
}

fn add(
    cx: &mut Ctx,
    spec: &PartitionSpec,
    number: u32,
    dm_disk: Option<&str>,
    last_usable: Option<Sectors>,
) {
    cx.o.use_number(&spec.disk, number);
    let unknown_disk = cx.o.is_unknown(&spec.disk);
    let size_words = match (spec.size, last_usable) {
        (Some(s), _) => super::sectors_h(s),
        (None, Some(l)) => format!(
            "{} (rest of the disk, rounded down to 2 MiB)",
            super::sectors_h(rest_of_disk(l, spec.start))
        ),
        (None, None) => "the rest of the disk, rounded down to 2 MiB".to_string(),
    };
    cx.step(
        Action::AddPartition {
            disk: spec.disk.clone(),
            number,
            name: spec.name.clone(),
            start: spec.start,
            size: spec.size,
            if_missing: unknown_disk,
        },
        format!(
            "GPT entry {number} {:?} at sector {} ({}), size {size_words}{}",
            spec.name,
            spec.start,
            spec.start.bytes(),
            if unknown_disk {
                " (unless the disk, built over existing data, already has it)"
            } else {
                ""
            }
        ),
        false,
    );
    if let Some(dm) = dm_disk {
        map(cx, spec, number, dm);
    }
    cx.o.mark_fresh(DevRef::Partition(spec.name.clone()));
    if unknown_disk {
        cx.o.mark_unknown(DevRef::Partition(spec.name.clone()));
    }
}

fn map(cx: &mut Ctx, spec: &PartitionSpec, number: u32, dm: &str) {
    let m = partition_name(dm, number);
    cx.step(
        Action::MapPartition { disk: spec.disk.clone(), number, dm_name: m.clone() },
        format!("dm-linear /dev/mapper/{m} over partition {number} of {dm} (the kernel does not partition dm devices)"),
        false,
    );
    cx.o.mark_fresh(DevRef::Partition(spec.name.clone()));
}

/// Apply time: a partition step as its op, decided on the disk's table as it is now.
///
/// | step | found now | outcome |
/// |---|---|---|
/// | create GPT, planned over unknown content | a GPT | skip |
/// | create GPT, planned over unknown content | a filesystem | refuse |
/// | add entry, planned over an unknown table | the same entry | skip |
/// | add entry, planned over an unknown table | an entry of that name, other geometry | refuse |
/// | delete entry, `state: present` | - | refuse without `allow_data_loss` (the planner re-makes an entry only with it) |
/// | map entry | an entry no declared partition of the disk names | refuse |
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let (d, a) = (bound.desired(), bound.actual());
    let refused = |why: String| Refused::new(action.doing(), why);
    // a dm disk: its partitions are mappings the module makes (the kernel does not
    // partition dm devices)
    let is_dm = |r: &DevRef| -> bool {
        matches!(r, DevRef::Device(_))
            || bound
                .block(r)
                .is_some_and(|b| a.dm_by_devno(b.devno).is_some())
    };
    Ok(Resolved::Run(match action {
        Action::CreateGpt { disk, if_blank } => {
            if *if_blank {
                let b = bound.existing(disk).map_err(refused)?;
                if a.gpt(b.devno).is_some() {
                    return Ok(Resolved::Skip(format!(
                        "{} already has a GPT (built over existing data)",
                        b.path
                    )));
                }
                if let Some(fs) = a.filesystem(b.devno) {
                    return Err(refused(format!(
                        "{} turned out to hold {} once it appeared",
                        b.path, fs.fstype
                    )));
                }
            }
            Op::GptCreate {
                disk: bound.dev_id(disk).map_err(refused)?,
            }
        }
        Action::AddPartition {
            disk,
            number,
            name,
            start,
            size,
            if_missing,
        } => {
            let b = bound.existing(disk).map_err(refused)?;
            let table = a.gpt(b.devno);
            let want =
                |t: &PartitionTable| size.unwrap_or_else(|| rest_of_disk(t.last_usable, *start));
            if *if_missing {
                if let Some((t, e)) = table.and_then(|t| {
                    t.partitions
                        .iter()
                        .find(|p| p.name == *name)
                        .map(|e| (t, e))
                }) {
                    if e.start == *start && e.size == want(t) {
                        return Ok(Resolved::Skip(format!(
                            "{} already has partition {name}",
                            b.path
                        )));
                    }
                    return Err(refused(format!(
                        "{} already has a partition {name} with other geometry (start {} size {})",
                        b.path, e.start, e.size
                    )));
                }
            }
            let size = match size {
                Some(s) => *s,
                None => want(table.ok_or_else(|| refused(format!("{disk} has no GPT")))?),
            };
            Op::GptAdd {
                dm_disk: is_dm(disk),
                disk: bound.dev_id(disk).map_err(refused)?,
                entry: GptEntry {
                    number: *number,
                    name: name.clone(),
                    start: *start,
                    size,
                },
            }
        }
        Action::DeletePartition { disk, number } => {
            // the planner deletes an entry only to re-make it with allow_data_loss, or
            // for `state: absent`; anything else would drop the data on it
            if d.state == State::Present && !d.allow_data_loss {
                return Err(Refused::losing_data(
                    format!("to delete partition {number} of {disk} while the arguments declare it present"),
                    "that moves or drops the data on it",
                ));
            }
            Op::GptDelete {
                dm_disk: is_dm(disk),
                disk: bound.dev_id(disk).map_err(refused)?,
                number: *number,
            }
        }
        Action::MapPartition {
            disk,
            number,
            dm_name,
        } => {
            let disk_id = bound.dev_id(disk).map_err(refused)?;
            let e = a
                .gpt(disk_id.devno)
                .and_then(|t| t.partitions.iter().find(|p| p.number == *number))
                .ok_or_else(|| refused(format!("{disk} has no partition {number}")))?;
            // the planner maps a declared partition's entry; if entry `number` is now
            // another one, its data is not ours to expose under a declared name
            if !d
                .partitions
                .iter()
                .any(|p| p.disk == *disk && p.name == e.name)
            {
                return Err(refused(format!(
                    "{disk} partition {number} is {:?}, which these arguments do not declare on it; not mapping it as {dm_name}",
                    e.name
                )));
            }
            Op::DmCreate {
                name: dm_name.clone(),
                max_sectors_kb: None,
                table: vec![TableLine {
                    start: Sectors(0),
                    length: e.size,
                    target: Target::Linear {
                        dev: disk_id.devno,
                        offset: e.start,
                    },
                }],
            }
        }
        _ => return Err(Refused::not_mine(action, Layer::Partition)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_is_rounded_down_to_2m() {
        // a 256 MiB disk: last usable = 524288 - 34
        assert_eq!(
            rest_of_disk(Sectors(524_254), Sectors(4096)),
            Sectors(516_096)
        );
        assert_eq!(rest_of_disk(Sectors(100), Sectors(4096)), Sectors(0));
    }
}
