//! The volume group a metadata text describes (`lib/format_text/import_vsn1.c`), typed:
//!
//! ```text
//! vgp {                                   # the one top-level section: the VG
//!     id = "P2YlIl-..."  seqno = 3  status = [...]  flags = []
//!     extent_size = 8192                  # sectors (4 MiB)
//!     physical_volumes {
//!         pv0 { id = "..."  device = "/dev/pmem0"  dev_size = 524288
//!               pe_start = 4096  pe_count = 63 }
//!     }
//!     logical_volumes {                   # absent when the VG has none
//!         lvs { id = "..."  status = [...]  segment_count = 1
//!             segment1 { start_extent = 0  extent_count = 16  type = "striped"
//!                        stripe_count = 2  stripe_size = 4096     # sectors (2 MiB)
//!                        stripes = ["pv0", 0, "pv1", 0] }          # pv, offset in extents
//!         }
//!     }
//! }
//! contents = "Text Format Volume Group"  version = 1  description = "..."
//! ```
//! Sizes in the text are in 512-byte sectors; offsets and counts of extents are in
//! extents. Segments of other types (thin, raid, mirror, cache, ...) are kept with their
//! type and whatever `stripes` they have; `striped` ones (linear is `striped` with one
//! stripe) are checked: `stripe_count` pairs of a PV of the VG and an offset that keeps
//! the stripe inside that PV.

use super::config::{self, Node, Section, Value};
use super::{FieldProblem, LvmError};
use crate::units::{Bytes, Sectors};
use std::collections::BTreeSet;

/// The metadata text's `contents`.
pub const CONTENTS: &str = "Text Format Volume Group";

/// A volume group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeGroup {
    /// Its name.
    pub name: String,
    /// Its uuid (with dashes).
    pub id: String,
    /// The sequence number of this metadata: higher is newer.
    pub seqno: u64,
    /// `format` (`lvm2`), if given.
    pub format: Option<String>,
    /// `status` (`RESIZEABLE`, `READ`, `WRITE`, ...).
    pub status: Vec<String>,
    /// `flags`.
    pub flags: Vec<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// The size of an extent.
    pub extent_size: Sectors,
    /// Its PVs, in the text's order.
    pub physical_volumes: Vec<PhysicalVolume>,
    /// Its LVs, in the text's order.
    pub logical_volumes: Vec<LogicalVolume>,
}

/// A PV as its VG's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalVolume {
    /// Its name in the metadata (`pv0`): what segments refer to.
    pub name: String,
    /// Its uuid (with dashes), as in its label.
    pub id: String,
    /// The device it was last seen on (`device`): a hint, not an identity.
    pub device: Option<String>,
    /// `status` (`ALLOCATABLE`, ...).
    pub status: Vec<String>,
    /// `flags` (`MISSING`, ...).
    pub flags: Vec<String>,
    /// `dev_size`: the device's size.
    pub dev_size: Sectors,
    /// `pe_start`: where its first extent starts.
    pub pe_start: Sectors,
    /// `pe_count`: how many extents it holds.
    pub pe_count: u64,
}

/// A logical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalVolume {
    /// Its name.
    pub name: String,
    /// Its uuid (with dashes); its dm uuid is `LVM-` + VG id + LV id without dashes.
    pub id: String,
    /// `status` (`READ`, `WRITE`, `VISIBLE`, ...).
    pub status: Vec<String>,
    /// `flags`.
    pub flags: Vec<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// Its segments, by `start_extent`.
    pub segments: Vec<Segment>,
}

/// A segment of a logical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its name in the text (`segment1`).
    pub name: String,
    /// Its first extent in the LV.
    pub start_extent: u64,
    /// How many extents of the LV it maps.
    pub extent_count: u64,
    /// Its type (`striped`, also for linear; `thin`, `raid1`, ...).
    pub segtype: String,
    /// `stripe_count` (1 for linear), if given.
    pub stripe_count: Option<u64>,
    /// `stripe_size` (LVM's chunk), if given (only with two stripes or more).
    pub stripe_size: Option<Sectors>,
    /// `stripes`: where each stripe lies.
    pub stripes: Vec<Stripe>,
}

/// Where one stripe of a segment lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    /// The PV's name in the metadata (`pv0`).
    pub pv: String,
    /// Its first extent on that PV.
    pub offset: u64,
}

impl VolumeGroup {
    /// The size of an extent in bytes.
    pub fn extent_bytes(&self) -> Bytes {
        self.extent_size.bytes()
    }
    /// The PV named `name` in the metadata (`pv0`).
    pub fn pv(&self, name: &str) -> Option<&PhysicalVolume> {
        self.physical_volumes.iter().find(|p| p.name == name)
    }
    /// The PV whose uuid is `id` (with dashes, as [`super::PvLabel::uuid`] gives it).
    pub fn pv_by_id(&self, id: &str) -> Option<&PhysicalVolume> {
        self.physical_volumes.iter().find(|p| p.id == id)
    }
    /// The LV named `name`.
    pub fn lv(&self, name: &str) -> Option<&LogicalVolume> {
        self.logical_volumes.iter().find(|l| l.name == name)
    }
}

