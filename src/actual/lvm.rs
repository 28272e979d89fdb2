//! LVM as the devices' own bytes tell it: the PVs the probe found (one per device that
//! carries an LVM2 label) and the volume groups their metadata describes, with their
//! logical volumes and segments. Read from disk by the probe (`system/real/content.rs`
//! through [`crate::lvm::read_pv`]), never from an `lvm` command.
//!
//! A VG is known by its uuid: the copies of its metadata on its PVs are one VG, and the
//! copy with the highest `seqno` is the one kept (as LVM does). An active LV is the dm
//! device whose uuid is [`Lv::dm_uuid`].

use super::Devno;
use crate::lvm::{PvLabel, PvOnDisk, VolumeGroup};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// The PVs and VGs found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lvm {
    /// The devices that carry an LVM2 label, by device.
    #[serde(default)]
    pub pvs: Vec<Pv>,
    /// The volume groups their metadata describes, each once.
    #[serde(default)]
    pub vgs: Vec<Vg>,
}

/// A device that carries an LVM2 label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pv {
    /// The device.
    pub device: Devno,
    /// The PV uuid (with dashes); `None` when the label itself is damaged (`error`).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Where its first extent starts (the label's first data area).
    #[serde(default)]
    pub pe_start: Option<Bytes>,
    /// The device size the label records.
    #[serde(default)]
    pub dev_size: Option<Bytes>,
    /// The name of the VG its metadata places it in; `None` for a PV in no VG, or when
    /// its metadata could not be read (`error`).
    #[serde(default)]
    pub vg: Option<String>,
    /// Why its label or metadata could not be read (a checksum, a field the format does
    /// not allow, a read error), for people; what is on it is then not fully known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A `pvcreate` stopped half-way: the label is written, its metadata area never was
    /// (`PvOnDisk::unwritten_mdas`) and no metadata text was found; or a `vgcreate` stopped
    /// after marking the PV used by a VG (`PV_EXT_USED`) and before any metadata text was
    /// on it (seen on 6.12: "PV /dev/pmem0 is used by a VG but its metadata is missing").
    /// It holds nothing, and LVM refuses it (every command for the first, `pvcreate`
    /// and `vgcreate` without `-ff` for the second): the module zeroes the label
    /// (`Op::ZeroPvLabel`) where it would make or remove the PV, when no VG's metadata
    /// lists it ([`Lvm::unfinished_pv`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
}

/// A volume group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vg {
    /// Its name.
    pub name: String,
    /// Its uuid (with dashes).
    pub uuid: String,
    /// The sequence number of the metadata kept (the highest of its copies).
    pub seqno: u64,
    /// The size of an extent.
    pub extent_size: Bytes,
    /// Its PVs, in the metadata's order.
    pub pvs: Vec<VgPv>,
    /// Its logical volumes, in the metadata's order.
    #[serde(default)]
    pub lvs: Vec<Lv>,
}

/// A PV as its VG's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VgPv {
    /// Its uuid (with dashes).
    pub uuid: String,
    /// The device where the probe found its label; `None` when it was not found (not in
    /// the probe's scope, or missing).
    #[serde(default)]
    pub device: Option<Devno>,
    /// Where its first extent starts.
    pub pe_start: Bytes,
    /// How many extents it holds.
    pub pe_count: u64,
}

/// A logical volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lv {
    /// Its name.
    pub name: String,
    /// Its uuid (with dashes).
    pub uuid: String,
    /// Its segments, by start extent.
    pub segments: Vec<LvSegment>,
}

/// A segment of a logical volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvSegment {
    /// Its first extent in the LV.
    pub start_extent: u64,
    /// How many extents of the LV it maps.
    pub extent_count: u64,
    /// Its type (`striped`, also for a linear one; `thin`, `raid1`, ...).
    #[serde(rename = "type")]
    pub segtype: String,
    /// Stripes (1 for linear).
    pub stripe_count: u64,
    /// The stripe size (LVM's chunk), with two stripes or more.
    #[serde(default)]
    pub stripe_size: Option<Bytes>,
    /// Where each stripe lies.
    pub stripes: Vec<LvStripe>,
}

