//! The LVM layers of the DAX audit: under an active LV's dm device, its segments
//! (`lv`), its VG (`vg`) and the PVs its segments lie on (`pv`), each judged for what it
//! decides of the 2 MiB alignment; and [`summary`], every PV, VG and LV with its
//! alignment, for the facts. Pure over the snapshot's `lvm` part.
//!
//! Where an LV's data lies: each stripe of a segment starts on its PV at the PV's data
//! area start (`pe_start`) plus its offset in extents times the extent size, and the
//! segment starts in the LV at its first extent times the extent size. With `pe_start`
//! and the extent size multiples of 2 MiB, every start is one; a start that is not is
//! named once, at the layer that causes it (the `pv` when its `pe_start` is not a
//! multiple of 2 MiB, else the `vg`). The layers above that it shifts (the segment, the
//! dm table LVM loaded) say so, without a fix or a warning of their own.

use super::{layer, LayerAudit};
use crate::actual::lvm::{Lv, LvSegment, Vg, VgPv};
use crate::actual::{Actual, Devno};
use crate::units::{Bytes, HUGE_PAGE};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A multiple of 2 MiB (0 is one: the start of a device).
fn aligned(b: Bytes) -> bool {
    b.is_multiple_of(HUGE_PAGE)
}

/// An extent size that keeps extents on 2 MiB boundaries: a multiple of 2 MiB, not 0.
fn extent_ok(vg: &Vg) -> bool {
    vg.extent_size.0 != 0 && aligned(vg.extent_size)
}

/// A PV of an LV's segments, as its VG's metadata has it.
struct PvUse<'a> {
    /// Its uuid.
    uuid: &'a str,
    /// Its entry in the VG; `None` when the metadata does not list it.
    pv: Option<&'a VgPv>,
}

impl PvUse<'_> {
    /// Its data area starts at a multiple of 2 MiB (or where is not known).
    fn pe_start_ok(&self) -> bool {
        self.pv.is_none_or(|p| aligned(p.pe_start))
    }
}

/// One segment of an LV, judged.
struct SegmentLayout {
    /// Its first extent in the LV and how many it maps.
    extents: (u64, u64),
    /// `linear`, `striped`, or its type when it is neither.
    kind: String,
    /// Stripes (1 for linear).
    stripes: u64,
    /// The stripe size, with two stripes or more.
    stripe_size: Option<Bytes>,
    /// Not linear or striped: no dm target of it maps DAX.
    no_dax: bool,
    /// Two stripes or more whose stripe size is not a multiple of 2 MiB (or not known).
    stripe_size_bad: bool,
    /// Each stripe's PV (uuid) and where it starts on it (`None`: PV not in the VG).
    starts: Vec<(String, Option<Bytes>)>,
    /// A start on a PV, or its start in the LV, is not a multiple of 2 MiB.
    shifted: bool,
}

/// An LV's layout, judged for 2 MiB faults.
struct Layout<'a> {
    vg: &'a Vg,
    /// Its VG's extent size is a multiple of 2 MiB.
    extent_ok: bool,
    /// The PVs its linear and striped segments lie on, each once, in the order used.
    pvs: Vec<PvUse<'a>>,
    segments: Vec<SegmentLayout>,
}

impl<'a> Layout<'a> {
    fn of(vg: &'a Vg, lv: &'a Lv) -> Layout<'a> {
        let extent_ok = extent_ok(vg);
        let mut pvs: Vec<PvUse<'a>> = Vec::new();
        let segments = lv
            .segments
            .iter()
            .map(|s| {
                let striped = s.is_striped_or_linear();
                if striped {
                    for st in &s.stripes {
                        if !pvs.iter().any(|p| p.uuid == st.pv) {
                            pvs.push(PvUse {
                                uuid: &st.pv,
                                pv: vg.pv(&st.pv),
                            });
                        }
                    }
                }
                segment(vg, s, striped)
            })
            .collect();
        Layout {
            vg,
            extent_ok,
            pvs,
            segments,
        }
    }

    fn pv(&self, uuid: &str) -> Option<&PvUse<'a>> {
        self.pvs.iter().find(|p| p.uuid == uuid)
    }

    /// Which layer shifts a segment off 2 MiB boundaries: a PV of it whose data area
    /// starts off one, else the VG's extent size (with both on 2 MiB, so is every
    /// start: one of the two is the cause).
    fn shifted_by(&self, s: &SegmentLayout, a: &Actual) -> String {
        let bad: Vec<String> = s
            .starts
            .iter()
            .filter(|(uuid, start)| {
                start.is_some_and(|b| !aligned(b))
                    && self.pv(uuid).is_some_and(|p| !p.pe_start_ok())
            })
            .map(|(uuid, _)| pv_name(a, self.vg, uuid))
            .collect();
        if bad.is_empty() {
            format!("the extent size of VG {}", self.vg.name)
        } else {
            format!("the data area start of PV {}", bad.join(", "))
        }
    }

    /// Its data lies on 2 MiB boundaries: every PV's data area, the extent size, every
    /// segment's starts and stripe size; and it is all linear or striped.
    fn aligned(&self) -> bool {
        self.extent_ok
            && self.pvs.iter().all(PvUse::pe_start_ok)
            && self
                .segments
                .iter()
                .all(|s| !s.no_dax && !s.stripe_size_bad && !s.shifted)
    }
}