impl LogicalVolume {
    /// Its size in extents.
    pub fn extent_count(&self) -> u64 {
        self.segments.iter().map(|s| s.extent_count).sum()
    }
}

impl Segment {
    /// Extents each stripe holds on its PV (`extent_count / stripe_count`).
    pub fn area_extents(&self) -> u64 {
        match self.stripe_count {
            Some(n) if n > 0 => self.extent_count / n,
            _ => self.extent_count,
        }
    }
}

/// Parse a metadata text into its volume group.
pub fn parse_vg(text: &str) -> Result<VolumeGroup, LvmError> {
    let top = config::parse(text)?;
    let root = At {
        section: &top,
        path: String::new(),
    };
    let contents = root.string("contents")?;
    if contents != CONTENTS {
        return Err(root.invalid("contents", format!("is {contents:?}, not {CONTENTS:?}")));
    }
    let version = root.uint("version")?;
    if version != 1 {
        return Err(root.invalid("version", format!("is {version}; only 1 exists")));
    }
    let mut vgs = root.sections()?;
    let vg = match (vgs.next(), vgs.next()) {
        (Some(vg), None) => vg,
        (None, _) => {
            return Err(LvmError::Field {
                path: "(top level)".into(),
                problem: FieldProblem::Invalid {
                    why: "holds no volume group section".into(),
                },
            })
        }
        (Some(_), Some(second)) => {
            return Err(LvmError::Field {
                path: second.path,
                problem: FieldProblem::Invalid {
                    why: "a second volume group in one metadata text".into(),
                },
            })
        }
    };
    let extent_size = vg.uint("extent_size")?;
    if extent_size == 0 {
        return Err(vg.invalid("extent_size", "is 0".into()));
    }
    let physical_volumes = vg
        .section("physical_volumes")?
        .sections()?
        .map(|pv| pv.pv())
        .collect::<Result<Vec<_>, _>>()?;
    let logical_volumes = match vg.opt_section("logical_volumes")? {
        None => Vec::new(),
        Some(lvs) => lvs
            .sections()?
            .map(|lv| lv.lv(&physical_volumes))
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(VolumeGroup {
        name: vg.name(),
        id: vg.string("id")?,
        seqno: vg.uint("seqno")?,
        format: vg.opt_string("format")?,
        status: vg.strings("status")?,
        flags: vg.opt_strings("flags")?,
        tags: vg.opt_strings("tags")?,
        extent_size: Sectors(extent_size),
        physical_volumes,
        logical_volumes,
    })
}

/// A section and its path, with typed, path-naming getters.
struct At<'a> {
    section: &'a Section,
    path: String,
}

