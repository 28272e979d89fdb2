//! A metadata area (`lib/format_text/format-text.c`): a 512-byte `mda_header`, then a
//! circular buffer of metadata text.
//!
//! ```text
//! mda_header (512 bytes, at the area's start)
//!   0  checksum  u32 of bytes 4..512
//!   4  magic     " LVM2 x[5A%r0N*>"
//!  20  version   u32 = 1
//!  24  start     u64: the area's own start on the device
//!  32  size      u64: the area's size, header included
//!  40  raw_locn[0] committed text:    offset u64 (from the area's start), size u64
//!  64  raw_locn[1] precommitted text: (text + NUL), checksum u32, flags u32 (1: ignored)
//! ```
//! Each write puts the new text after the old one, 512-aligned. A text that does not
//! fit before the end of the area continues at byte 512 of the area (the "wrap"):
//! `offset + size - area size` bytes of it are there. Its checksum covers both pieces.
//! A `raw_locn[0]` of offset 0 and size 0 means no text (a PV in no VG); flag 1 means
//! the area is ignored (`--metadataignore`) and its text is not kept current.

use super::label::DiskArea;
use super::{Fields, LvmError, ReadAt, MAX_METADATA_TEXT, SECTOR};
use crate::units::Bytes;

/// The mda header's magic (`FMTT_MAGIC`).
pub const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// The only mda header version.
pub const MDA_VERSION: u32 = 1;
/// Bit of [`RawLocn::flags`]: the area is ignored.
pub const RAW_LOCN_IGNORED: u32 = 1;

const RAW_LOCN_AT: usize = 40;
const RAW_LOCN_LEN: usize = 24;

/// Where a metadata text is in its area (`raw_locn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLocn {
    /// Start, from the start of the metadata area.
    pub offset: Bytes,
    /// Length, including the text's trailing NUL.
    pub size: Bytes,
    /// LVM's CRC of the text (both pieces when it wraps).
    pub checksum: u32,
    /// Flags: [`RAW_LOCN_IGNORED`].
    pub flags: u32,
}

impl RawLocn {
    /// The area is ignored: its text is not kept current.
    pub fn ignored(&self) -> bool {
        self.flags & RAW_LOCN_IGNORED != 0
    }
}

/// A checked `mda_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdaHeader {
    /// The area's start on the device (checked against the label's).
    pub start: Bytes,
    /// The area's size, header included (checked against the label's).
    pub size: Bytes,
    /// The committed text (`raw_locn[0]`), if any.
    pub committed: Option<RawLocn>,
    /// A precommitted text (`raw_locn[1]`), if a write was cut between its two steps.
    pub precommitted: Option<RawLocn>,
}

/// What a metadata area holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdaContent {
    /// No text: the PV is in no VG.
    Empty,
    /// The area is ignored; its text, if any, is not current and was not read.
    Ignored,
    /// The committed text, checked against its checksum.
    Text {
        /// Where it is.
        locn: RawLocn,
        /// Bytes of it that wrapped to byte 512 of the area (0: in one piece).
        wrapped: Bytes,
        /// The text, up to its NUL (bytes that are not UTF-8 replaced by U+FFFD).
        text: String,
    },
}

/// A metadata area as read from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mda {
    /// Where the label says it is.
    pub area: DiskArea,
    /// Its header.
    pub header: MdaHeader,
    /// Its text.
    pub content: MdaContent,
}

/// Check the 512-byte `mda_header` `bytes` of the metadata area `area`.
pub fn parse_mda_header(bytes: &[u8], area: DiskArea) -> Result<MdaHeader, LvmError> {
    let at = area.offset.0;
    let header = Fields {
        bytes,
        what: "mda_header",
        offset: at,
        len: SECTOR,
    }
    .whole()?;
    header.check_crc(header.u32(0)?, 4)?;
    header.expect_bytes(
        "mda_header.magic",
        4..20,
        MDA_MAGIC,
        "not LVM2's metadata area magic",
    )?;
    header.expect("mda_header.version", header.u32(20)?, MDA_VERSION, || {
        format!("only version {MDA_VERSION} exists")
    })?;
    let start = header.u64(24)?;
    header.expect("mda_header.start", start, at, || {
        format!("the label places the area at byte {at}")
    })?;
    let size = header.u64(32)?;
    header.expect("mda_header.size", size, area.size.0, || {
        format!("the label gives the area {} bytes", area.size.0)
    })?;
    if size < 2 * SECTOR as u64 {
        return Err(header.bad(
            "mda_header.size",
            size,
            "an area holds its 512-byte header and text",
        ));
    }
    let locn = |slot: usize| -> Result<Option<RawLocn>, LvmError> {
        let i = RAW_LOCN_AT + slot * RAW_LOCN_LEN;
        let l = RawLocn {
            offset: Bytes(header.u64(i)?),
            size: Bytes(header.u64(i + 8)?),
            checksum: header.u32(i + 16)?,
            flags: header.u32(i + 20)?,
        };
        Ok((l.offset.0 != 0 || l.size.0 != 0).then_some(l))
    };
    Ok(MdaHeader {
        start: Bytes(start),
        size: Bytes(size),
        committed: locn(0)?,
        precommitted: locn(1)?,
    })
}