/// Where one stripe of a segment lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvStripe {
    /// The PV's uuid (with dashes).
    pub pv: String,
    /// Its first extent on that PV.
    pub offset: u64,
}

impl Lvm {
    /// Nothing found.
    pub fn is_empty(&self) -> bool {
        self.pvs.is_empty() && self.vgs.is_empty()
    }
    /// The VG named `name` (the first, should two VGs share it).
    pub fn vg(&self, name: &str) -> Option<&Vg> {
        self.vgs.iter().find(|v| v.name == name)
    }
    /// The VG whose uuid is `uuid`.
    pub fn vg_by_uuid(&self, uuid: &str) -> Option<&Vg> {
        self.vgs.iter().find(|v| v.uuid == uuid)
    }
    /// The LV `lv` of the VG named `vg`, with its VG.
    pub fn lv(&self, vg: &str, lv: &str) -> Option<(&Vg, &Lv)> {
        let vg = self.vg(vg)?;
        Some((vg, vg.lv(lv)?))
    }
    /// The PV on device `devno`.
    pub fn pv(&self, devno: Devno) -> Option<&Pv> {
        self.pvs.iter().find(|p| p.device == devno)
    }
    /// The PV on `devno` if a stopped `pvcreate` left it ([`Pv::unfinished`]) and no VG's
    /// metadata lists it: it holds nothing. (One a VG lists is that VG's, its metadata
    /// area damaged: not ours to zero.)
    pub fn unfinished_pv(&self, devno: Devno) -> Option<&Pv> {
        self.pv(devno)
            .filter(|p| p.unfinished && self.vg_of(p).is_none())
    }
    /// The PV whose uuid is `uuid`.
    pub fn pv_by_uuid(&self, uuid: &str) -> Option<&Pv> {
        self.pvs.iter().find(|p| p.uuid.as_deref() == Some(uuid))
    }
    /// The LV whose active dm device has the dm uuid `dm_uuid` ([`Lv::dm_uuid`]), with
    /// its VG; `None` for a dm uuid that is no LV's (not `LVM-...`, an LV's hidden
    /// sub-device such as `...-real`, or an LV whose metadata the probe did not read).
    pub fn lv_by_dm_uuid(&self, dm_uuid: &str) -> Option<(&Vg, &Lv)> {
        if !dm_uuid.starts_with(LVM_DM_UUID_PREFIX) {
            return None;
        }
        self.vgs.iter().find_map(|vg| {
            vg.lvs
                .iter()
                .find(|lv| lv.dm_uuid(vg) == dm_uuid)
                .map(|lv| (vg, lv))
        })
    }

    /// The PVs and VGs from what each device held: `pvs` one per device, `copies` the
    /// VG metadata read from them (several copies of one VG, older ones too). Copies are
    /// one VG by uuid, the highest `seqno` kept; each VG's PVs get the device where
    /// their label was found.
    pub fn assemble(pvs: Vec<Pv>, copies: Vec<Vg>) -> Lvm {
        let mut vgs: Vec<Vg> = Vec::new();
        for copy in copies {
            match vgs.iter_mut().find(|v| v.uuid == copy.uuid) {
                Some(v) if copy.seqno > v.seqno => *v = copy,
                Some(_) => {}
                None => vgs.push(copy),
            }
        }
        for vg in &mut vgs {
            for pv in &mut vg.pvs {
                pv.device = pvs
                    .iter()
                    .find(|p| p.uuid.as_deref() == Some(pv.uuid.as_str()))
                    .map(|p| p.device);
            }
        }
        let mut lvm = Lvm { pvs, vgs };
        lvm.place_listed_pvs();
        lvm
    }

    /// The VG PV `pv` is in, as LVM counts it: the one its own metadata names, else the
    /// VG whose kept metadata lists its uuid. A PV's own metadata area can hold no VG
    /// while a VG lists it: a `vgcreate` or `vgextend` stopped after writing the new
    /// metadata on one PV and before the others (or a PV made with
    /// `--metadatacopies 0`). LVM takes such a PV for a member of the VG (`pvs` shows
    /// it there, and `vgextend`/`pvcreate` refuse it), and its next metadata write
    /// fills the copy in.
    pub fn vg_of<'a>(&'a self, pv: &'a Pv) -> Option<&'a str> {
        pv.vg.as_deref().or_else(|| {
            let uuid = pv.uuid.as_deref()?;
            self.vgs
                .iter()
                .find(|g| g.pv(uuid).is_some())
                .map(|g| g.name.as_str())
        })
    }