fn segment(vg: &Vg, s: &LvSegment, striped: bool) -> SegmentLayout {
    let kind = match (striped, s.stripe_count) {
        (false, _) => s.segtype.clone(),
        (true, 0 | 1) => "linear".to_string(),
        (true, _) => "striped".to_string(),
    };
    let many = striped && s.stripe_count > 1;
    let starts: Vec<(String, Option<Bytes>)> = if striped {
        s.stripes
            .iter()
            .map(|st| (st.pv.clone(), vg.stripe_start(st)))
            .collect()
    } else {
        Vec::new()
    };
    let lv_start = s.start_extent.checked_mul(vg.extent_size.0).map(Bytes);
    let shifted = starts.iter().any(|(_, b)| b.is_some_and(|b| !aligned(b)))
        || lv_start.is_some_and(|b| !aligned(b));
    SegmentLayout {
        extents: (s.start_extent, s.extent_count),
        kind,
        stripes: s.stripe_count,
        stripe_size: s.stripe_size,
        no_dax: !striped,
        stripe_size_bad: many && !s.stripe_size.is_some_and(|b| b.0 != 0 && aligned(b)),
        starts,
        shifted,
    }
}

/// The device a PV of `vg` is on (`/dev/pmem0`), or `PV <uuid>` when it is not known.
fn pv_name(a: &Actual, vg: &Vg, uuid: &str) -> String {
    vg.pv(uuid)
        .and_then(|p| p.device)
        .and_then(|d| a.block(d))
        .map(|b| b.path.clone())
        .unwrap_or_else(|| format!("PV {uuid}"))
}

/// "1M (2048 sectors)".
fn with_sectors(b: Bytes) -> String {
    format!("{b} ({} sectors)", b.sectors())
}

/// A finding of the audit and whether its failure is another layer's doing, named
/// there (it then gives no warning of its own).
pub(super) struct Finding {
    /// The finding.
    pub(super) layer: LayerAudit,
    /// Its failure is named at a layer below.
    pub(super) derived: bool,
}

/// The LVM layers under an active LV's dm device, top down.
pub(super) struct LvLayers {
    /// One `lv` finding per segment.
    pub(super) segments: Vec<Finding>,
    /// Its VG's extent size.
    pub(super) vg: LayerAudit,
    /// The PVs its segments lie on, each once, with the device to walk on below
    /// (`None` when the probe did not find it).
    pub(super) pvs: Vec<(LayerAudit, Option<Devno>)>,
}

impl LvLayers {
    /// One of them does not allow 2 MiB faults.
    pub(super) fn misaligned(&self) -> bool {
        self.segments.iter().any(|f| !f.layer.pmd_ok)
            || !self.vg.pmd_ok
            || self.pvs.iter().any(|(l, _)| !l.pmd_ok)
    }
}

