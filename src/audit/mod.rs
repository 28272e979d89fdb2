//! The 2 MiB DAX audit: for each DAX mount, walk the stack down (mount, filesystem,
//! partition, dm targets, for an LV its LVM layers, namespace) and say, per layer, what
//! was found and whether it lets DAX map 2 MiB pages (PMDs). One misaligned layer
//! silently costs every PMD fault; this names the layer and the fix. Pure over the
//! snapshot.
//!
//! Rules (sectors of 512 B; 4096 sectors = 2 MiB):
//! - platform: 4 KiB pages, the CPU's `pse` flag (2 MiB pages; `pdpe1gb` for 1 GiB);
//! - mount: `dax=always` (or `inode`, per file);
//! - filesystem: 4 KiB blocks; stripe unit 2 MiB (ext4 stride / xfs sunit 512 blocks);
//!   xfs: an inherited 2 MiB extent size hint on the root;
//! - partition: start a multiple of 2 MiB (of 4 KiB at least, or no DAX at all);
//! - dm: linear segments starting and mapping at multiples of 2 MiB; striped chunk and
//!   member offsets multiples of 2 MiB, and `queue/max_sectors_kb` at least the chunk
//!   (dm-striped maps DAX only up to it: pmem's 1280 KiB leaves a 2 MiB chunk without a
//!   single PMD fault); other targets: no DAX;
//! - an active LV's dm device (dm uuid `LVM-<vg uuid><lv uuid>`, see [`lvm`]) has the
//!   dm rules for its table and `max_sectors_kb`, then, under it:
//!   - lv (`VG/LV`), one finding per segment: linear or striped (other types: no DAX);
//!     the stripe size a multiple of 2 MiB (`lvcreate -I 2m`); each stripe's start on
//!     its PV (`pe_start` + offset x extent size) and the segment's start in the LV
//!     multiples of 2 MiB;
//!   - vg: the extent size a multiple of 2 MiB (`vgcreate -s 4m`, LVM's default);
//!   - pv (its device), one per PV the LV's segments use: the data area start
//!     (`pe_start`) a multiple of 2 MiB (`pvcreate --dataalignment 2m`; the default is
//!     1 MiB); then the walk goes on below the PV's device;
//!
//!   a start off 2 MiB is `pe_start`'s or the extent size's doing: it is named once,
//!   at that pv or vg, with the fix; the dm table and the segment it shifts say so
//!   and give no warning of their own;
//! - namespace: fsdax, physical start (sysfs `resource`) and `align` multiples of 2 MiB;
//!   members of one device on one NUMA node.

pub mod cxl;
pub mod lvm;

use crate::actual::dm::{TableLine, Target};
use crate::actual::{Actual, BlockDevice, Devno, DmDevice, Mount};
use crate::args::{DaxMode, NamespaceMode};
use crate::units::{Bytes, Sectors, HUGE_PAGE, PAGE};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// 2 MiB in sectors.
const PMD_SECTORS: Sectors = Sectors(4096);

/// One layer's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LayerAudit {
    /// mount, filesystem, partition, dm, lv, vg, pv, namespace, cxl_region, platform.
    pub layer: String,
    /// The object (path, device, namespace; `VG/LV` for an lv, the VG's name for a vg).
    pub object: String,
    /// What was found.
    pub found: String,
    /// It allows 2 MiB faults.
    pub pmd_ok: bool,
    /// What to change, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Where it sits in the stack under the mount: 0 the mount, 1 its filesystem, 2 the
    /// device mounted, 3 what that device is made of (a partition's disk, a dm device's
    /// members; under an LV's dm device, its `lv` one deeper, its `vg` two, the `pv`s
    /// three and their devices four; under a namespace on a CXL region, its `cxl_region`
    /// one deeper), and so on down; a layer belongs to the nearest one
    /// above it with a smaller depth (the tree `--format text` draws). 0 for the
    /// platform.
    #[serde(default)]
    pub depth: usize,
}

/// The audit of one mount's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StackAudit {
    /// Mount point.
    pub mount: String,
    /// Every layer allows 2 MiB faults.
    pub pmd_ok: bool,
    /// Layers, top down.
    pub layers: Vec<LayerAudit>,
    /// NUMA nodes of the namespaces under it.
    pub numa_nodes: Vec<i32>,
}

/// The whole audit (result key `dax_audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct DaxAudit {
    /// Page size, CPU flags, transparent huge pages.
    pub platform: Vec<LayerAudit>,
    /// One entry per DAX mount audited.
    pub mounts: Vec<StackAudit>,
    /// Misalignments, naming the layer and the fix.
    pub warnings: Vec<String>,
    /// DAX requested where the stack cannot do DAX at all.
    pub errors: Vec<String>,
}

