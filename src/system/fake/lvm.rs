//! LVM, as its commands behave: `pvcreate` writes a label (refusing a device that holds
//! anything unless told to wipe it, or one in use), `vgcreate`/`vgextend` write the VG's
//! metadata on its PVs, `lvcreate` allocates extents (striped: the same count on each of
//! `stripes` PVs) and activates the LV as a dm device named `VG-LV` with the dm uuid
//! `LVM-<vg uuid><lv uuid>`, over the PVs from their data area on; `lvextend` adds a
//! segment and reloads it; `lvremove` refuses an LV in use; `vgremove` a VG with LVs;
//! `pvremove` a PV in a VG. The metadata is the state's `lvm` part (what the probe reads
//! from the PVs' heads). A kill stops a command before it commits its metadata, or (an
//! LV) after the commit, inside the activation (its dm device made, the table loaded,
//! not resumed).

use super::FakeSystem;
use crate::actual::dm::{TableLine, Target};
use crate::actual::lvm::{Lv, LvSegment, LvStripe, Pv, Vg, VgPv};
use crate::actual::Devno;
use crate::args::desired::lv_dm_name;
use crate::op::{DevId, Extents, LvmOp, NewLv};
use crate::system::SystemError;
use crate::units::{Bytes, Sectors};

/// Where `pvcreate --dataalignment 2m` puts the data area.
const PE_START: Bytes = Bytes(2 << 20);

impl FakeSystem {
    /// Run one `lvm` command.
    pub(super) fn lvm(&mut self, op: &LvmOp, killed: bool) -> Result<(), SystemError> {
        let fail = |e: String| Self::fail("lvm", e);
        match op {
            LvmOp::PvCreate { device, wipe } => self.pv_create(device, *wipe, killed),
            LvmOp::VgCreate {
                vg,
                extent_size,
                pvs,
            } => {
                if self.state.lvm.vg(vg).is_some() {
                    return Err(fail(format!("A volume group called {vg} already exists.")));
                }
                let uuid = self.new_uuid();
                self.state.lvm.vgs.push(Vg {
                    name: vg.clone(),
                    uuid,
                    seqno: 1,
                    extent_size: *extent_size,
                    pvs: Vec::new(),
                    lvs: Vec::new(),
                });
                let added = self.vg_add(vg, pvs);
                if added.is_err() {
                    self.state.lvm.vgs.retain(|g| g.name != *vg);
                } else if killed {
                    self.metadata_on_first_pv_only(&pvs[1.min(pvs.len())..]);
                }
                added
            }
            LvmOp::VgExtend { vg, pvs } => {
                self.vg_add(vg, pvs)?;
                if killed {
                    self.metadata_on_first_pv_only(pvs);
                }
                Ok(())
            }
            LvmOp::LvCreate(n) => self.lv_create(n, killed),
            LvmOp::LvExtend { vg, lv, extents } => {
                let g = self.vg_named(vg)?;
                let l = g
                    .lv(lv)
                    .cloned()
                    .ok_or_else(|| fail(format!("Failed to find logical volume \"{vg}/{lv}\"")))?;
                let last = l
                    .segments
                    .last()
                    .cloned()
                    .ok_or_else(|| fail("no segment".to_string()))?;
                let have = l.extent_count();
                let more = match extents {
                    Extents::Count(n) if *n > have => n - have,
                    Extents::Count(n) => {
                        return Err(fail(format!(
                            "New size given ({n} extents) not larger than existing size ({have} extents)"
                        )))
                    }
                    Extents::RestOfVg => free_rows(&g, last.stripe_count) * last.stripe_count,
                };
                let seg = allocate(
                    &g,
                    have,
                    more,
                    last.stripe_count,
                    last.stripe_size.unwrap_or_default(),
                )
                .map_err(fail)?;
                let g = self.vg_mut(vg)?;
                if let Some(l) = g.lvs.iter_mut().find(|l| l.name == *lv) {
                    l.segments.extend(seg);
                }
                g.seqno += 1;
                // active: the dm device gets the longer table
                let name = lv_dm_name(vg, lv);
                if self.state.dm(&name).is_some() {
                    let table = self.lv_table(vg, lv)?;
                    self.dm_reload(&name, &table, None, false)?;
                }
                Ok(())
            }
            LvmOp::LvActivate { vg, lv } => self.lv_activate(vg, lv, false),
            LvmOp::LvRemove { vg, lv } => {
                let g = self.vg_named(vg)?;
                if g.lv(lv).is_none() {
                    return Err(fail(format!("Failed to find logical volume \"{vg}/{lv}\"")));
                }
                let name = lv_dm_name(vg, lv);
                if let Some(devno) = self.state.dm(&name).map(|d| d.devno) {
                    if let Some(why) = self
                        .state
                        .block(devno)
                        .cloned()
                        .and_then(|b| self.busy(&b).or_else(|| self.open_on(devno)))
                    {
                        return Err(fail(format!(
                            "Logical volume {vg}/{lv} contains a filesystem in use ({why})."
                        )));
                    }
                    // its content goes with it (a new LV over these extents is wiped)
                    self.wipe(devno);
                    self.dm_remove(&name)?;
                }
                let g = self.vg_mut(vg)?;
                g.lvs.retain(|l| l.name != *lv);
                g.seqno += 1;
                Ok(())
            }
            LvmOp::VgRemove { vg } => {
                let g = self.vg_named(vg)?;
                if !g.lvs.is_empty() {
                    return Err(fail(format!(
                        "Volume group \"{vg}\" still contains {} logical volume(s)",
                        g.lvs.len()
                    )));
                }
                self.state.lvm.vgs.retain(|g| g.name != *vg);
                for p in &mut self.state.lvm.pvs {
                    if p.vg.as_deref() == Some(vg) {
                        p.vg = None;
                    }
                }
                Ok(())
            }
            LvmOp::PvRemove { device } => {
                let pv = self
                    .state
                    .lvm
                    .pv(device.devno)
                    .cloned()
                    .ok_or_else(|| fail(format!("No PV found on device {}.", device.path)))?;
                if pv.unfinished {
                    return Err(fail(bad_mda_header(&device.path)));
                }
                if let Some(vg) = self.state.lvm.vg_of(&pv) {
                    return Err(fail(format!(
                        "PV {} is used by VG {vg} so please use vgreduce first.",
                        device.path
                    )));
                }
                self.state.lvm.pvs.retain(|p| p.device != device.devno);
                Ok(())
            }
        }
    }

