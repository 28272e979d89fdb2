//! The 2 MiB DAX audit: for each DAX mount, walk the stack down (mount, filesystem,
//! partition, dm targets, namespace) and say, per layer, what was found and whether it
//! lets DAX map 2 MiB pages (PMDs). One misaligned layer silently costs every PMD fault;
//! this names the layer and the fix. Pure over the snapshot.
//!
//! Rules (sectors of 512 B; 4096 sectors = 2 MiB):
//! - platform: 4 KiB pages, the CPU's `pse` flag (2 MiB pages; `pdpe1gb` for 1 GiB);
//! - mount: `dax=always` (or `inode`, per file);
//! - filesystem: 4 KiB blocks; stripe unit 2 MiB (ext4 stride / xfs sunit 512 blocks);
//!   xfs: an inherited 2 MiB extent size hint on the root;
//! - partition: start a multiple of 2 MiB (of 4 KiB at least, or no DAX at all);
//! - dm: linear segments starting and mapping at multiples of 2 MiB; striped chunk and
//!   member offsets multiples of 2 MiB; other targets: no DAX;
//! - namespace: fsdax, physical start (sysfs `resource`) and `align` multiples of 2 MiB;
//!   members of one device on one NUMA node.

use crate::actual::dm::Target;
use crate::actual::{Actual, BlockDevice, Devno, Mount};
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
    /// mount, filesystem, partition, dm, namespace, platform.
    pub layer: String,
    /// The object (path, device, namespace).
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
    /// members), and so on down; a layer belongs to the nearest one above it with a
    /// smaller depth (the tree `--format text` draws). 0 for the platform.
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
        let s = stack(a, m);
        for l in s.layers.iter().filter(|l| !l.pmd_ok) {
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

fn stack(a: &Actual, m: &Mount) -> StackAudit {
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
    };
    walk.device(m.devno, 0);
    let pmd_ok = walk.layers.iter().all(|l| l.pmd_ok);
    StackAudit {
        mount: m.target.clone(),
        pmd_ok,
        layers: walk.layers,
        numa_nodes: walk.nodes.into_iter().collect(),
    }
}

/// A walk down the device layers under one mount: what each layer allows, the NUMA
/// nodes met, and the devices seen (each layer once).
struct Walk<'a> {
    a: &'a Actual,
    layers: Vec<LayerAudit>,
    nodes: BTreeSet<i32>,
    seen: BTreeSet<Devno>,
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
            let name = format!("/dev/mapper/{}", dm.name);
            match dm.table.lines() {
                Err(e) => self.layers.push(layer(
                    device_depth(depth),
                    "dm",
                    &name,
                    e.to_string(),
                    false,
                    None,
                )),
                Ok(lines) => {
                    for l in lines {
                        let (found, ok, fix) = match &l.target {
                            Target::Linear { dev, offset } => {
                                let ok = l.start.is_multiple_of(PMD_SECTORS)
                                    && offset.is_multiple_of(PMD_SECTORS);
                                (
                                    format!("linear sectors {}+{} -> {dev} at {offset}", l.start, l.length),
                                    ok || l.start.0 == 0 && offset.0 == 0,
                                    (!ok).then(|| "start every segment and member offset at a multiple of 4096 sectors (2 MiB)".to_string()),
                                )
                            }
                            Target::Striped { chunk, stripes } => {
                                let offs_ok =
                                    stripes.iter().all(|(_, o)| o.is_multiple_of(PMD_SECTORS));
                                let geometry_ok = chunk.is_multiple_of(PMD_SECTORS) && offs_ok;
                                let chunk_kb = chunk.bytes().0 / 1024;
                                let msk = bd.max_sectors_kb;
                                let io_ok = msk.is_none_or(|k| u64::from(k) >= chunk_kb);
                                let fix = if !geometry_ok {
                                    Some("chunk: 2M (4096 sectors) and member offsets multiples of 2 MiB".to_string())
                                } else if !io_ok {
                                    Some(format!("echo {chunk_kb} > /sys/block/{}/queue/max_sectors_kb (pmem_stack sets it on striped devices it creates or reloads)", bd.name))
                                } else {
                                    None
                                };
                                (
                                    format!(
                                        "striped {} x chunk {} sectors ({}), max_sectors_kb {}",
                                        stripes.len(),
                                        chunk,
                                        chunk.bytes(),
                                        msk.map(|k| k.to_string())
                                            .unwrap_or_else(|| "unknown".into())
                                    ),
                                    geometry_ok && io_ok,
                                    fix,
                                )
                            }
                            Target::Other { kind, .. } => (
                                format!("{kind} target: no DAX"),
                                false,
                                Some("use linear or striped".to_string()),
                            ),
                        };
                        self.layers
                            .push(layer(device_depth(depth), "dm", &name, found, ok, fix));
                    }
                    for m in lines.iter().flat_map(|l| l.members()) {
                        self.device(m, depth + 1);
                    }
                }
            }
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
}