fn layer(
    depth: usize,
    layer: &str,
    object: &str,
    found: String,
    pmd_ok: bool,
    fix: Option<String>,
) -> LayerAudit {
    LayerAudit {
        layer: layer.into(),
        object: object.into(),
        found,
        pmd_ok,
        fix,
        depth,
    }
}

/// The depth of the device layers `depth` levels below the mounted device.
const fn device_depth(depth: usize) -> usize {
    depth + 2
}

/// Audit the mounts at `paths` (all mounts with `dax=` other than never when `None`).
pub fn audit(a: &Actual, paths: Option<&[String]>) -> DaxAudit {
    let mut out = DaxAudit::default();
    if let Some(p) = &a.platform {
        let platform = |object: &str, found: String, pmd_ok: bool, fix: Option<&str>| {
            layer(0, "platform", object, found, pmd_ok, fix.map(String::from))
        };
        let either = |flag: bool, yes: &str, no: &str| if flag { yes } else { no }.to_string();
        let ps_ok = p.page_size == PAGE;
        out.platform = vec![
            platform(
                "page size",
                p.page_size.to_string(),
                ps_ok,
                (!ps_ok).then_some("DAX needs 4 KiB pages"),
            ),
            platform(
                "cpu pse",
                either(p.pse, "2 MiB pages supported", "no pse flag"),
                p.pse,
                (!p.pse).then_some("a CPU with 2 MiB pages (pse) is needed for PMD faults"),
            ),
            platform(
                "cpu pdpe1gb",
                either(p.pdpe1gb, "1 GiB pages supported", "no 1 GiB pages"),
                true,
                None,
            ),
        ];
        if let Some(t) = &p.thp {
            out.platform
                .push(platform("transparent_hugepage", t.clone(), true, None));
        }
    }
    let platform_ok = out.platform.iter().all(|l| l.pmd_ok);
    let mounts: Vec<&Mount> = match paths {
        Some(ps) => ps.iter().filter_map(|p| a.mount_at(p)).collect(),
        None => a
            .mounts
            .iter()
            .filter(|m| matches!(m.dax, Some(DaxMode::Always | DaxMode::Inode)))
            .collect(),
    };
    for m in mounts {
        let (s, derived) = stack(a, m);
        let failed = s
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| !l.pmd_ok && !derived.contains(i));
        for (_, l) in failed {
            let fix = l
                .fix
                .as_deref()
                .map(|f| format!("; fix: {f}"))
                .unwrap_or_default();
            let msg = format!(
                "dax_audit {}: {} {}: {}{fix}",
                m.target, l.layer, l.object, l.found
            );
            if l.found.contains("no DAX") {
                out.errors.push(msg);
            } else {
                out.warnings.push(msg);
            }
        }
        if s.numa_nodes.len() > 1 {
            out.warnings.push(format!(
                "dax_audit {}: the namespaces under it are on NUMA nodes {:?}: accesses cross nodes; keep a striped or linear device on one node",
                m.target, s.numa_nodes
            ));
        }
        let mut s = s;
        s.pmd_ok &= platform_ok;
        out.mounts.push(s);
    }
    out
}

/// The audit of the stack under mount `m`, and which of its layers fail only because of
/// a layer below them, which names the cause and the fix (they give no warning).
fn stack(a: &Actual, m: &Mount) -> (StackAudit, BTreeSet<usize>) {
    let mut layers = Vec::new();
    let dax = m.dax.unwrap_or(DaxMode::Never);
    layers.push(layer(
        0,
        "mount",
        &m.target,
        format!("dax={}", dax.as_str()),
        dax != DaxMode::Never,
        (dax == DaxMode::Never).then(|| "mount with dax=always".into()),
    ));
    if let Some(fs) = a.filesystem(m.devno) {
        let bs = fs.block_size.unwrap_or_default();
        let su = fs.stripe_unit.unwrap_or(0);
        let su_bytes = Bytes(u64::from(su).saturating_mul(bs.0));
        let mut found = format!(
            "{} block size {bs}, stripe unit {su} blocks ({su_bytes})",
            fs.fstype
        );
        let mut ok = bs == PAGE && su_bytes.0 != 0 && su_bytes.is_multiple_of(HUGE_PAGE);
        let mut fix = (!ok).then(|| match fs.fstype.as_str() {
            "xfs" => {
                "mkfs.xfs -d su=2m,sw=<stripes> (or mount -o sunit=4096,swidth=...)".to_string()
            }
            _ => "mkfs.ext4 -b 4096 -E stride=512 (or tune2fs -E stride=512)".to_string(),
        });
        if bs != PAGE {
            found.push_str(": no DAX with blocks other than 4 KiB");
        }
        if fs.fstype == "xfs" {
            match m.root_extsize {
                Some(e) if e.size.0 != 0 && e.size.is_multiple_of(HUGE_PAGE) && e.inherit => {
                    found.push_str(&format!(", root extsize {} inherited", e.size));
                }
                other => {
                    found.push_str(&format!(
                        ", root extsize {}",
                        other
                            .map(|e| e.size.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    ));
                    ok = false;
                    fix = Some(format!(
                        "{}xfs_io -c 'extsize 2m' {}",
                        fix.map(|f| format!("{f}; ")).unwrap_or_default(),
                        m.target
                    ));
                }
            }
        }
        layers.push(layer(1, "filesystem", &m.source, found, ok, fix));
    }
    let mut walk = Walk {
        a,
        layers,
        nodes: BTreeSet::new(),
        seen: BTreeSet::new(),
        derived: BTreeSet::new(),
    };
    walk.device(m.devno, 0);
    let pmd_ok = walk.layers.iter().all(|l| l.pmd_ok);
    let stack = StackAudit {
        mount: m.target.clone(),
        pmd_ok,
        layers: walk.layers,
        numa_nodes: walk.nodes.into_iter().collect(),
    };
    (stack, walk.derived)
}

/// A walk down the device layers under one mount: what each layer allows, the NUMA
/// nodes met, and the devices seen (each layer once).
struct Walk<'a> {
    a: &'a Actual,
    layers: Vec<LayerAudit>,
    nodes: BTreeSet<i32>,
    seen: BTreeSet<Devno>,
    /// The layers (indices) whose failure a layer below names.
    derived: BTreeSet<usize>,
}

