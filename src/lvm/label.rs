//! The PV label (`lib/label/label.h`, `lib/format_text/layout.h`): 512 bytes in one of
//! the first 4 sectors of the device.
//!
//! ```text
//! label_header (32 bytes)        pv_header (at label + offset)
//!   0  id       "LABELONE"         0  pv_uuid      32 chars, no dashes
//!   8  sector   u64 (its own)     32  device_size  u64, bytes
//!  16  crc      u32 of 20..512    40  data areas      {offset u64, size u64}... {0, _}
//!  20  offset   u32 (pv_header)       metadata areas  {offset u64, size u64}... {0, _}
//!  24  type     "LVM2 001"            extension: version u32, flags u32,
//!                                     bootloader areas {offset u64, size u64}... {0, _}
//! ```
//! As LVM does (`_find_lvm_header`), a `LABELONE` sector whose own sector number or CRC
//! is wrong is passed over for the next one; if no sector holds a good label, the first
//! fault is the error.

use super::{le_u32, le_u64, shown, Fields, LvmError, SECTOR};
use crate::units::Bytes;

/// Sectors LVM looks at for a label.
pub const LABEL_SCAN_SECTORS: usize = 4;
/// The label's magic.
pub const LABEL_ID: &[u8; 8] = b"LABELONE";
/// The label type of LVM2's text format.
pub const LVM2_LABEL: &[u8; 8] = b"LVM2 001";
/// Bits of [`PvExtension::flags`]: the PV belongs to a VG.
pub const PV_EXT_USED: u32 = 1;

const LABEL_HEADER_LEN: usize = 32;
const PV_HEADER_LEN: usize = 40;
const DISK_LOCN_LEN: usize = 16;
const UUID_LEN: usize = 32;
/// The characters LVM makes ids of (`lib/uuid/uuid.c`).
const UUID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#";

/// A region of the device (`disk_locn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskArea {
    /// Start, from the start of the device.
    pub offset: Bytes,
    /// Length (0 for a data area: up to the end of the device).
    pub size: Bytes,
}

/// The `pv_header_extension` (labels written since LVM 2.02.110).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvExtension {
    /// Its version (2 today).
    pub version: u32,
    /// Flags: [`PV_EXT_USED`].
    pub flags: u32,
    /// Bootloader areas (`pvcreate --bootloaderareasize`).
    pub bootloader_areas: Vec<DiskArea>,
}

impl PvExtension {
    /// The PV is marked as belonging to a VG.
    pub fn in_use(&self) -> bool {
        self.flags & PV_EXT_USED != 0
    }
}

/// A PV label and its `pv_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// The sector the label is in (0 to 3; `pvcreate` writes 1 unless `--labelsector`).
    pub sector: u64,
    /// The PV uuid as stored: 32 characters without dashes ([`PvLabel::uuid`] adds them).
    pub pv_uuid: String,
    /// The device size LVM recorded.
    pub device_size: Bytes,
    /// Data areas; the first starts where the extents start (`pe_start`).
    pub data_areas: Vec<DiskArea>,
    /// Metadata areas (none with `--metadatacopies 0`, up to two).
    pub metadata_areas: Vec<DiskArea>,
    /// The extension, if the label has one (a version other than 0).
    pub extension: Option<PvExtension>,
}

impl PvLabel {
    /// Where the first extent starts (`pe_start`): the start of the first data area.
    pub fn pe_start(&self) -> Option<Bytes> {
        self.data_areas.first().map(|a| a.offset)
    }

    /// The uuid as LVM prints it and the metadata text holds it (`6-4-4-4-4-4-6`).
    pub fn uuid(&self) -> String {
        format_uuid(&self.pv_uuid)
    }
}