/// The layers of LV `lv` of `vg`, whose dm device is at depth `d`: its segments at
/// `d + 1`, its VG at `d + 2`, the PVs at `d + 3` (what is under each PV goes at
/// `d + 4`).
pub(super) fn layers(a: &Actual, vg: &Vg, lv: &Lv, d: usize) -> LvLayers {
    let layout = Layout::of(vg, lv);
    let lv_name = format!("{}/{}", vg.name, lv.name);
    let segments = layout
        .segments
        .iter()
        .map(|s| {
            let mut found = format!("extents {}+{}: {}", s.extents.0, s.extents.1, s.kind);
            if s.stripes > 1 && !s.no_dax {
                found.push_str(&format!(
                    ", {} stripes of {}",
                    s.stripes,
                    s.stripe_size
                        .map(|b| b.to_string())
                        .unwrap_or_else(|| "unknown size".into())
                ));
            }
            if s.stripe_size_bad {
                found.push_str(" (not a multiple of 2 MiB)");
            }
            if s.no_dax {
                found.push_str(": no DAX");
            }
            if !s.starts.is_empty() {
                let on: Vec<String> = s
                    .starts
                    .iter()
                    .map(|(uuid, start)| {
                        format!(
                            "{} at {}",
                            pv_name(a, vg, uuid),
                            start
                                .map(|b| b.to_string())
                                .unwrap_or_else(|| "unknown".into())
                        )
                    })
                    .collect();
                found.push_str(&format!(", on {}", on.join(", ")));
            }
            if s.shifted {
                found.push_str(&format!(
                    ": not on 2 MiB boundaries, because of {}",
                    layout.shifted_by(s, a)
                ));
            }
            let fix = if s.no_dax {
                Some("an LV of linear or striped segments (lvcreate without --type)".to_string())
            } else if s.stripe_size_bad {
                Some(format!(
                    "a new LV with a 2 MiB stripe size (a striped LV's cannot be changed in place): lvcreate -i {} -I 2m -l {} -n NEW {}, and the data copied over",
                    s.stripes,
                    lv.extent_count(),
                    vg.name
                ))
            } else {
                None
            };
            let ok = !s.no_dax && !s.stripe_size_bad && !s.shifted;
            Finding {
                derived: !ok && fix.is_none(),
                layer: layer(d + 1, "lv", &lv_name, found, ok, fix),
            }
        })
        .collect();
    let mut found = format!(
        "extent size {}, {} PV(s), {} LV(s)",
        with_sectors(vg.extent_size),
        vg.pvs.len(),
        vg.lvs.len()
    );
    if !layout.extent_ok {
        found.push_str(": not a multiple of 2 MiB");
    }
    let vg_layer = layer(
        d + 2,
        "vg",
        &vg.name,
        found,
        layout.extent_ok,
        (!layout.extent_ok).then(|| {
            format!(
                "a new VG with 4 MiB extents (LVM's default), the LVs made again in it: vgcreate -s 4m NEW PV...; vgchange -s cannot move the extents {} has allocated",
                vg.name
            )
        }),
    );
    let pvs = layout
        .pvs
        .iter()
        .map(|u| {
            let name = pv_name(a, vg, u.uuid);
            let device = u.pv.and_then(|p| p.device);
            let Some(p) = u.pv else {
                let found = format!("not a PV of VG {} in its metadata", vg.name);
                return (layer(d + 3, "pv", &name, found, true, None), None);
            };
            let mut found = format!(
                "PV of VG {}, data area (pe_start) at {}",
                vg.name,
                with_sectors(p.pe_start)
            );
            if device.is_none() {
                found.push_str(", its device not found by the probe");
            }
            let ok = u.pe_start_ok();
            if !ok {
                found.push_str(": not a multiple of 2 MiB (pvcreate's default is 1 MiB)");
            }
            let fix = (!ok).then(|| {
                format!(
                    "make the PV again with pvcreate --dataalignment 2m {name}, which loses the data on it: first move its extents to another PV (pvmove {name}) and vgreduce {vg} {name}, or back up {vg}; then vgextend {vg} {name}",
                    vg = vg.name
                )
            });
            (layer(d + 3, "pv", &name, found, ok, fix), device)
        })
        .collect();
    LvLayers {
        segments,
        vg: vg_layer,
        pvs,
    }
}

/// LVM at a glance (result key `lvm_summary`, with `--facts` and `pmem_stack_info`):
/// every PV, VG and LV the probe found, with what decides its 2 MiB alignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct LvmSummary {
    /// The PVs, one per device that carries an LVM2 label.
    pub pvs: Vec<PvSummary>,
    /// The volume groups.
    pub vgs: Vec<VgSummary>,
    /// The logical volumes, of every VG.
    pub lvs: Vec<LvSummary>,
}