    /// `lvcreate`: the extents allocated, the metadata committed, the LV activated
    /// (`killed`: stopped inside the activation, after the table load).
    fn lv_create(&mut self, n: &NewLv, killed: bool) -> Result<(), SystemError> {
        let fail = |e: String| Self::fail("lvm lvcreate", e);
        let (vg, lv) = (n.vg.as_str(), n.lv.as_str());
        let g = self.vg_named(vg)?;
        if g.lv(lv).is_some() {
            return Err(fail(format!(
                "Logical Volume \"{lv}\" already exists in volume group \"{vg}\""
            )));
        }
        let stripes = u64::from(n.stripes.max(1));
        let want = match n.extents {
            Extents::Count(c) => c,
            Extents::RestOfVg => free_rows(&g, stripes) * stripes,
        };
        let segments = allocate(&g, 0, want, stripes, n.stripe_size).map_err(fail)?;
        let uuid = self.new_uuid();
        let g = self.vg_mut(vg)?;
        g.lvs.push(Lv {
            name: lv.to_string(),
            uuid,
            segments,
        });
        g.seqno += 1;
        // killed inside the activation: the dm device made, its table loaded, not resumed
        self.lv_activate(vg, lv, killed)
    }

    /// The label of the PV on `device` zeroed (refused, as the exclusive open is, while
    /// the device is held or mounted).
    pub(super) fn zero_pv_label(&mut self, device: &DevId) -> Result<(), SystemError> {
        let bd = self.device(device, "zeroing the PV label", "no such device")?;
        if let Some(why) = self.busy(&bd).or_else(|| self.open_on(bd.devno)) {
            return Err(Self::fail(
                "zeroing the PV label",
                format!(
                    "open (exclusive) {}: Device or resource busy ({why})",
                    bd.path
                ),
            ));
        }
        self.state.lvm.pvs.retain(|p| p.device != bd.devno);
        Ok(())
    }