impl Walk<'_> {
    fn device(&mut self, devno: Devno, depth: usize) {
        let a = self.a;
        if depth > 16 || !self.seen.insert(devno) {
            return;
        }
        let Some(bd) = a.block(devno) else {
            self.layers.push(layer(
                device_depth(depth),
                "device",
                &devno.to_string(),
                "not found".into(),
                false,
                None,
            ));
            return;
        };
        if let Some(p) = &bd.partition {
            self.partition(bd, p.start, depth);
        } else if let Some(dm) = a.dm_by_devno(devno) {
            self.dm(bd, dm, depth);
        } else if let Some(ns) = a.namespace_of_block(&bd.name) {
            let name = ns.name.clone().unwrap_or_else(|| ns.dev.clone());
            if let Some(n) = ns.numa_node {
                self.nodes.insert(n);
            }
            let start_ok = ns
                .resource
                .is_none_or(|r| Bytes(r).is_multiple_of(HUGE_PAGE));
            let align_ok = ns
                .align
                .is_some_and(|al| al.0 != 0 && al.is_multiple_of(HUGE_PAGE));
            let fsdax = ns.mode == NamespaceMode::Fsdax;
            let found = format!(
                "{} namespace {} ({}), physical start {}, align {}, map {}",
                ns.mode,
                name,
                bd.path,
                ns.resource
                    .map(|r| format!("{r:#x}"))
                    .unwrap_or_else(|| "unknown".into()),
                ns.align
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "none".into()),
                ns.map.map(|m| m.as_str()).unwrap_or("-"),
            );
            let ok = start_ok && align_ok && fsdax;
            let fix = if !fsdax {
                Some("mode: fsdax (only fsdax block devices do DAX)".to_string())
            } else if !align_ok {
                Some("align: 2M".to_string())
            } else if !start_ok {
                Some(
                    "the region's physical start is not 2 MiB aligned: a firmware/region layout matter"
                        .to_string(),
                )
            } else {
                None
            };
            self.layers.push(layer(
                device_depth(depth),
                "namespace",
                &name,
                if fsdax {
                    found
                } else {
                    format!("{found}: no DAX")
                },
                ok,
                fix,
            ));
            if let Some(r) = a
                .cxl
                .regions
                .iter()
                .find(|r| r.nvdimm_region.as_deref() == Some(ns.region.as_str()))
            {
                self.layers
                    .push(cxl::region_layer(r, device_depth(depth) + 1));
            }
        } else {
            self.layers.push(layer(
                device_depth(depth),
                "device",
                &bd.path,
                format!("{}: not a pmem namespace, dm device or partition", bd.path),
                bd.dax,
                None,
            ));
        }
    }

    /// A finding; `derived`: its failure is named at a layer below (no warning).
    fn push(&mut self, l: LayerAudit, derived: bool) {
        if derived {
            self.derived.insert(self.layers.len());
        }
        self.layers.push(l);
    }

    /// A dm device `bd`: one finding per table line; for an active LV, its LVM layers
    /// with the PVs under them; then the members of its table not walked yet.
    fn dm(&mut self, bd: &BlockDevice, dm: &DmDevice, depth: usize) {
        let a = self.a;
        let d = device_depth(depth);
        let name = format!("/dev/mapper/{}", dm.name);
        let lines = match dm.table.lines() {
            Ok(lines) => lines,
            Err(e) => {
                self.push(layer(d, "dm", &name, e.to_string(), false, None), false);
                return;
            }
        };
        let lv = a
            .lv_of_dm(dm)
            .map(|(vg, lv)| (vg, lv, lvm::layers(a, vg, lv, d)));
        let origin = match &lv {
            Some((vg, lv, layers)) => Origin::Lv {
                name: format!("{}/{}", vg.name, lv.name),
                misaligned: layers.misaligned(),
            },
            None if dm.is_lvm() => Origin::LvUnread,
            None => Origin::Dm,
        };
        for l in lines {
            let (finding, derived) = dm_line(l, bd, &name, &origin, d);
            self.push(finding, derived);
        }
        if let Some((_, _, layers)) = lv {
            for f in layers.segments {
                self.push(f.layer, f.derived);
            }
            self.push(layers.vg, false);
            for (pv, device) in layers.pvs {
                self.push(pv, false);
                if let Some(device) = device {
                    self.device(device, depth + 4);
                }
            }
        }
        // a member already walked (a PV above) is not again
        for m in lines.iter().flat_map(|l| l.members()) {
            self.device(m, depth + 1);
        }
    }

    fn partition(&mut self, bd: &BlockDevice, start: Sectors, depth: usize) {
        let a = self.a;
        let ok = start.is_multiple_of(PMD_SECTORS);
        let page_ok =
            start.is_multiple_of(PAGE.sectors()) && bd.size.is_multiple_of(PAGE.sectors());
        let found = format!(
            "{} starts at sector {start} ({}), size {} sectors{}",
            bd.path,
            start.bytes(),
            bd.size,
            if page_ok {
                ""
            } else {
                ": not 4 KiB aligned, no DAX"
            }
        );
        self.layers.push(layer(
            device_depth(depth),
            "partition",
            &bd.path,
            found,
            ok && page_ok,
            (!ok).then(|| "start: 2M (sector 4096) or another multiple of 2 MiB".into()),
        ));
        if let Some(disk) = bd.partition.as_ref().and_then(|p| a.block_named(&p.disk)) {
            self.device(disk.devno, depth + 1);
        }
    }
}

