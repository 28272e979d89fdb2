//! LVM2 as it is on disk: the PV label, the metadata area header and the volume group
//! metadata text, read from bytes with no system access, so that a probe learns about
//! PVs, VGs and LVs without starting `lvm`.
//!
//! Hand-written: the crates `lvm2` (0.0.3, untouched since 2022) and its fork `lamlvm`
//! (0.1.1) check no CRC, look for the label in sector 1 only, do not follow metadata
//! text that wraps around the end of its area, size a buffer from the on-disk length
//! unchecked and type `stripes` as one `(pv, offset)` pair, so a striped LV fails the
//! whole VG; `exhume_lvm` is the same code under GPL-3.0 with a CLI's dependencies.
//!
//! The format, as LVM 2.03 writes it (all integers little-endian):
//! - [`label`]: a 512-byte label in one of the first 4 sectors (`LABELONE`, its own
//!   sector number, a CRC of bytes 20..512, `LVM2 001`), then the `pv_header`: the PV
//!   uuid, the device size, a list of data areas (the first starts at `pe_start`), a list
//!   of metadata areas, and an extension (version, flags, bootloader areas).
//! - [`mda`]: each metadata area starts with a 512-byte header (CRC of bytes 4..512,
//!   magic, version 1, its own start and size) whose first `raw_locn` places the
//!   committed metadata text (offset from the area's start, size including a trailing
//!   NUL, CRC); the rest of the area is a circular buffer, so the text may continue at
//!   byte 512 of the area.
//! - [`config`]: the text's syntax (sections, `key = value`, strings, integers, arrays,
//!   `#` comments); [`metadata`]: the volume group it describes, typed.
//!
//! Every CRC is LVM's [`crc::calc_crc`]. Nothing is allocated from an on-disk length
//! before it is checked against the structure that holds it and [`MAX_METADATA_TEXT`].
//! [`read_pv`] puts the pieces together for one device.

pub mod config;
pub mod crc;
pub mod label;
pub mod mda;
pub mod metadata;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub use label::{read_label, DiskArea, PvExtension, PvLabel};
pub use mda::{mda_never_written, read_mda, Mda, MdaContent, MdaHeader, RawLocn};
pub use metadata::{parse_vg, LogicalVolume, PhysicalVolume, Segment, Stripe, VolumeGroup};

use crc::{calc_crc, INITIAL_CRC};
use std::fmt;
use std::io;
use std::ops::Range;

/// Sector size of every LVM on-disk structure (the label, the mda header).
pub const SECTOR: usize = 512;

/// The largest metadata text this reader accepts (LVM's own default metadata area is
/// under 1 MiB; a VG with thousands of LVs stays well below this).
pub const MAX_METADATA_TEXT: u64 = 16 << 20;

/// A positioned read of a device: `(offset, len)` gives `len` bytes from byte `offset`.
pub type ReadAt<'a> = dyn FnMut(u64, usize) -> io::Result<Vec<u8>> + 'a;

/// What is wrong with LVM bytes or text. Offsets are byte offsets from the start of the
/// device; fields are named as LVM's structures name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LvmError {
    /// The bytes end before the structure does.
    Truncated {
        /// The structure.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// A stored checksum does not match the bytes it covers.
    Checksum {
        /// What the checksum covers.
        what: &'static str,
        /// Where that starts.
        offset: u64,
        /// The checksum stored on disk.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A field holds a value the format does not allow.
    BadField {
        /// The field (`label_header.sector`, `raw_locn[0].offset`, ...).
        field: &'static str,
        /// Where the structure holding it starts.
        offset: u64,
        /// Its value as found.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A list of disk locations has no terminating entry before its sector ends.
    Unterminated {
        /// The list.
        what: &'static str,
        /// Where the sector holding it starts.
        offset: u64,
    },
    /// An on-disk length is larger than this reader accepts.
    TooLarge {
        /// What has that length.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// Its length in bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A positioned read failed.
    Read {
        /// Where.
        offset: u64,
        /// How many bytes were asked for.
        len: u64,
        /// The error.
        error: String,
    },
    /// A positioned read returned another number of bytes than asked for.
    ShortRead {
        /// Where.
        offset: u64,
        /// Bytes asked for.
        wanted: u64,
        /// Bytes returned.
        got: u64,
    },
    /// The metadata text is not in LVM's config syntax.
    Syntax {
        /// Line (from 1) in the text.
        line: usize,
        /// What was expected or found.
        what: String,
    },
    /// The metadata text lacks a field or holds one of the wrong kind.
    Field {
        /// Where in the text: section names and the field joined by `/`
        /// (`vgp/logical_volumes/lvs/segment1/stripes`).
        path: String,
        /// What is wrong.
        problem: FieldProblem,
    },
}

/// What is wrong with a field of the metadata text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// It is not there.
    Missing,
    /// It is there twice.
    Duplicate,
    /// It is not of the kind wanted.
    WrongType {
        /// The kind wanted (`an integer`, `a section`, ...).
        expected: &'static str,
    },
    /// Its value breaks a rule of the format.
    Invalid {
        /// The rule.
        why: String,
    },
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Missing => write!(f, "missing"),
            FieldProblem::Duplicate => write!(f, "given more than once"),
            FieldProblem::WrongType { expected } => write!(f, "not {expected}"),
            FieldProblem::Invalid { why } => write!(f, "{why}"),
        }
    }
}