/// A PV and where its data area starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PvSummary {
    /// The device it is on (`/dev/pmem0`; its number when the probe lists no path).
    pub device: String,
    /// Its uuid; `null` when its label is damaged.
    pub uuid: Option<String>,
    /// Its VG; `null` for a PV in no VG, or when its metadata could not be read.
    pub vg: Option<String>,
    /// Where its data area (its first extent) starts, in bytes.
    pub pe_start: Option<u64>,
    /// `pe_start` is a multiple of 2 MiB (`pvcreate --dataalignment 2m`; the default puts
    /// it at 1 MiB); `null` when not known.
    pub aligned: Option<bool>,
    /// Why its label or metadata could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A VG and its extent size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VgSummary {
    /// Its name.
    pub name: String,
    /// The size of an extent, in bytes.
    pub extent_size: u64,
    /// The extent size is a multiple of 2 MiB (LVM's default 4 MiB is).
    pub extent_size_aligned: bool,
    /// The extent size and every PV's `pe_start` are multiples of 2 MiB: every extent
    /// starts on a 2 MiB boundary.
    pub aligned: bool,
    /// Its PVs' devices (`PV <uuid>` for one not found).
    pub pvs: Vec<String>,
    /// Its LVs' names.
    pub lvs: Vec<String>,
}

/// An LV, its layout and its dm device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LvSummary {
    /// `VG/LV`.
    pub name: String,
    /// Its size, in bytes.
    pub size: u64,
    /// `linear`, `striped`, or the segment types when they are neither or mixed
    /// (`raid1`, `linear+striped`).
    pub layout: String,
    /// Stripes (the most of any segment; 1 for linear).
    pub stripes: u64,
    /// The stripe size in bytes, when striped (the first striped segment's).
    pub stripe_size: Option<u64>,
    /// Segments.
    pub segments: usize,
    /// Its data lies on 2 MiB boundaries: its PVs' `pe_start`, its VG's extent size,
    /// its stripe size and every segment's start are multiples of 2 MiB, and it is
    /// linear or striped.
    pub aligned: bool,
    /// Active: its dm device exists.
    pub active: bool,
    /// Its dm device's name, when active.
    pub dm: Option<String>,
    /// Its dm device's path (`/dev/mapper/VG-LV`), when active.
    pub path: Option<String>,
    /// Its dm device's `queue/max_sectors_kb`, when active and known.
    pub max_sectors_kb: Option<u32>,
    /// What keeps 2 MiB faults off it, naming the layer and the fix: the layout, and
    /// for an active striped LV a `max_sectors_kb` below its stripe size.
    pub problems: Vec<String>,
}

/// Every PV, VG and LV of `a`, with its alignment.
pub fn summary(a: &Actual) -> LvmSummary {
    let path = |d: Devno| a.block(d).map_or_else(|| d.to_string(), |b| b.path.clone());
    let pvs = a
        .lvm
        .pvs
        .iter()
        .map(|p| PvSummary {
            device: path(p.device),
            uuid: p.uuid.clone(),
            vg: p.vg.clone(),
            pe_start: p.pe_start.map(|b| b.0),
            aligned: p.pe_start.map(aligned),
            error: p.error.clone().or_else(|| {
                a.lvm.unfinished_pv(p.device).map(|_| {
                    "no metadata was ever written on it (a pvcreate stopped half-way, or a vgcreate stopped after marking it used): it holds nothing, and LVM refuses it until its label is zeroed (the module does, where it makes or removes this PV)".to_string()
                })
            }),
        })
        .collect();
    let vgs = a
        .lvm
        .vgs
        .iter()
        .map(|vg| VgSummary {
            name: vg.name.clone(),
            extent_size: vg.extent_size.0,
            extent_size_aligned: extent_ok(vg),
            aligned: extent_ok(vg) && vg.pvs.iter().all(|p| aligned(p.pe_start)),
            pvs: vg.pvs.iter().map(|p| pv_name(a, vg, &p.uuid)).collect(),
            lvs: vg.lvs.iter().map(|l| l.name.clone()).collect(),
        })
        .collect();
    let lvs = a
        .lvm
        .vgs
        .iter()
        .flat_map(|vg| vg.lvs.iter().map(move |lv| lv_summary(a, vg, lv)))
        .collect();
    LvmSummary { pvs, vgs, lvs }
}