    /// `pvcreate` (`killed`: stopped after the label, before its metadata area's header).
    fn pv_create(&mut self, device: &DevId, wipe: bool, killed: bool) -> Result<(), SystemError> {
        let fail = |e: String| Self::fail("lvm pvcreate", e);
        let bd = self.device(device, "lvm pvcreate", "no such device")?;
        if let Some(p) = self.state.lvm.pv(bd.devno) {
            if p.unfinished {
                return Err(fail(bad_mda_header(&bd.path)));
            }
            return match (&p.vg, self.state.lvm.vg_of(p)) {
                (Some(vg), _) => Err(fail(format!(
                    "Can't initialize physical volume \"{}\" of volume group \"{vg}\" without -ff",
                    bd.path
                ))),
                (None, Some(_)) => Err(fail(metadata_missing(&bd.path))),
                (None, None) => Ok(()), // pvcreate on a PV writes it again, aligned as asked
            };
        }
        if let Some(why) = self.busy(&bd).or_else(|| self.open_on(bd.devno)) {
            return Err(fail(format!(
                "Can't open {} exclusively.  Mounted filesystem? ({why})",
                bd.path
            )));
        }
        let found = self
            .state
            .filesystem(bd.devno)
            .map(|f| f.fstype.clone())
            .or_else(|| self.state.gpt(bd.devno).map(|_| "gpt".to_string()));
        if let Some(sig) = found {
            if !wipe {
                return Err(fail(format!(
                    "WARNING: {sig} signature detected on {}. Wipe it? [y/n]: [n]\n  Aborted wiping of {sig}.",
                    bd.path
                )));
            }
            self.wipe(bd.devno);
        }
        let uuid = self.new_uuid();
        self.state.lvm.pvs.push(Pv {
            device: bd.devno,
            uuid: Some(uuid),
            pe_start: Some(PE_START),
            dev_size: Some(bd.size.bytes()),
            vg: None,
            error: None,
            unfinished: killed,
        });
        Ok(())
    }

    /// A `vgcreate`/`vgextend` stopped after writing the new metadata on the VG's first
    /// PV: `pvs` (PVs it added) carry their label and no metadata.
    fn metadata_on_first_pv_only(&mut self, pvs: &[DevId]) {
        for d in pvs {
            if let Some(p) = self.state.lvm.pvs.iter_mut().find(|p| p.device == d.devno) {
                p.vg = None;
            }
        }
    }

    /// Add the PVs on `pvs` to VG `vg` (each must be a PV in no VG).
    fn vg_add(&mut self, vg: &str, pvs: &[DevId]) -> Result<(), SystemError> {
        let extent = self.vg_named(vg)?.extent_size;
        for d in pvs {
            let pv =
                self.state.lvm.pv(d.devno).cloned().ok_or_else(|| {
                    Self::fail("lvm", format!("{} is not a physical volume", d.path))
                })?;
            if let Some(other) = &pv.vg {
                return Err(Self::fail(
                    "lvm",
                    format!(
                        "Physical volume '{}' is already in volume group '{other}'",
                        d.path
                    ),
                ));
            }
            if self.state.lvm.vg_of(&pv).is_some() {
                return Err(Self::fail("lvm", metadata_missing(&d.path)));
            }
            if pv.unfinished {
                return Err(Self::fail("lvm", bad_mda_header(&d.path)));
            }
            let pe_start = pv.pe_start.unwrap_or(PE_START);
            let size = pv.dev_size.unwrap_or_default();
            let entry = VgPv {
                uuid: pv.uuid.clone().unwrap_or_default(),
                device: Some(d.devno),
                pe_start,
                pe_count: size.0.saturating_sub(pe_start.0) / extent.0.max(1),
            };
            let g = self.vg_mut(vg)?;
            g.pvs.push(entry);
            g.seqno += 1;
            if let Some(p) = self.state.lvm.pvs.iter_mut().find(|p| p.device == d.devno) {
                p.vg = Some(vg.to_string());
            }
        }
        Ok(())
    }