impl fmt::Display for LvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LvmError::Truncated {
                what,
                offset,
                needed,
                available,
            } => write!(
                f,
                "{what} at byte {offset} is cut short: {needed} bytes needed, {available} there"
            ),
            LvmError::Checksum {
                what,
                offset,
                stored,
                computed,
            } => write!(
                f,
                "{what} at byte {offset}: checksum {computed:#010x} does not match the stored {stored:#010x}"
            ),
            LvmError::BadField {
                field,
                offset,
                value,
                why,
            } => write!(f, "{field} (structure at byte {offset}) is {value}: {why}"),
            LvmError::Unterminated { what, offset } => write!(
                f,
                "{what} in the sector at byte {offset} has no end marker"
            ),
            LvmError::TooLarge {
                what,
                offset,
                size,
                limit,
            } => write!(
                f,
                "{what} at byte {offset} is {size} bytes, over this reader's limit of {limit}"
            ),
            LvmError::Read { offset, len, error } => {
                write!(f, "reading {len} bytes at byte {offset} failed: {error}")
            }
            LvmError::ShortRead {
                offset,
                wanted,
                got,
            } => write!(
                f,
                "reading {wanted} bytes at byte {offset} returned {got} bytes"
            ),
            LvmError::Syntax { line, what } => {
                write!(f, "metadata text, line {line}: {what}")
            }
            LvmError::Field { path, problem } => write!(f, "metadata field {path}: {problem}"),
        }
    }
}

impl std::error::Error for LvmError {}

/// An [`LvmError`] on a named device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvReadError {
    /// The device as the caller named it (`/dev/pmem0`).
    pub device: String,
    /// What is wrong on it.
    pub error: LvmError,
}

impl fmt::Display for PvReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LVM on {}: {}", self.device, self.error)
    }
}

impl std::error::Error for PvReadError {}

/// One device's LVM state as its own bytes tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvOnDisk {
    /// The PV label.
    pub label: PvLabel,
    /// Its metadata areas, in the label's order.
    pub mdas: Vec<Mda>,
    /// The volume group in the newest (highest `seqno`) metadata text of its areas;
    /// `None` for a PV in no VG (its areas hold no text) or with every area ignored.
    pub vg: Option<VolumeGroup>,
    /// Metadata areas of the label whose header sector is all zeros: never written.
    /// `pvcreate` writes the label and the areas' headers together; stopped between
    /// them, it leaves a label whose area is blank, which LVM's every command then
    /// refuses ("bad metadata header") and which holds nothing.
    pub unwritten_mdas: Vec<DiskArea>,
}

/// Read a device's LVM state: the label from `head` (the device's first bytes; the
/// label is in one of its first 4 sectors), then each metadata area through `read`.
/// `Ok(None)` when the device carries no LVM2 label. `device` only names the device in
/// errors. A damaged metadata area is an error even when the PV has another good one
/// (LVM would read the other): the caller learns of the damage rather than a guess.
pub fn read_pv(
    device: &str,
    head: &[u8],
    read: &mut ReadAt<'_>,
) -> Result<Option<PvOnDisk>, PvReadError> {
    let on = |error| PvReadError {
        device: device.to_string(),
        error,
    };
    let Some(label) = read_label(head).map_err(on)? else {
        return Ok(None);
    };
    let mut mdas = Vec::with_capacity(label.metadata_areas.len());
    let mut unwritten_mdas = Vec::new();
    let mut vg: Option<VolumeGroup> = None;
    for area in &label.metadata_areas {
        if mda_never_written(*area, read).map_err(on)? {
            unwritten_mdas.push(*area);
            continue;
        }
        let mda = read_mda(*area, read).map_err(on)?;
        if let MdaContent::Text { text, .. } = &mda.content {
            let parsed = parse_vg(text).map_err(on)?;
            if vg.as_ref().is_none_or(|v| parsed.seqno > v.seqno) {
                vg = Some(parsed);
            }
        }
        mdas.push(mda);
    }
    Ok(Some(PvOnDisk {
        label,
        mdas,
        vg,
        unwritten_mdas,
    }))
}