/// Read the metadata area `area` (from a PV label) through `read`: its header, then its
/// committed text, from one piece or two when it wraps, checked against its checksum.
pub fn read_mda(area: DiskArea, read: &mut ReadAt<'_>) -> Result<Mda, LvmError> {
    let head = read_exact(read, area.offset.0, SECTOR)?;
    let header = parse_mda_header(&head, area)?;
    let content = match header.committed {
        None => MdaContent::Empty,
        Some(locn) if locn.ignored() => MdaContent::Ignored,
        Some(locn) => read_text(area, header.size.0, locn, read)?,
    };
    Ok(Mda {
        area,
        header,
        content,
    })
}

fn read_text(
    area: DiskArea,
    area_size: u64,
    locn: RawLocn,
    read: &mut ReadAt<'_>,
) -> Result<MdaContent, LvmError> {
    let at = area.offset.0;
    let bad = |field, value: u64, why: String| LvmError::BadField {
        field,
        offset: at,
        value: value.to_string(),
        why,
    };
    let (offset, size) = (locn.offset.0, locn.size.0);
    let sector = SECTOR as u64;
    if offset < sector || offset >= area_size {
        return Err(bad(
            "raw_locn[0].offset",
            offset,
            format!("the text starts after the header and inside the {area_size}-byte area"),
        ));
    }
    if size > MAX_METADATA_TEXT {
        return Err(LvmError::TooLarge {
            what: "metadata text",
            offset: at + offset,
            size,
            limit: MAX_METADATA_TEXT,
        });
    }
    if size == 0 || size > area_size - sector {
        return Err(bad(
            "raw_locn[0].size",
            size,
            format!(
                "the text is more than nothing and fits the area's {} bytes after its header",
                area_size - sector
            ),
        ));
    }
    // offset < area_size and size <= area_size - 512 (checked above): no overflow, and
    // the wrapped bytes, at [512, 512 + wrap), end before the text's start at `offset`.
    let wrap = (offset + size).saturating_sub(area_size);
    // size <= MAX_METADATA_TEXT: these lengths fit in usize.
    let first = usize::try_from(size - wrap).unwrap_or(usize::MAX);
    let mut bytes = read_exact(read, at + offset, first)?;
    if wrap > 0 {
        let rest = usize::try_from(wrap).unwrap_or(usize::MAX);
        bytes.extend(read_exact(read, at + sector, rest)?);
    }
    Fields {
        bytes: &bytes,
        what: "metadata text",
        offset: at + offset,
        len: bytes.len(),
    }
    .check_crc(locn.checksum, 0)?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned();
    Ok(MdaContent::Text {
        locn,
        wrapped: Bytes(wrap),
        text,
    })
}

/// The header sector of the metadata area `area` is all zeros: no `mda_header` was ever
/// written there (a `pvcreate` stopped after its label; a header LVM wrote always has
/// its magic and a checksum).
pub fn mda_never_written(area: DiskArea, read: &mut ReadAt<'_>) -> Result<bool, LvmError> {
    Ok(read_exact(read, area.offset.0, SECTOR)?
        .iter()
        .all(|&b| b == 0))
}

/// `len` bytes at `offset` through `read`, or why not.
fn read_exact(read: &mut ReadAt<'_>, offset: u64, len: usize) -> Result<Vec<u8>, LvmError> {
    let bytes = read(offset, len).map_err(|e| LvmError::Read {
        offset,
        len: len as u64,
        error: e.to_string(),
    })?;
    if bytes.len() != len {
        return Err(LvmError::ShortRead {
            offset,
            wanted: len as u64,
            got: bytes.len() as u64,
        });
    }
    Ok(bytes)
}