    /// Activate LV `vg/lv` (nothing when it is active): its dm device over its segments.
    /// `killed`: stopped after the table load, before the resume.
    pub(super) fn lv_activate(
        &mut self,
        vg: &str,
        lv: &str,
        killed: bool,
    ) -> Result<(), SystemError> {
        let name = lv_dm_name(vg, lv);
        let table = self.lv_table(vg, lv)?;
        if let Some(dm) = self.state.dm(&name) {
            // active; or left without a live table, or suspended, by a stopped
            // activation: its table loaded and resumed
            if dm.table.is_empty() || dm.suspended {
                self.dm_reload(&name, &table, None, false)?;
            }
            return Ok(());
        }
        self.dm_create(&name, &table, None, killed)?;
        let g = self.vg_named(vg)?;
        let uuid = g.lv(lv).map(|l| l.dm_uuid(&g));
        if let Some(d) = self.state.dm_devices.iter_mut().find(|d| d.name == name) {
            d.uuid = uuid;
        }
        Ok(())
    }

    /// Activate every LV whose PVs are all there (what LVM's udev rules do at boot).
    pub(super) fn lvm_autoactivate(&mut self) {
        let lvs: Vec<(String, String)> = self
            .state
            .lvm
            .vgs
            .iter()
            .filter(|g| g.pvs.iter().all(|p| p.device.is_some()))
            .flat_map(|g| g.lvs.iter().map(|l| (g.name.clone(), l.name.clone())))
            .collect();
        for (vg, lv) in lvs {
            // an LV that cannot come up stays down, as at a real boot
            let _ = self.lv_activate(&vg, &lv, false);
        }
    }

    /// The dm table LVM loads for `vg/lv`.
    fn lv_table(&self, vg: &str, lv: &str) -> Result<Vec<TableLine>, SystemError> {
        let g = self.vg_named(vg)?;
        let l = g
            .lv(lv)
            .ok_or_else(|| Self::fail("lvm", format!("no LV {vg}/{lv}")))?;
        let ext = Sectors(g.extent_size.0 / 512);
        let place = |s: &LvStripe| -> Result<(Devno, Sectors), SystemError> {
            let p = g.pv(&s.pv).ok_or_else(|| Self::fail("lvm", "PV missing"))?;
            let dev = p.device.ok_or_else(|| {
                Self::fail("lvm", format!("Couldn't find device with uuid {}", p.uuid))
            })?;
            Ok((dev, Sectors(p.pe_start.0 / 512 + s.offset * ext.0)))
        };
        let mut out = Vec::new();
        for s in &l.segments {
            let target = if s.stripe_count <= 1 {
                let (dev, offset) = place(
                    s.stripes
                        .first()
                        .ok_or_else(|| Self::fail("lvm", "a segment without stripes"))?,
                )?;
                Target::Linear { dev, offset }
            } else {
                Target::Striped {
                    chunk: Sectors(s.stripe_size.unwrap_or_default().0 / 512),
                    stripes: s.stripes.iter().map(place).collect::<Result<_, _>>()?,
                }
            };
            out.push(TableLine {
                start: Sectors(s.start_extent * ext.0),
                length: Sectors(s.extent_count * ext.0),
                target,
            });
        }
        Ok(out)
    }

    fn vg_named(&self, vg: &str) -> Result<Vg, SystemError> {
        self.state
            .lvm
            .vg(vg)
            .cloned()
            .ok_or_else(|| Self::fail("lvm", format!("Volume group \"{vg}\" not found")))
    }

    fn vg_mut(&mut self, vg: &str) -> Result<&mut Vg, SystemError> {
        self.state
            .lvm
            .vgs
            .iter_mut()
            .find(|g| g.name == vg)
            .ok_or_else(|| Self::fail("lvm", format!("Volume group \"{vg}\" not found")))
    }

    /// A uuid LVM would make (32 characters; the fake's are counted).
    fn new_uuid(&mut self) -> String {
        self.lvm_uuids += 1;
        format!("FAKE{:028}", self.lvm_uuids)
    }
}