/// Little-endian integers at a byte offset of a slice (`None` past its end).
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// See [`le_u32`].
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// `bytes` as a quoted string (those that are not UTF-8 as U+FFFD), for an error.
pub(crate) fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The fields of one on-disk structure (the label sector, its headers, an mda header):
/// `bytes` were read from byte `offset` of the device, field positions count from their
/// start, and the structure needs `len` of them. Each error names the structure as
/// `what` and its place as `offset`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// The bytes read.
    pub(crate) bytes: &'a [u8],
    /// The structure, as errors name it (`label_header`, `mda_header`, ...).
    pub(crate) what: &'static str,
    /// Where `bytes` start on the device.
    pub(crate) offset: u64,
    /// Bytes the structure needs.
    pub(crate) len: usize,
}

impl<'a> Fields<'a> {
    fn truncated(&self) -> LvmError {
        LvmError::Truncated {
            what: self.what,
            offset: self.offset,
            needed: self.len as u64,
            available: self.bytes.len() as u64,
        }
    }

    /// The same structure with its bytes cut to its `len`, or why they are too few.
    pub(crate) fn whole(self) -> Result<Fields<'a>, LvmError> {
        Ok(Fields {
            bytes: self.bytes.get(..self.len).ok_or_else(|| self.truncated())?,
            ..self
        })
    }

    /// The bytes in `range`, or why they are not there.
    pub(crate) fn slice(&self, range: Range<usize>) -> Result<&'a [u8], LvmError> {
        self.bytes.get(range).ok_or_else(|| self.truncated())
    }

    /// The little-endian `u32` at byte `at`.
    pub(crate) fn u32(&self, at: usize) -> Result<u32, LvmError> {
        le_u32(self.bytes, at).ok_or_else(|| self.truncated())
    }

    /// The little-endian `u64` at byte `at`.
    pub(crate) fn u64(&self, at: usize) -> Result<u64, LvmError> {
        le_u64(self.bytes, at).ok_or_else(|| self.truncated())
    }

    /// Its `field` holds `value`, which is wrong because of `why`.
    pub(crate) fn bad(&self, field: &'static str, value: impl ToString, why: &str) -> LvmError {
        LvmError::BadField {
            field,
            offset: self.offset,
            value: value.to_string(),
            why: why.to_string(),
        }
    }

    /// `Ok` if its `field` holds `wanted`; else the error that it holds `found`, which
    /// is wrong because of `why`.
    pub(crate) fn expect<T: PartialEq + fmt::Display>(
        &self,
        field: &'static str,
        found: T,
        wanted: T,
        why: impl FnOnce() -> String,
    ) -> Result<(), LvmError> {
        if found == wanted {
            Ok(())
        } else {
            Err(self.bad(field, found, &why()))
        }
    }

    /// `Ok` if its `field`, the bytes in `range`, are `wanted` (a magic, a type); else
    /// the error showing them as text, which are wrong because of `why`.
    pub(crate) fn expect_bytes(
        &self,
        field: &'static str,
        range: Range<usize>,
        wanted: &[u8],
        why: &str,
    ) -> Result<(), LvmError> {
        let found = self.slice(range)?;
        if found == wanted {
            Ok(())
        } else {
            Err(self.bad(field, shown(found), why))
        }
    }

    /// `Ok` if the checksum `stored` is LVM's CRC of its bytes from `from` to its `len`;
    /// else the error naming both.
    pub(crate) fn check_crc(&self, stored: u32, from: usize) -> Result<(), LvmError> {
        let computed = calc_crc(INITIAL_CRC, self.slice(from..self.len)?);
        if stored == computed {
            Ok(())
        } else {
            Err(LvmError::Checksum {
                what: self.what,
                offset: self.offset,
                stored,
                computed,
            })
        }
    }
}