/// Who decided a dm device's table, so who its fixes go to.
enum Origin {
    /// A dm device of its own (this module's, or made by hand).
    Dm,
    /// LVM, for LV `name` (`VG/LV`); `misaligned`: one of its LVM layers does not allow
    /// 2 MiB faults, and names why.
    Lv { name: String, misaligned: bool },
    /// LVM (dm uuid `LVM-...`), for an LV whose metadata the probe did not read, or an
    /// LV's hidden sub-device (`-real`, `-tpool`, `_rimage_0`, ...).
    LvUnread,
}

/// The finding of one line of the table of dm device `bd` (at `/dev/mapper/...` `name`,
/// depth `d`), and whether its failure is named at a layer below (an LV's layout off
/// 2 MiB boundaries because of its PV, VG or stripe size).
fn dm_line(
    l: &TableLine,
    bd: &BlockDevice,
    name: &str,
    origin: &Origin,
    d: usize,
) -> (LayerAudit, bool) {
    let lvm = !matches!(origin, Origin::Dm);
    // what is wrong with the line's geometry (where it maps), and its own fix
    let (mut found, geometry_ok, dm_fix, io) = match &l.target {
        Target::Linear { dev, offset } => {
            let ok = l.start.is_multiple_of(PMD_SECTORS) && offset.is_multiple_of(PMD_SECTORS)
                || l.start.0 == 0 && offset.0 == 0;
            (
                format!(
                    "linear sectors {}+{} -> {dev} at {offset}",
                    l.start, l.length
                ),
                ok,
                "start every segment and member offset at a multiple of 4096 sectors (2 MiB)",
                None,
            )
        }
        Target::Striped { chunk, stripes } => {
            let offs_ok = stripes.iter().all(|(_, o)| o.is_multiple_of(PMD_SECTORS));
            let chunk_kb = chunk.bytes().0 / 1024;
            let msk = bd.max_sectors_kb;
            (
                format!(
                    "striped {} x chunk {} sectors ({}), max_sectors_kb {}",
                    stripes.len(),
                    chunk,
                    chunk.bytes(),
                    msk.map(|k| k.to_string())
                        .unwrap_or_else(|| "unknown".into())
                ),
                chunk.is_multiple_of(PMD_SECTORS) && offs_ok,
                "chunk: 2M (4096 sectors) and member offsets multiples of 2 MiB",
                msk.filter(|k| u64::from(*k) < chunk_kb).map(|_| chunk_kb),
            )
        }
        Target::Other { kind, .. } => {
            let fix = if lvm {
                "an LV of linear or striped segments (lvcreate without --type)"
            } else {
                "use linear or striped"
            };
            let found = format!("{kind} target: no DAX");
            return (layer(d, "dm", name, found, false, Some(fix.into())), false);
        }
    };
    let io_fix = io.map(|chunk_kb| {
        let echo = format!(
            "echo {chunk_kb} > /sys/block/{}/queue/max_sectors_kb",
            bd.name
        );
        if lvm {
            format!("{echo} (LVM leaves it at its PVs' limit, and so does the LV's next activation: a udev rule can raise it)")
        } else {
            format!("{echo} (pmem_stack sets it on striped devices it creates or reloads)")
        }
    });
    let mut derived = false;
    let geometry_fix = match origin {
        _ if geometry_ok => None,
        Origin::Dm => Some(dm_fix.to_string()),
        Origin::Lv {
            misaligned: true, ..
        } => {
            found.push_str(": LVM's layout, off 2 MiB boundaries because of a layer below");
            derived = io_fix.is_none();
            None
        }
        Origin::Lv { name, .. } => Some(format!(
            "the live table is not the layout LVM's metadata describes, which is aligned: lvchange --refresh {name}"
        )),
        Origin::LvUnread => Some(
            "LVM's layout, not judged here (its LV's metadata was not read, or this is an LV's hidden sub-device): pe_start (pvs -o +pe_start), the extent size (vgs -o +vg_extent_size) and the stripe size (lvs -o +stripe_size) must be multiples of 2 MiB"
                .to_string(),
        ),
    };
    let ok = geometry_ok && io_fix.is_none();
    let fix = geometry_fix.or(io_fix);
    (layer(d, "dm", name, found, ok, fix), derived && !ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake::FakeSystem;
    use crate::system::System;

    fn run(fake: &mut FakeSystem, args: serde_json::Value) {
        let r = crate::run(&args.to_string(), fake, false);
        assert!(!r.failed, "{}", r.msg);
    }

    #[test]
    fn an_aligned_stack_passes_and_a_1m_partition_is_named() {
        // xfs wants at least 300 MB and 513 MiB with a 2 MiB stripe unit
        let mut fake = FakeSystem::with_fsdax(2, Bytes(1 << 30));
        run(
            &mut fake,
            serde_json::json!({
                "partitions": [{"name": "p", "disk": "/dev/pmem0", "start": "2M", "size": "600M"},
                               {"name": "q", "disk": "/dev/pmem0", "start": "603M", "size": "64M"}],
                "filesystems": [{"device": "p", "type": "xfs"}, {"device": "q", "type": "ext4"}],
                "mounts": [{"path": "/mnt/p", "device": "p"}, {"path": "/mnt/q", "device": "q"}]
            }),
        );
        let a = fake.probe().expect("probe");
        let audit = audit(&a, None);
        assert_eq!(audit.mounts.len(), 2);
        let p = &audit.mounts[0];
        assert!(p.pmd_ok, "{:#?}", p.layers);
        assert_eq!(
            p.layers
                .iter()
                .map(|l| l.layer.as_str())
                .collect::<Vec<_>>(),
            ["mount", "filesystem", "partition", "namespace"]
        );
        assert_eq!(
            p.layers.iter().map(|l| l.depth).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let q = &audit.mounts[1];
        assert!(!q.pmd_ok);
        let bad: Vec<&LayerAudit> = q.layers.iter().filter(|l| !l.pmd_ok).collect();
        assert_eq!(bad.len(), 1, "{bad:#?}");
        assert_eq!(bad[0].layer, "partition");
        assert!(
            audit
                .warnings
                .iter()
                .any(|w| w.contains("/mnt/q: partition") && w.contains("fix: start: 2M")),
            "{:?}",
            audit.warnings
        );
    }

    #[test]
    fn a_1m_chunk_is_named_at_the_dm_layer() {
        let mut fake = FakeSystem::with_fsdax(2, Bytes(256 << 20));
        run(
            &mut fake,
            serde_json::json!({
                "devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0", "/dev/pmem1"], "chunk": "1M"}],
                "filesystems": [{"device": "s", "type": "ext4", "mkfs_options": ["-E", "stride=256"]}],
                "mounts": [{"path": "/mnt/s", "device": "s"}]
            }),
        );
        let a = fake.probe().expect("probe");
        let audit = audit(&a, Some(&["/mnt/s".to_string()]));
        let bad: Vec<&str> = audit.mounts[0]
            .layers
            .iter()
            .filter(|l| !l.pmd_ok)
            .map(|l| l.layer.as_str())
            .collect();
        assert_eq!(bad, ["filesystem", "dm"]);
        // the tree: the dm device under the filesystem, its two members under it
        let depths: Vec<(&str, usize)> = audit.mounts[0]
            .layers
            .iter()
            .map(|l| (l.layer.as_str(), l.depth))
            .collect();
        assert_eq!(
            depths,
            [
                ("mount", 0),
                ("filesystem", 1),
                ("dm", 2),
                ("namespace", 3),
                ("namespace", 3)
            ]
        );
        assert!(
            audit
                .warnings
                .iter()
                .any(|w| w.contains("dm /dev/mapper/s: striped 2 x chunk 2048 sectors (1M)")),
            "{:?}",
            audit.warnings
        );
    }

    /// A namespace whose NVDIMM region is a CXL region's has that region under it, one
    /// deeper: its interleave by serial, in position order; it does not decide 2 MiB faults.
    #[test]
    fn a_namespace_on_a_cxl_region_has_the_region_under_it() {
        use crate::actual::cxl::{CxlRegion, RegionMember};
        let mut fake = FakeSystem::with_fsdax(2, Bytes(256 << 20));
        run(
            &mut fake,
            serde_json::json!({
                "filesystems": [{"device": "/dev/pmem0", "type": "ext4"}],
                "mounts": [{"path": "/mnt/c", "device": "/dev/pmem0"}]
            }),
        );
        let mut a = fake.probe().expect("probe");
        let ns_region = a.namespaces[0].region.clone();
        let member = |position: u32, serial: u64| RegionMember {
            position,
            decoder: format!("decoder{}.0", position + 2),
            memdev: Some(format!("mem{position}")),
            serial: Some(serial),
        };
        a.cxl.regions.push(CxlRegion {
            name: "region7".into(),
            root_decoder: "decoder0.0".into(),
            uuid: None,
            mode: "pmem".into(),
            size: Bytes(1 << 30),
            start: Some(0x1_1000_0000),
            interleave_ways: 2,
            interleave_granularity: 256,
            committed: true,
            locked: false,
            members: vec![member(0, 2), member(1, 1)],
            nvdimm_region: Some(ns_region),
        });
        let audit = audit(&a, Some(&["/mnt/c".to_string()]));
        let layers = &audit.mounts[0].layers;
        let depth = |name: &str| layers.iter().find(|l| l.layer == name).map(|l| l.depth);
        assert_eq!(
            depth("cxl_region"),
            depth("namespace").map(|d| d + 1),
            "{layers:#?}"
        );
        let l = layers
            .iter()
            .find(|l| l.layer == "cxl_region")
            .expect("cxl layer");
        assert!(l.pmd_ok && l.fix.is_none());
        assert!(
            l.found
                .contains("2 way(s) x 256 B over memory device serial(s) 0x2, 0x1")
                && l.found.contains("start 0x110000000, committed"),
            "{}",
            l.found
        );
    }

    // ---- LVM -------------------------------------------------------------------------

    use crate::actual::dm::{TableLine, Target};
    use crate::actual::lvm::Lvm;
    use crate::actual::DmTable;
    use lvm::fixtures::{lvm_machine, lvm_of, pmem, the_lv_mut, vgp, VGD_PV0};

    /// (layer, object, depth, pmd_ok) of each layer.
    fn shape(s: &StackAudit) -> Vec<(&str, &str, usize, bool)> {
        s.layers
            .iter()
            .map(|l| (l.layer.as_str(), l.object.as_str(), l.depth, l.pmd_ok))
            .collect()
    }

    fn found<'a>(s: &'a StackAudit, layer: &str) -> Vec<&'a str> {
        s.layers
            .iter()
            .filter(|l| l.layer == layer)
            .map(|l| l.found.as_str())
            .collect()
    }

    /// A striped LV as LVM makes it with `pvcreate --dataalignment 2m`, `vgcreate -s 4m`
    /// and `lvcreate -i 2 -I 2m`, its dm device's max_sectors_kb raised to 2048: every
    /// LVM layer passes; under the dm device, the LV, its VG, and each PV with its
    /// namespace under it.
    #[test]
    fn an_aligned_striped_lv_passes_every_lvm_layer() {
        let a = lvm_machine(vgp(), "vgp", "lvs", 2048);
        let audit = audit(&a, None);
        let s = &audit.mounts[0];
        assert!(s.pmd_ok, "{:#?}", s.layers);
        assert!(audit.warnings.is_empty(), "{:?}", audit.warnings);
        assert_eq!(
            shape(s),
            [
                ("mount", "/mnt/lv", 0, true),
                ("filesystem", "/dev/mapper/vgp-lvs", 1, true),
                ("dm", "/dev/mapper/vgp-lvs", 2, true),
                ("lv", "vgp/lvs", 3, true),
                ("vg", "vgp", 4, true),
                ("pv", "/dev/pmem0", 5, true),
                ("namespace", "pm0", 6, true),
                ("pv", "/dev/pmem1", 5, true),
                ("namespace", "pm1", 6, true),
            ]
        );
        assert_eq!(
            found(s, "dm"),
            ["striped 2 x chunk 4096 sectors (2M), max_sectors_kb 2048"]
        );
        assert_eq!(
            found(s, "lv"),
            ["extents 0+16: striped, 2 stripes of 2M, on /dev/pmem0 at 2M, /dev/pmem1 at 2M"]
        );
        assert_eq!(
            found(s, "vg"),
            ["extent size 4M (8192 sectors), 2 PV(s), 2 LV(s)"]
        );
        assert_eq!(
            found(s, "pv"),
            [
                "PV of VG vgp, data area (pe_start) at 2M (4096 sectors)",
                "PV of VG vgp, data area (pe_start) at 2M (4096 sectors)"
            ]
        );
        // the linear LV of the same VG: at extent 8 of pv0, 2 MiB + 8 x 4 MiB in
        let a = lvm_machine(vgp(), "vgp", "lvl", 1280);
        let audit = super::audit(&a, None);
        let s = &audit.mounts[0];
        assert!(s.pmd_ok, "{:#?}", s.layers);
        assert_eq!(
            found(s, "lv"),
            ["extents 0+8: linear, on /dev/pmem0 at 34M"]
        );
        assert_eq!(found(s, "dm"), ["linear sectors 0+65536 -> 259:0 at 69632"]);
    }

    /// The same striped LV with the max_sectors_kb its dm device inherits from pmem
    /// (1280 KiB, below one 2 MiB chunk): the dm layer is named, with LVM's fix.
    #[test]
    fn a_striped_lv_below_its_stripe_in_max_sectors_kb_is_named_at_dm() {
        let a = lvm_machine(vgp(), "vgp", "lvs", 1280);
        let audit = audit(&a, None);
        let bad: Vec<(&str, bool)> = shape(&audit.mounts[0])
            .into_iter()
            .filter(|l| !l.3)
            .map(|l| (l.0, l.3))
            .collect();
        assert_eq!(bad, [("dm", false)]);
        assert_eq!(audit.warnings.len(), 1, "{:?}", audit.warnings);
        let w = &audit.warnings[0];
        assert!(
            w.starts_with("dax_audit /mnt/lv: dm /dev/mapper/vgp-lvs: striped 2 x chunk 4096 sectors (2M), max_sectors_kb 1280; fix: echo 2048 > /sys/block/dm-0/queue/max_sectors_kb (LVM leaves it"),
            "{w}"
        );
    }

    /// A VG as `pvcreate`/`vgcreate`/`lvcreate` make it by default (the `vgd` fixture:
    /// pe_start 1 MiB): the PV is named, with the fix; the dm table and the LV's
    /// segment, shifted by it, say so without a warning of their own.
    #[test]
    fn lvm_default_alignment_is_named_at_the_pv() {
        let probe = FakeSystem::with_fsdax(2, Bytes(1 << 30)).state;
        let lvm = lvm_of(&[(VGD_PV0, pmem(&probe, 0))]);
        let a = lvm_machine(lvm, "vgd", "lvd", 1280);
        let audit = audit(&a, None);
        let s = &audit.mounts[0];
        assert!(!s.pmd_ok);
        assert_eq!(
            shape(s),
            [
                ("mount", "/mnt/lv", 0, true),
                ("filesystem", "/dev/mapper/vgd-lvd", 1, true),
                ("dm", "/dev/mapper/vgd-lvd", 2, false),
                ("lv", "vgd/lvd", 3, false),
                ("vg", "vgd", 4, true),
                ("pv", "/dev/pmem0", 5, false),
                ("namespace", "pm0", 6, true),
            ]
        );
        assert_eq!(
            audit.warnings,
            ["dax_audit /mnt/lv: pv /dev/pmem0: PV of VG vgd, data area (pe_start) at 1M (2048 sectors): not a multiple of 2 MiB (pvcreate's default is 1 MiB); fix: make the PV again with pvcreate --dataalignment 2m /dev/pmem0, which loses the data on it: first move its extents to another PV (pvmove /dev/pmem0) and vgreduce vgd /dev/pmem0, or back up vgd; then vgextend vgd /dev/pmem0"]
        );
        assert!(audit.errors.is_empty(), "{:?}", audit.errors);
        let by = |layer: &str| s.layers.iter().find(|l| l.layer == layer).expect(layer);
        assert_eq!(
            by("dm").found,
            "linear sectors 0+204800 -> 259:0 at 2048: LVM's layout, off 2 MiB boundaries because of a layer below"
        );
        assert_eq!(by("dm").fix, None);
        assert_eq!(
            by("lv").found,
            "extents 0+25: linear, on /dev/pmem0 at 1M: not on 2 MiB boundaries, because of the data area start of PV /dev/pmem0"
        );
        assert_eq!(by("lv").fix, None);
    }

    /// A VG of 1 MiB extents (`vgcreate -s 1m` over 2 MiB-aligned PVs) fails at the vg
    /// layer, even while the LV mounted happens to start on 2 MiB; one that starts at
    /// an odd extent is shifted by it, which the LV says, the VG naming the fix.
    #[test]
    fn an_extent_size_off_2m_is_named_at_the_vg() {
        for (offset, lv_ok, lv_found) in [
            (8, true, "extents 0+8: linear, on /dev/pmem0 at 10M"),
            (
                9,
                false,
                "extents 0+8: linear, on /dev/pmem0 at 11M: not on 2 MiB boundaries, because of the extent size of VG vgp",
            ),
        ] {
            let mut lvm = vgp();
            let (vg, i) = the_lv_mut(&mut lvm, "vgp", "lvl");
            vg.extent_size = Bytes(1 << 20);
            vg.lvs[i].segments[0].stripes[0].offset = offset;
            let a = lvm_machine(lvm, "vgp", "lvl", 1280);
            let audit = audit(&a, None);
            let s = &audit.mounts[0];
            let bad: Vec<&str> = s
                .layers
                .iter()
                .filter(|l| !l.pmd_ok)
                .map(|l| l.layer.as_str())
                .collect();
            let want: &[&str] = if lv_ok { &["vg"] } else { &["dm", "lv", "vg"] };
            assert_eq!(bad, want, "offset {offset}");
            assert_eq!(found(s, "lv"), [lv_found]);
            assert_eq!(audit.warnings.len(), 1, "{:?}", audit.warnings);
            assert_eq!(
                audit.warnings[0],
                "dax_audit /mnt/lv: vg vgp: extent size 1M (2048 sectors), 2 PV(s), 2 LV(s): not a multiple of 2 MiB; fix: a new VG with 4 MiB extents (LVM's default), the LVs made again in it: vgcreate -s 4m NEW PV...; vgchange -s cannot move the extents vgp has allocated"
            );
        }
    }

    /// A striped LV of 64 KiB stripes (`lvcreate -i 2 -I 64k`) fails at the lv layer,
    /// with the fix; the dm table's 128-sector chunk says so without a warning.
    #[test]
    fn a_64k_stripe_size_is_named_at_the_lv() {
        let mut lvm = vgp();
        let (vg, i) = the_lv_mut(&mut lvm, "vgp", "lvs");
        vg.lvs[i].segments[0].stripe_size = Some(Bytes(64 << 10));
        let a = lvm_machine(lvm, "vgp", "lvs", 1280);
        let audit = audit(&a, None);
        let s = &audit.mounts[0];
        let bad: Vec<(&str, bool)> = s
            .layers
            .iter()
            .filter(|l| !l.pmd_ok)
            .map(|l| (l.layer.as_str(), l.fix.is_some()))
            .collect();
        assert_eq!(bad, [("dm", false), ("lv", true)]);
        assert_eq!(
            found(s, "dm"),
            ["striped 2 x chunk 128 sectors (64K), max_sectors_kb 1280: LVM's layout, off 2 MiB boundaries because of a layer below"]
        );
        assert_eq!(
            audit.warnings,
            ["dax_audit /mnt/lv: lv vgp/lvs: extents 0+16: striped, 2 stripes of 64K (not a multiple of 2 MiB), on /dev/pmem0 at 2M, /dev/pmem1 at 2M; fix: a new LV with a 2 MiB stripe size (a striped LV's cannot be changed in place): lvcreate -i 2 -I 2m -l 16 -n NEW vgp, and the data copied over"]
        );
    }

    /// An LV's dm device whose table does not follow its (aligned) metadata is named at
    /// the dm layer, with LVM's way to reload it; an LVM dm device whose metadata was
    /// not read is judged by its table alone, the fix naming what to look at.
    #[test]
    fn an_lv_table_off_its_metadata_or_unread_is_named_at_dm() {
        let mut a = lvm_machine(vgp(), "vgp", "lvl", 1280);
        let dev = pmem(&a, 0);
        a.dm_devices[0].table = DmTable::new(vec![TableLine {
            start: Sectors(0),
            length: Sectors(65536),
            target: Target::Linear {
                dev,
                offset: Sectors(2048),
            },
        }]);
        let audit = audit(&a, None);
        assert_eq!(audit.warnings.len(), 1, "{:?}", audit.warnings);
        assert!(
            audit.warnings[0].ends_with("fix: the live table is not the layout LVM's metadata describes, which is aligned: lvchange --refresh vgp/lvl"),
            "{:?}",
            audit.warnings
        );
        a.lvm = Lvm::default();
        let audit = super::audit(&a, None);
        let s = &audit.mounts[0];
        assert_eq!(
            shape(s).iter().map(|l| l.0).collect::<Vec<_>>(),
            ["mount", "filesystem", "dm", "namespace"]
        );
        assert_eq!(audit.warnings.len(), 1, "{:?}", audit.warnings);
        assert!(
            audit.warnings[0].contains("fix: LVM's layout, not judged here (its LV's metadata was not read, or this is an LV's hidden sub-device): pe_start (pvs -o +pe_start)"),
            "{:?}",
            audit.warnings
        );
    }
}