fn lv_summary(a: &Actual, vg: &Vg, lv: &Lv) -> LvSummary {
    let layout = Layout::of(vg, lv);
    let mut kinds: Vec<&str> = Vec::new();
    for s in &layout.segments {
        if !kinds.contains(&s.kind.as_str()) {
            kinds.push(&s.kind);
        }
    }
    let name = format!("{}/{}", vg.name, lv.name);
    let stripe_size = layout
        .segments
        .iter()
        .find(|s| s.stripes > 1 && !s.no_dax)
        .and_then(|s| s.stripe_size);
    let mut problems = Vec::new();
    for u in layout.pvs.iter().filter(|u| !u.pe_start_ok()) {
        if let Some(p) = u.pv {
            problems.push(format!(
                "pv {}: data area (pe_start) at {}, not a multiple of 2 MiB; fix: pvcreate --dataalignment 2m (the PV made again, which loses its data)",
                pv_name(a, vg, u.uuid),
                p.pe_start
            ));
        }
    }
    if !layout.extent_ok {
        problems.push(format!(
            "vg {}: extent size {}, not a multiple of 2 MiB; fix: vgcreate -s 4m (a new VG)",
            vg.name, vg.extent_size
        ));
    }
    for s in &layout.segments {
        let at = format!("lv {name} extents {}+{}", s.extents.0, s.extents.1);
        if s.no_dax {
            problems.push(format!("{at}: type {}: no DAX", s.kind));
        } else if s.stripe_size_bad {
            problems.push(format!(
                "{at}: stripe size {}, not a multiple of 2 MiB; fix: lvcreate -I 2m (a new LV)",
                s.stripe_size
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
    }
    let dm = a.lv_dm(&vg.name, &lv.name);
    let block = dm.and_then(|d| a.block(d.devno));
    let max_sectors_kb = block.and_then(|b| b.max_sectors_kb);
    if let (Some(b), Some(kb), Some(size)) = (block, max_sectors_kb, stripe_size) {
        let chunk_kb = size.0 / 1024;
        if u64::from(kb) < chunk_kb {
            problems.push(format!(
                "dm {}: max_sectors_kb {kb}, below the stripe size: no 2 MiB fault is mapped; fix: echo {chunk_kb} > /sys/block/{}/queue/max_sectors_kb",
                b.path, b.name
            ));
        }
    }
    LvSummary {
        size: lv.extent_count().saturating_mul(vg.extent_size.0),
        layout: kinds.join("+"),
        stripes: lv
            .segments
            .iter()
            .map(|s| s.stripe_count)
            .max()
            .unwrap_or(0),
        stripe_size: stripe_size.map(|b| b.0),
        segments: lv.segments.len(),
        aligned: layout.aligned(),
        active: dm.is_some(),
        dm: dm.map(|d| d.name.clone()),
        path: dm.map(|d| format!("/dev/mapper/{}", d.name)),
        max_sectors_kb,
        problems,
        name,
    }
}

/// LVM stacks for tests: the PVs of tests/fixtures/lvm/ (bytes lvm 2.03.16 wrote; see
/// its README) on the fake machine's namespaces, an LV active over them as LVM
/// activates it, and a 2 MiB-aligned xfs on it mounted with DAX.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::actual::dm::{TableLine, Target};
    use crate::actual::lvm::{Lv, Lvm, Pv, Vg};
    use crate::actual::{
        Actual, BlockDevice, Devno, DmDevice, DmTable, Extsize, Filesystem, Mount,
    };
    use crate::args::DaxMode;
    use crate::system::fake::FakeSystem;
    use crate::units::{Bytes, Sectors, HUGE_PAGE, PAGE};

    pub(crate) use crate::lvm::fixtures::{VGD_PV0, VGP_PV0, VGP_PV1};

    /// PVs as the probe reads them: each fixture's bytes, zeros after them, on the
    /// device of its pair; their VGs assembled.
    pub(crate) fn lvm_of(devices: &[(&[u8], Devno)]) -> Lvm {
        let mut pvs = Vec::new();
        let mut copies = Vec::new();
        for (bytes, devno) in devices {
            let mut head = bytes.to_vec();
            head.resize(0x11000.max(bytes.len()), 0);
            let mut read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
                let mut out = vec![0u8; len];
                let from = usize::try_from(offset).expect("offset");
                if from < bytes.len() {
                    let n = (bytes.len() - from).min(len);
                    out[..n].copy_from_slice(&bytes[from..from + n]);
                }
                Ok(out)
            };
            let on_disk = crate::lvm::read_pv("/dev/test", &head, &mut read)
                .expect("reads")
                .expect("a PV");
            let (pv, vg) = Pv::found(*devno, &on_disk);
            pvs.push(pv);
            copies.extend(vg);
        }
        Lvm::assemble(pvs, copies)
    }

    /// The dm table LVM loads for `lv`: per segment, a linear line (one stripe) or a
    /// striped one, each stripe at its PV's `pe_start` plus its offset in extents.
    pub(crate) fn lv_table(vg: &Vg, lv: &Lv) -> DmTable {
        let ext = vg.extent_size.sectors().0;
        let lines = lv
            .segments
            .iter()
            .map(|s| {
                let at = |i: usize| {
                    let st = &s.stripes[i];
                    let dev = vg.pv(&st.pv).and_then(|p| p.device).expect("on a device");
                    (dev, vg.stripe_start(st).expect("start").sectors())
                };
                let target = if s.stripe_count <= 1 {
                    let (dev, offset) = at(0);
                    Target::Linear { dev, offset }
                } else {
                    Target::Striped {
                        chunk: s.stripe_size.expect("stripe size").sectors(),
                        stripes: (0..s.stripes.len()).map(at).collect(),
                    }
                };
                TableLine {
                    start: Sectors(s.start_extent * ext),
                    length: Sectors(s.extent_count * ext),
                    target,
                }
            })
            .collect();
        DmTable::new(lines)
    }

    /// A fake machine of `n` fsdax namespaces (`/dev/pmem0`...).
    pub(crate) fn machine(n: u32) -> FakeSystem {
        FakeSystem::with_fsdax(n, Bytes(1 << 30))
    }

    /// `/dev/pmemN`'s device number on `a`.
    pub(crate) fn pmem(a: &Actual, n: u32) -> Devno {
        a.block_named(&format!("pmem{n}")).expect("pmem").devno
    }

    /// `a` carrying `lvm`, with LV `vg`/`lv` active as dm-0 (its table from the
    /// metadata, `max_sectors_kb` as given) and an xfs on it aligned for 2 MiB, mounted
    /// with `dax=always` at `/mnt/lv`.
    pub(crate) fn with_lv(
        mut a: Actual,
        lvm: Lvm,
        vg: &str,
        lv: &str,
        max_sectors_kb: u32,
    ) -> Actual {
        let (v, l) = lvm.lv(vg, lv).expect("the LV");
        let devno = Devno {
            major: 253,
            minor: 0,
        };
        let name = format!("{vg}-{lv}");
        let table = lv_table(v, l);
        let size = crate::dm_table::table_length(table.lines().expect("lines"));
        a.dm_devices.push(DmDevice {
            name: name.clone(),
            devno,
            uuid: Some(l.dm_uuid(v)),
            table,
            suspended: false,
            open_count: 1,
        });
        let mut dm0 = BlockDevice::for_test("dm-0", devno, &[]);
        dm0.path = format!("/dev/mapper/{name}");
        dm0.size = size;
        dm0.max_sectors_kb = Some(max_sectors_kb);
        for pv in &v.pvs {
            let b = a
                .block_devices
                .iter_mut()
                .find(|b| Some(b.devno) == pv.device)
                .expect("the PV's device");
            b.holders.push("dm-0".into());
        }
        a.block_devices.push(dm0);
        a.filesystems.push(Filesystem {
            device: devno,
            fstype: "xfs".into(),
            uuid: None,
            label: None,
            block_size: Some(PAGE),
            stripe_unit: Some(512),
            stripe_width: Some(1024),
            reflink: Some(false),
            size: Some(size.bytes()),
            incomplete: false,
        });
        a.mounts.push(Mount {
            target: "/mnt/lv".into(),
            devno,
            source: format!("/dev/mapper/{name}"),
            fstype: "xfs".into(),
            options: vec!["rw".into(), "dax=always".into()],
            dax: Some(DaxMode::Always),
            root_extsize: Some(Extsize {
                size: HUGE_PAGE,
                inherit: true,
            }),
        });
        a.lvm = lvm;
        a
    }

    /// [`with_lv`] on a machine of two namespaces.
    pub(crate) fn lvm_machine(lvm: Lvm, vg: &str, lv: &str, max_sectors_kb: u32) -> Actual {
        with_lv(machine(2).state, lvm, vg, lv, max_sectors_kb)
    }

    /// `vgp` on the first two namespaces of a machine.
    pub(crate) fn vgp() -> Lvm {
        let a = machine(2).state;
        lvm_of(&[(VGP_PV0, pmem(&a, 0)), (VGP_PV1, pmem(&a, 1))])
    }

    /// VG `vg` of `lvm`, to change, and the index of its LV `lv`.
    pub(crate) fn the_lv_mut<'a>(lvm: &'a mut Lvm, vg: &str, lv: &str) -> (&'a mut Vg, usize) {
        let v = lvm.vgs.iter_mut().find(|v| v.name == vg).expect("the VG");
        let i = v.lvs.iter().position(|l| l.name == lv).expect("the LV");
        (v, i)
    }
}