impl<'a> At<'a> {
    fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.path)
        }
    }

    fn name(&self) -> String {
        self.path.rsplit('/').next().unwrap_or_default().to_string()
    }

    fn fault(&self, name: &str, problem: FieldProblem) -> LvmError {
        LvmError::Field {
            path: self.field(name),
            problem,
        }
    }

    fn invalid(&self, name: &str, why: String) -> LvmError {
        self.fault(name, FieldProblem::Invalid { why })
    }

    /// Field `name` (`None` when it is not there) as `typed` takes its value or section;
    /// given twice, or not taken by `typed`, it is an error naming its path and, for the
    /// latter, the kind `expected`.
    fn get<T>(
        &self,
        name: &str,
        expected: &'static str,
        typed: impl FnOnce(&'a Node) -> Option<T>,
    ) -> Result<Option<T>, LvmError> {
        let mut all = self.section.entries.iter().filter(|e| e.name == name);
        match (all.next(), all.next()) {
            (_, Some(_)) => Err(self.fault(name, FieldProblem::Duplicate)),
            (None, None) => Ok(None),
            (Some(entry), None) => typed(&entry.node)
                .map(Some)
                .ok_or_else(|| self.fault(name, FieldProblem::WrongType { expected })),
        }
    }

    /// `found`, the field `name` if it is there, or the error that it is missing.
    fn need<T>(&self, name: &str, found: Option<T>) -> Result<T, LvmError> {
        found.ok_or_else(|| self.fault(name, FieldProblem::Missing))
    }

    fn opt_section(&self, name: &str) -> Result<Option<At<'a>>, LvmError> {
        let section = self.get(name, "a section", Node::section)?;
        Ok(section.map(|section| At {
            section,
            path: self.field(name),
        }))
    }

    fn section(&self, name: &str) -> Result<At<'a>, LvmError> {
        self.need(name, self.opt_section(name)?)
    }

    /// The child sections, each name once.
    fn sections(&self) -> Result<impl Iterator<Item = At<'a>> + '_, LvmError> {
        let mut seen = BTreeSet::new();
        for e in &self.section.entries {
            if matches!(e.node, Node::Section(_)) && !seen.insert(e.name.as_str()) {
                return Err(self.fault(&e.name, FieldProblem::Duplicate));
            }
        }
        Ok(self.section.entries.iter().filter_map(|e| {
            Some(At {
                section: e.node.section()?,
                path: self.field(&e.name),
            })
        }))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, LvmError> {
        self.get(name, "a string", |n| {
            n.value()?.as_str().map(str::to_string)
        })
    }

    fn string(&self, name: &str) -> Result<String, LvmError> {
        self.need(name, self.opt_string(name)?)
    }

    fn opt_uint(&self, name: &str) -> Result<Option<u64>, LvmError> {
        self.get(name, "a non-negative integer", |n| {
            u64::try_from(n.value()?.as_int()?).ok()
        })
    }

    fn uint(&self, name: &str) -> Result<u64, LvmError> {
        self.need(name, self.opt_uint(name)?)
    }

    /// `name = ["a", "b"]`, if it is there.
    fn string_array(&self, name: &str) -> Result<Option<Vec<String>>, LvmError> {
        self.get(name, "an array of strings", |n| {
            n.value()?
                .as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        })
    }

    fn opt_strings(&self, name: &str) -> Result<Vec<String>, LvmError> {
        Ok(self.string_array(name)?.unwrap_or_default())
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, LvmError> {
        self.need(name, self.string_array(name)?)
    }

    fn pv(&self) -> Result<PhysicalVolume, LvmError> {
        Ok(PhysicalVolume {
            name: self.name(),
            id: self.string("id")?,
            device: self.opt_string("device")?,
            status: self.opt_strings("status")?,
            flags: self.opt_strings("flags")?,
            dev_size: Sectors(self.uint("dev_size")?),
            pe_start: Sectors(self.uint("pe_start")?),
            pe_count: self.uint("pe_count")?,
        })
    }

    fn lv(&self, pvs: &[PhysicalVolume]) -> Result<LogicalVolume, LvmError> {
        let mut segments = self
            .sections()?
            .map(|s| s.segment(pvs))
            .collect::<Result<Vec<_>, _>>()?;
        let count = self.uint("segment_count")?;
        if count != segments.len() as u64 {
            return Err(self.invalid(
                "segment_count",
                format!("is {count}, but {} segments follow", segments.len()),
            ));
        }
        segments.sort_by_key(|s| s.start_extent);
        Ok(LogicalVolume {
            name: self.name(),
            id: self.string("id")?,
            status: self.strings("status")?,
            flags: self.opt_strings("flags")?,
            tags: self.opt_strings("tags")?,
            segments,
        })
    }

    fn segment(&self, pvs: &[PhysicalVolume]) -> Result<Segment, LvmError> {
        let segtype = self.string("type")?;
        let extent_count = self.uint("extent_count")?;
        let stripe_count = self.opt_uint("stripe_count")?;
        let stripe_size = self.opt_uint("stripe_size")?.map(Sectors);
        let stripes = self.stripes()?;
        if segtype == "striped" {
            let n = self.need("stripe_count", stripe_count)?;
            if n == 0 || stripes.len() as u64 != n {
                return Err(self.invalid(
                    "stripes",
                    format!("lists {} stripes; stripe_count is {n}", stripes.len()),
                ));
            }
            if n > 1 && stripe_size.is_none() {
                return Err(self.fault("stripe_size", FieldProblem::Missing));
            }
            if extent_count % n != 0 {
                return Err(self.invalid(
                    "extent_count",
                    format!("{extent_count} is not a multiple of stripe_count {n}"),
                ));
            }
            let area = extent_count / n;
            for s in &stripes {
                let Some(pv) = pvs.iter().find(|p| p.name == s.pv) else {
                    return Err(
                        self.invalid("stripes", format!("names {:?}, not a PV of the VG", s.pv))
                    );
                };
                if s.offset
                    .checked_add(area)
                    .is_none_or(|end| end > pv.pe_count)
                {
                    return Err(self.invalid(
                        "stripes",
                        format!(
                            "{} extents from extent {} of {} run past its {} extents",
                            area, s.offset, s.pv, pv.pe_count
                        ),
                    ));
                }
            }
        }
        Ok(Segment {
            name: self.name(),
            start_extent: self.uint("start_extent")?,
            extent_count,
            segtype,
            stripe_count,
            stripe_size,
            stripes,
        })
    }

    /// `stripes = ["pv0", 0, "pv1", 0]`: pairs of a PV name and an extent offset.
    fn stripes(&self) -> Result<Vec<Stripe>, LvmError> {
        let stripes = self.get("stripes", "an array of PV names and extent offsets", |n| {
            n.value()?
                .as_array()?
                .chunks(2)
                .map(|pair| match pair {
                    [Value::Str(pv), Value::Int(offset)] => Some(Stripe {
                        pv: pv.clone(),
                        offset: u64::try_from(*offset).ok()?,
                    }),
                    _ => None,
                })
                .collect()
        })?;
        Ok(stripes.unwrap_or_default())
    }
}