    /// Give every PV whose own metadata names no VG the VG that lists it ([`Lvm::vg_of`]).
    pub fn place_listed_pvs(&mut self) {
        let placed: Vec<Option<String>> = self
            .pvs
            .iter()
            .map(|p| self.vg_of(p).map(str::to_string))
            .collect();
        for (p, vg) in self.pvs.iter_mut().zip(placed) {
            if p.error.is_none() {
                p.vg = vg;
            }
        }
    }
}

impl Vg {
    /// The LV named `name`.
    pub fn lv(&self, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.name == name)
    }
    /// The PV whose uuid is `uuid`.
    pub fn pv(&self, uuid: &str) -> Option<&VgPv> {
        self.pvs.iter().find(|p| p.uuid == uuid)
    }
    /// Where stripe `stripe` starts on its PV, in bytes from the PV's first byte: the
    /// PV's data area start (`pe_start`) plus its offset in extents. `None` when its PV
    /// is not one of this VG's (or the sum does not fit 64 bits).
    pub fn stripe_start(&self, stripe: &LvStripe) -> Option<Bytes> {
        let pv = self.pv(&stripe.pv)?;
        stripe
            .offset
            .checked_mul(self.extent_size.0)?
            .checked_add(pv.pe_start.0)
            .map(Bytes)
    }
    /// The VG as the metadata text `vg` describes it (no PV's device known yet).
    pub fn from_metadata(vg: &VolumeGroup) -> Vg {
        let uuid_of = |name: &str| {
            vg.pv(name)
                .map_or_else(|| name.to_string(), |p| p.id.clone())
        };
        Vg {
            name: vg.name.clone(),
            uuid: vg.id.clone(),
            seqno: vg.seqno,
            extent_size: vg.extent_bytes(),
            pvs: vg
                .physical_volumes
                .iter()
                .map(|p| VgPv {
                    uuid: p.id.clone(),
                    device: None,
                    pe_start: p.pe_start.bytes(),
                    pe_count: p.pe_count,
                })
                .collect(),
            lvs: vg
                .logical_volumes
                .iter()
                .map(|l| Lv {
                    name: l.name.clone(),
                    uuid: l.id.clone(),
                    segments: l
                        .segments
                        .iter()
                        .map(|s| LvSegment {
                            start_extent: s.start_extent,
                            extent_count: s.extent_count,
                            segtype: s.segtype.clone(),
                            stripe_count: s.stripe_count.unwrap_or(s.stripes.len() as u64),
                            stripe_size: s.stripe_size.map(|x| x.bytes()),
                            stripes: s
                                .stripes
                                .iter()
                                .map(|st| LvStripe {
                                    pv: uuid_of(&st.pv),
                                    offset: st.offset,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// How the dm uuid of every LV's dm device starts.
pub const LVM_DM_UUID_PREFIX: &str = "LVM-";

impl Lv {
    /// The uuid of its dm device when active: `LVM-` + the VG's uuid + its own, without
    /// dashes (what `lvm` gives the dm device of an LV).
    pub fn dm_uuid(&self, vg: &Vg) -> String {
        format!(
            "{LVM_DM_UUID_PREFIX}{}{}",
            vg.uuid.replace('-', ""),
            self.uuid.replace('-', "")
        )
    }
    /// Its size in extents.
    pub fn extent_count(&self) -> u64 {
        self.segments.iter().map(|s| s.extent_count).sum()
    }
}

impl LvSegment {
    /// A segment the dm targets `linear` or `striped` map (LVM writes the type
    /// `striped` for both; one stripe is linear): the only ones that can do DAX.
    pub fn is_striped_or_linear(&self) -> bool {
        matches!(self.segtype.as_str(), "striped" | "linear")
    }
}

impl Pv {
    /// The PV on `device` as [`crate::lvm::read_pv`] found it: its record and the VG
    /// its metadata describes (if any).
    pub fn found(device: Devno, pv: &PvOnDisk) -> (Pv, Option<Vg>) {
        let vg = pv.vg.as_ref().map(Vg::from_metadata);
        (
            Pv {
                device,
                uuid: Some(pv.label.uuid()),
                pe_start: pv.label.pe_start(),
                dev_size: Some(pv.label.device_size),
                vg: vg.as_ref().map(|v| v.name.clone()),
                error: None,
                unfinished: pv.vg.is_none()
                    && (!pv.unwritten_mdas.is_empty()
                        || pv.label.extension.as_ref().is_some_and(|e| e.in_use())),
            },
            vg,
        )
    }

    /// A device whose LVM2 label or metadata could not be read: `label` if the label
    /// itself was, `error` what failed.
    pub fn damaged(device: Devno, label: Option<&PvLabel>, error: String) -> Pv {
        Pv {
            device,
            uuid: label.map(PvLabel::uuid),
            pe_start: label.and_then(PvLabel::pe_start),
            dev_size: label.map(|l| l.device_size),
            vg: None,
            error: Some(error),
            unfinished: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::{Actual, BlockDevice, DmDevice};

    fn block(name: &str, minor: u32, holders: &[&str]) -> BlockDevice {
        BlockDevice::for_test(name, Devno { major: 259, minor }, holders)
    }

    fn dm(name: &str, minor: u32, uuid: &str) -> DmDevice {
        DmDevice {
            name: name.into(),
            devno: Devno { major: 259, minor },
            uuid: Some(uuid.into()),
            table: Default::default(),
            suspended: false,
            open_count: 1,
        }
    }

    /// A vgcreate stopped after the first PV's metadata: the second PV's own area names
    /// no VG, the kept metadata lists it, so it is the VG's; a PV no VG lists stays in
    /// none, and one whose label could not be read is not placed.
    #[test]
    fn a_pv_the_kept_metadata_lists_is_in_that_vg_without_its_own_copy() {
        let pv = |minor: u32, uuid: &str, vg: Option<&str>, error: Option<&str>| Pv {
            device: Devno { major: 259, minor },
            uuid: Some(uuid.into()),
            pe_start: Some(Bytes(2 << 20)),
            dev_size: Some(Bytes(1 << 30)),
            vg: vg.map(Into::into),
            error: error.map(Into::into),
            unfinished: false,
        };
        let listed = |uuid: &str| VgPv {
            uuid: uuid.into(),
            device: None,
            pe_start: Bytes(2 << 20),
            pe_count: 255,
        };
        let copy = Vg {
            name: "vgp".into(),
            uuid: "vg-uuid".into(),
            seqno: 1,
            extent_size: Bytes(4 << 20),
            pvs: vec![listed("a"), listed("b"), listed("d")],
            lvs: Vec::new(),
        };
        let lvm = Lvm::assemble(
            vec![
                pv(0, "a", Some("vgp"), None),
                pv(1, "b", None, None),
                pv(2, "c", None, None),
                pv(3, "d", None, Some("bad checksum")),
            ],
            vec![copy],
        );
        let vgs: Vec<Option<&str>> = lvm.pvs.iter().map(|p| p.vg.as_deref()).collect();
        assert_eq!(vgs, [Some("vgp"), Some("vgp"), None, None]);
        assert_eq!(
            lvm.vgs[0].pvs[1].device,
            Some(Devno {
                major: 259,
                minor: 1
            })
        );
        // a stopped pvcreate's PV is ours to zero only when no VG lists it
        let mut lvm = lvm;
        for p in &mut lvm.pvs {
            p.unfinished = true;
        }
        let zeroable: Vec<bool> = (0..4)
            .map(|minor| lvm.unfinished_pv(Devno { major: 259, minor }).is_some())
            .collect();
        assert_eq!(zeroable, [false, false, true, false]);
    }

    /// An LV's active dm device is found by its dm uuid; a device held only by LVM's dm
    /// devices is a PV whose head is its own, one held by another dm device is not.
    #[test]
    fn an_active_lv_and_the_pvs_under_it() {
        let lv = Lv {
            name: "lvs".into(),
            uuid: "tBS1by-Sh0G".into(),
            segments: Vec::new(),
        };
        let vg = Vg {
            name: "vgp".into(),
            uuid: "P2YlIl-DoYe".into(),
            seqno: 3,
            extent_size: Bytes(4 << 20),
            pvs: Vec::new(),
            lvs: vec![lv],
        };
        let a = Actual {
            block_devices: vec![
                block("pmem0", 0, &["dm-0"]),
                block("pmem1", 1, &["dm-0", "dm-1"]),
                block("dm-0", 10, &[]),
                block("dm-1", 11, &[]),
                block("pmem2", 2, &[]),
            ],
            dm_devices: vec![
                dm("vgp-lvs", 10, "LVM-P2YlIlDoYetBS1bySh0G"),
                dm("s", 11, "PMEMSTACK-s"),
            ],
            lvm: Lvm {
                pvs: Vec::new(),
                vgs: vec![vg],
            },
            ..Actual::default()
        };
        assert_eq!(
            a.lv_dm("vgp", "lvs").map(|d| d.name.as_str()),
            Some("vgp-lvs")
        );
        assert!(a.lv_dm("vgp", "lvx").is_none());
        // and back: the LV of a dm device, by its dm uuid; none for another's
        let of = |name: &str| a.lv_of_dm(a.dm(name).expect("listed"));
        assert_eq!(
            of("vgp-lvs").map(|(vg, lv)| (vg.name.as_str(), lv.name.as_str())),
            Some(("vgp", "lvs"))
        );
        assert!(of("s").is_none());
        assert!(a
            .lvm
            .lv_by_dm_uuid("LVM-P2YlIlDoYetBS1bySh0G-real")
            .is_none());
        assert!(a.lvm.lv_by_dm_uuid("P2YlIlDoYetBS1bySh0G").is_none());
        assert!(a.dm("vgp-lvs").is_some_and(DmDevice::is_lvm));
        assert!(!a.dm("s").is_some_and(DmDevice::is_lvm));
        let held = |n: &str| a.held_only_by_lvm(a.block_named(n).expect("listed"));
        assert!(held("pmem0"));
        assert!(!held("pmem1"));
        assert!(!held("pmem2"));
    }

    /// A stripe starts at its PV's data area plus its offset in extents; a stripe on a
    /// PV the VG does not list has no start.
    #[test]
    fn where_a_stripe_starts_on_its_pv() {
        let vg = Vg {
            name: "vgd".into(),
            uuid: "u".into(),
            seqno: 1,
            extent_size: Bytes(4 << 20),
            pvs: vec![VgPv {
                uuid: "pv0".into(),
                device: None,
                pe_start: Bytes(1 << 20),
                pe_count: 63,
            }],
            lvs: Vec::new(),
        };
        let stripe = |pv: &str, offset: u64| LvStripe {
            pv: pv.into(),
            offset,
        };
        assert_eq!(vg.stripe_start(&stripe("pv0", 0)), Some(Bytes(1 << 20)));
        assert_eq!(vg.stripe_start(&stripe("pv0", 3)), Some(Bytes(13 << 20)));
        assert_eq!(vg.stripe_start(&stripe("pv9", 0)), None);
        assert_eq!(vg.stripe_start(&stripe("pv0", u64::MAX)), None);
    }

    /// A snapshot without `lvm` (from before it was probed) reads as no LVM, and one
    /// without LVM is written without it; one with it reads back the same.
    #[test]
    fn snapshots_with_and_without_lvm() {
        let a: Actual = serde_json::from_str("{}").expect("empty snapshot");
        assert!(a.lvm.is_empty());
        let text = serde_json::to_string(&a).expect("json");
        assert!(!text.contains("lvm"), "{text}");
        let mut b = a.clone();
        b.lvm.pvs.push(Pv::damaged(
            Devno {
                major: 259,
                minor: 0,
            },
            None,
            "label sector: checksum".into(),
        ));
        let text = serde_json::to_string(&b).expect("json");
        assert_eq!(serde_json::from_str::<Actual>(&text).expect("reads"), b);
    }
}