/// An LVM id of 32 characters with LVM's dashes (`xF2XA4-lZKO-PKba-OwDq-3Gdr-cJPC-jcS068`).
pub fn format_uuid(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 6);
    for (i, c) in id.chars().enumerate() {
        if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// The PV label in `head`, the first bytes of a device (at least the first 4 sectors
/// to see every place a label may be). `Ok(None)`: no sector starts with `LABELONE`.
pub fn read_label(head: &[u8]) -> Result<Option<PvLabel>, LvmError> {
    let mut first_fault = None;
    for sector in 0..LABEL_SCAN_SECTORS {
        let at = sector * SECTOR;
        let Some(rest) = head.get(at..) else { break };
        if !rest.starts_with(LABEL_ID) {
            continue;
        }
        let label_sector = Fields {
            bytes: rest,
            what: "label sector",
            offset: at as u64,
            len: SECTOR,
        };
        match label_sector
            .whole()
            .and_then(|buf| parse_label_sector(buf, sector as u64))
        {
            Ok(label) => return Ok(Some(label)),
            Err(fault) => {
                first_fault.get_or_insert(fault);
            }
        }
    }
    match first_fault {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// One 512-byte sector holding a label that says `LABELONE`.
fn parse_label_sector(label_sector: Fields<'_>, sector: u64) -> Result<PvLabel, LvmError> {
    let header = Fields {
        what: "label_header",
        len: LABEL_HEADER_LEN,
        ..label_sector
    };
    let says = header.u64(8)?;
    header.expect("label_header.sector", says, sector, || {
        format!("the label is in sector {sector}")
    })?;
    label_sector.check_crc(header.u32(16)?, 20)?;
    header.expect_bytes(
        "label_header.type",
        24..32,
        LVM2_LABEL,
        "not an LVM2 text-format label (LVM2 001)",
    )?;
    let offset = header.u32(20)? as usize;
    if offset < LABEL_HEADER_LEN || offset + PV_HEADER_LEN > SECTOR {
        return Err(header.bad(
            "label_header.offset",
            offset,
            "the pv_header must start after the label header and fit in the sector",
        ));
    }
    let pv_header = Fields {
        what: "pv_header",
        len: offset + PV_HEADER_LEN,
        ..label_sector
    };
    let uuid = pv_header.slice(offset..offset + UUID_LEN)?;
    if !uuid.iter().all(|c| UUID_CHARS.contains(c)) {
        return Err(pv_header.bad(
            "pv_header.pv_uuid",
            shown(uuid),
            "not an LVM id (32 of A-Z a-z 0-9 ! #)",
        ));
    }
    let pv_uuid = String::from_utf8_lossy(uuid).into_owned();
    let device_size = pv_header.u64(offset + UUID_LEN)?;
    let (buf, at) = (label_sector.bytes, label_sector.offset);
    let mut at_list = offset + PV_HEADER_LEN;
    let data_areas = locn_list(buf, &mut at_list, "pv_header data areas", at)?;
    let metadata_areas = locn_list(buf, &mut at_list, "pv_header metadata areas", at)?;
    let extension = match le_u32(buf, at_list) {
        // Written before the extension existed: the sector ends or the version is 0.
        None | Some(0) => None,
        Some(version) => {
            let flags = le_u32(buf, at_list + 4).ok_or(LvmError::Unterminated {
                what: "pv_header_extension",
                offset: at,
            })?;
            at_list += 8;
            let bootloader_areas = locn_list(
                buf,
                &mut at_list,
                "pv_header_extension bootloader areas",
                at,
            )?;
            Some(PvExtension {
                version,
                flags,
                bootloader_areas,
            })
        }
    };
    Ok(PvLabel {
        sector,
        pv_uuid,
        device_size: Bytes(device_size),
        data_areas,
        metadata_areas,
        extension,
    })
}

/// A list of `disk_locn` from `*at`, ended by an entry whose offset is 0 (as LVM reads
/// it); `*at` is left after that entry. Bounded by the sector.
fn locn_list(
    buf: &[u8],
    at: &mut usize,
    what: &'static str,
    sector_at: u64,
) -> Result<Vec<DiskArea>, LvmError> {
    let mut areas = Vec::new();
    loop {
        let (Some(offset), Some(size)) = (le_u64(buf, *at), le_u64(buf, *at + 8)) else {
            return Err(LvmError::Unterminated {
                what,
                offset: sector_at,
            });
        };
        *at += DISK_LOCN_LEN;
        if offset == 0 {
            return Ok(areas);
        }
        areas.push(DiskArea {
            offset: Bytes(offset),
            size: Bytes(size),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_formatted_with_lvms_dashes() {
        assert_eq!(
            format_uuid("xF2XA4lZKOPKbaOwDq3GdrcJPCjcS068"),
            "xF2XA4-lZKO-PKba-OwDq-3Gdr-cJPC-jcS068"
        );
    }

    #[test]
    fn zeros_and_short_heads_carry_no_label() {
        assert_eq!(read_label(&[0u8; 4096]), Ok(None));
        assert_eq!(read_label(&[]), Ok(None));
        assert_eq!(read_label(&[0u8; 700]), Ok(None));
    }
}