/// The extents of PV `pv` that no LV of `g` uses, as (first, count) runs.
fn free_runs(g: &Vg, pv: &VgPv) -> Vec<(u64, u64)> {
    let mut used: Vec<(u64, u64)> = g
        .lvs
        .iter()
        .flat_map(|l| &l.segments)
        .flat_map(|s| {
            let per = s.extent_count / s.stripe_count.max(1);
            s.stripes
                .iter()
                .filter(|st| st.pv == pv.uuid)
                .map(move |st| (st.offset, per))
        })
        .collect();
    used.sort();
    let mut runs = Vec::new();
    let mut at = 0;
    for (start, n) in used {
        if start > at {
            runs.push((at, start - at));
        }
        at = at.max(start + n);
    }
    if pv.pe_count > at {
        runs.push((at, pv.pe_count - at));
    }
    runs
}

/// How many rows of `stripes` extents (one on each of `stripes` PVs) fit in one run
/// each; linear: every free extent.
fn free_rows(g: &Vg, stripes: u64) -> u64 {
    let mut best: Vec<u64> = g
        .pvs
        .iter()
        .map(|p| free_runs(g, p).iter().map(|r| r.1).max().unwrap_or(0))
        .collect();
    if stripes <= 1 {
        // linear takes every free extent, over as many runs as there are
        return g
            .pvs
            .iter()
            .flat_map(|p| free_runs(g, p))
            .map(|r| r.1)
            .sum();
    }
    best.sort_unstable_by(|a, b| b.cmp(a));
    best.get(stripes as usize - 1).copied().unwrap_or(0)
}

/// The segments of `count` extents from LV extent `start` on: linear, from the free
/// runs in PV order (one segment each, as many as it takes); striped, one segment over
/// the first `stripes` PVs with a run of `count / stripes`.
fn allocate(
    g: &Vg,
    start: u64,
    count: u64,
    stripes: u64,
    stripe_size: Bytes,
) -> Result<Vec<LvSegment>, String> {
    if count == 0 || !count.is_multiple_of(stripes) {
        return Err(format!(
            "{count} extents are not a whole number of {stripes} stripes"
        ));
    }
    let short = || {
        format!(
            "Insufficient free space: {count} extents needed on {stripes} PV(s) in volume group {}",
            g.name
        )
    };
    if stripes <= 1 {
        let mut out = Vec::new();
        let (mut at, mut left) = (start, count);
        for p in &g.pvs {
            for (first, n) in free_runs(g, p) {
                if left == 0 {
                    break;
                }
                let take = n.min(left);
                out.push(LvSegment {
                    start_extent: at,
                    extent_count: take,
                    segtype: "striped".into(),
                    stripe_count: 1,
                    stripe_size: None,
                    stripes: vec![LvStripe {
                        pv: p.uuid.clone(),
                        offset: first,
                    }],
                });
                at += take;
                left -= take;
            }
        }
        return if left == 0 { Ok(out) } else { Err(short()) };
    }
    let per = count / stripes;
    let mut placed = Vec::new();
    for p in &g.pvs {
        if placed.len() as u64 == stripes {
            break;
        }
        if let Some((first, _)) = free_runs(g, p).into_iter().find(|r| r.1 >= per) {
            placed.push(LvStripe {
                pv: p.uuid.clone(),
                offset: first,
            });
        }
    }
    if (placed.len() as u64) < stripes {
        return Err(short());
    }
    Ok(vec![LvSegment {
        start_extent: start,
        extent_count: count,
        segtype: "striped".into(),
        stripe_count: stripes,
        stripe_size: Some(stripe_size),
        stripes: placed,
    }])
}

/// LVM's refusal of a PV a VG lists whose own metadata area is empty (a `vgcreate` or
/// `vgextend` stopped between its PVs), as `pvcreate` and `vgextend` word it.
/// LVM's refusal of a PV whose metadata area header was never written (a stopped
/// `pvcreate`): every command (`pvcreate -ff`, `pvremove -ff`, `vgcreate`) fails so.
fn bad_mda_header(path: &str) -> String {
    format!("WARNING: bad metadata header on {path} at 4096.\n  WARNING: scan failed to get metadata summary from {path}\n  Command failed with status code 5.")
}

fn metadata_missing(path: &str) -> String {
    format!("PV {path} is used by a VG but its metadata is missing.\n  Can't initialize PV '{path}' without -ff.")
}
