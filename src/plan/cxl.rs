//! CXL layer: the declared persistent-memory regions, assembled from their memory
//! devices (known by serial, in interleave order: `memN` follows enumeration) before
//! anything is planned on the NVDIMM region each shows as. The decoders are reset at
//! every boot, so a region found missing is the normal state of a booted machine: it is
//! made again, the same way, and its namespaces come back from their labels.
//!
//! A region found is the declared one when its members are the declared serials in the
//! declared order, it is a pmem region, and its size, granularity and root decoder are
//! the declared ones (where declared). Any other region holding a declared memory device
//! is in the way:
//!
//! | found | committed | carries namespaces | locked (firmware's) | allowed | step |
//! |---|---|---|---|---|---|
//! | the declared one | yes | - | - | - | nothing |
//! | none, memory devices free | - | - | - | - | create |
//! | a memory device missing | - | - | - | - | refuse, naming its serial and the devices found |
//! | in the way (other members, order or shape) | - | - | yes | - | refuse: not ours, never destroyed |
//! | in the way, or the declared one half-made | no (a stopped create-region) | - | no | - | destroy, create (nothing is lost: it never decoded) |
//! | in the way | yes | no, and no other device's | no | - | destroy, create |
//! | in the way | yes | yes (or spans a device not declared here) | no | yes / no | destroy its namespaces (after what is on them), destroy, create / refuse, naming what would be lost |
//!
//! `state: absent` destroys a declared region found with its namespaces gone (destroyed
//! by the same plan, with `allow_data_loss`) or never made; one still carrying
//! namespaces is left in place with a warning, as its namespaces are.
//!
//! A namespace declared on a CXL region (`region: <its name>`) is bound to the NVDIMM
//! region the assembled region shows as ([`bind_namespaces`]); while the region is still
//! to be made, the namespace layer plans it as if the new region were blank, and a live
//! run plans again once the regions are made (`apply`): the namespaces may come back
//! from their labels.

use super::{Action, Ctx, Refused, Resolved};
use crate::actual::cxl::{Cxl, CxlRegion};
use crate::actual::{Actual, Namespace};
use crate::args::validate::{CxlRegionSpec, Desired};
use crate::bind::Bound;
use crate::op::Op;

/// The region found that is `spec`, assembled and decoding (the declared members in
/// order, pmem, the declared shape), if any.
pub(crate) fn assembled<'a>(spec: &CxlRegionSpec, cxl: &'a Cxl) -> Option<&'a CxlRegion> {
    cxl.regions
        .iter()
        .find(|r| r.committed && same_members(spec, r) && shape_problem(spec, r).is_none())
}

/// The region found over `spec`'s memory devices in order, whatever its shape.
pub(crate) fn found<'a>(spec: &CxlRegionSpec, cxl: &'a Cxl) -> Option<&'a CxlRegion> {
    cxl.regions.iter().find(|r| same_members(spec, r))
}

/// Whether `r`'s members are `spec`'s memory devices, in order.
fn same_members(spec: &CxlRegionSpec, r: &CxlRegion) -> bool {
    r.mode == "pmem"
        && r.members.len() == spec.memdevs.len()
        && r.members
            .iter()
            .zip(&spec.memdevs)
            .all(|(m, s)| m.serial == Some(*s))
}

/// How `r` differs from `spec` in size, granularity or root decoder (where declared).
fn shape_problem(spec: &CxlRegionSpec, r: &CxlRegion) -> Option<String> {
    if let Some(size) = spec.size.filter(|s| *s != r.size) {
        return Some(format!("its size is {}, not {size}", r.size));
    }
    if let Some(g) = spec.granularity.filter(|g| *g != r.interleave_granularity) {
        return Some(format!(
            "its granularity is {} B, not {g} B",
            r.interleave_granularity
        ));
    }
    if let Some(d) = spec
        .root_decoder
        .as_deref()
        .filter(|d| *d != r.root_decoder)
    {
        return Some(format!("it is in {}, not {d}", r.root_decoder));
    }
    None
}

/// The regions holding any of `spec`'s memory devices.
fn holding<'a>(spec: &CxlRegionSpec, cxl: &'a Cxl) -> Vec<&'a CxlRegion> {
    cxl.regions
        .iter()
        .filter(|r| {
            r.members
                .iter()
                .any(|m| m.serial.is_some_and(|s| spec.memdevs.contains(&s)))
        })
        .collect()
}

/// The namespaces (with a size) on the NVDIMM region `r` shows as.
fn carried<'a>(a: &'a Actual, r: &CxlRegion) -> Vec<&'a Namespace> {
    let Some(nr) = r.nvdimm_region.as_deref() else {
        return Vec::new();
    };
    a.namespaces
        .iter()
        .filter(|n| n.region == nr && !n.size.is_zero())
        .collect()
}

fn member_serials(r: &CxlRegion) -> Vec<Option<u64>> {
    r.members.iter().map(|m| m.serial).collect()
}

/// `d` with each namespace on a CXL region bound to the NVDIMM region that region shows
/// as, when it is assembled (`None`: nothing to bind).
pub(crate) fn bind_namespaces(d: &Desired, a: &Actual) -> Option<Desired> {
    if d.namespaces.iter().all(|n| n.cxl_region.is_none()) {
        return None;
    }
    let mut bound = d.clone();
    for ns in &mut bound.namespaces {
        let Some(spec) = ns.cxl_region.as_deref().and_then(|c| d.cxl_region(c)) else {
            continue;
        };
        if let Some(nr) = assembled(spec, &a.cxl).and_then(|r| r.nvdimm_region.clone()) {
            ns.region = nr;
        }
    }
    Some(bound)
}

/// Where a live run plans again (see the module docs): after the last step that makes a
/// CXL region, when steps follow it (this layer plans before the namespaces, which are
/// planned over a region not yet made as if it were blank).
pub(crate) fn replan_after(steps: &[super::Step]) -> Option<usize> {
    let last = steps
        .iter()
        .rposition(|s| matches!(s.action, Action::CreateCxlRegion { .. }))?;
    (last + 1 < steps.len()).then_some(last + 1)
}

/// `state: present`: each declared region assembled, what is in its way taken apart.
pub(crate) fn plan(cx: &mut Ctx) {
    for (i, spec) in cx.d.cxl_regions.iter().enumerate() {
        let at = format!("cxl_regions[{i}] ({})", spec.name);
        if let Some(why) = missing_memdevs(spec, &cx.a.cxl) {
            cx.refusals.push(Refused::because(format!("{at}: {why}")));
            continue;
        }
        if let Some(why) = decoder_problem(spec, &cx.a.cxl) {
            cx.refusals.push(Refused::because(format!("{at}: {why}")));
            continue;
        }
        if assembled(spec, &cx.a.cxl).is_some() {
            continue;
        }
        let mut ok = true;
        let mut destroys = Vec::new();
        for r in holding(spec, &cx.a.cxl) {
            let doing = format!("destroying CXL region {} for {}", r.name, spec.name);
            if r.locked {
                cx.refusals.push(Refused::new(
                    doing,
                    format!(
                        "it was set up by firmware (its decoders are locked) over memory device(s) {}: not this module's to take apart; declare it as it is, or free the device(s) in the firmware",
                        super::action::serials(member_serials(r).into_iter())
                    ),
                ));
                ok = false;
                continue;
            }
            let why = if !r.committed {
                "it was left half-made (not committed: a stopped cxl create-region); it never decoded, so nothing is lost".to_string()
            } else if same_members(spec, r) {
                shape_problem(spec, r).unwrap_or_default()
            } else {
                format!(
                    "its members are {}, not {} in this order",
                    super::action::serials(member_serials(r).into_iter()),
                    spec.serials()
                )
            };
            let on_it: Vec<&Namespace> = if r.committed {
                carried(cx.a, r)
            } else {
                Vec::new()
            };
            let foreign: Vec<u64> = member_serials(r)
                .into_iter()
                .flatten()
                .filter(|s| !spec.memdevs.contains(s))
                .collect();
            let mut lost: Vec<String> = on_it
                .iter()
                .map(|n| {
                    let mut t = format!(
                        "namespace {} ({}, {} {})",
                        n.name.as_deref().unwrap_or("without a name"),
                        n.dev,
                        n.mode,
                        n.size
                    );
                    if let Some(bd) = n.blockdev.as_deref().and_then(|b| cx.a.block_named(b)) {
                        let above = cx.lost_with(bd);
                        if !above.is_empty() {
                            t.push_str(&format!(" with {}", above.join(", ")));
                        }
                    }
                    t
                })
                .collect();
            if !foreign.is_empty() && r.committed {
                lost.push(format!(
                    "the region's use of memory device(s) {}, which these arguments do not declare",
                    super::action::serials(foreign.iter().copied().map(Some))
                ));
            }
            if !lost.is_empty() && !cx.d.allow_data_loss {
                cx.refusals.push(
                    Refused::losing_data(
                        doing,
                        format!("{why}; it would lose {}", lost.join("; ")),
                    )
                    .allowed_to("take it apart and make it as declared"),
                );
                ok = false;
                continue;
            }
            destroys.push((r, why, on_it, !lost.is_empty()));
        }
        if !ok {
            continue;
        }
        for (r, why, on_it, destructive) in destroys {
            for n in on_it {
                if let Some(bd) = n.blockdev.as_deref().and_then(|b| cx.a.block_named(b)) {
                    if !cx.destroy(bd, &format!("destroying CXL region {}", r.name)) {
                        continue;
                    }
                }
                cx.step(
                    Action::DestroyNamespace {
                        dev: n.dev.clone(),
                        name: n.name.clone().unwrap_or_else(|| n.dev.clone()),
                    },
                    format!(
                        "ndctl destroy-namespace -f {} (on CXL region {}, taken apart)",
                        n.dev, r.name
                    ),
                    true,
                );
            }
            cx.step(
                Action::DestroyCxlRegion {
                    name: spec.name.clone(),
                    region: r.name.clone(),
                    memdevs: member_serials(r),
                },
                format!("cxl destroy-region -f {}: {why}", r.name),
                destructive,
            );
        }
        cx.step(
            Action::CreateCxlRegion {
                name: spec.name.clone(),
                memdevs: spec.memdevs.clone(),
                root_decoder: spec.root_decoder.clone(),
                granularity: spec.granularity,
                size: spec.size,
            },
            format!(
                "cxl create-region -t pmem over memory device(s) {} ({} way(s){}{}); its NVDIMM region then takes the namespaces declared on {}",
                spec.serials(),
                spec.memdevs.len(),
                spec.size.map(|s| format!(", {s}")).unwrap_or_default(),
                spec.root_decoder
                    .as_deref()
                    .map(|d| format!(", in {d}"))
                    .unwrap_or_default(),
                spec.name
            ),
            false,
        );
        // the NVDIMM regions of the CXL regions this plan takes apart are free again
        let freed: Vec<String> = cx
            .planned()
            .filter_map(|a| match a {
                Action::DestroyCxlRegion { region, .. } => {
                    cx.a.cxl
                        .regions
                        .iter()
                        .find(|r| r.name == *region)
                        .and_then(|r| r.nvdimm_region.clone())
                }
                _ => None,
            })
            .collect();
        let taken: Vec<String> =
            cx.a.regions
                .iter()
                .map(|r| r.name.clone())
                .filter(|n| !freed.contains(n))
                .chain(cx.cxl_new.values().cloned())
                .collect();
        let expected = (0..)
            .map(|k| format!("region{k}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_default();
        cx.cxl_new.insert(spec.name.clone(), expected);
    }
}

/// `state: absent`: a declared region found is destroyed once nothing is on it (its
/// namespaces destroyed by this plan); else it is left, with a warning.
pub(crate) fn plan_absent(cx: &mut Ctx) {
    let destroyed: Vec<String> = cx
        .planned()
        .filter_map(|a| match a {
            Action::DestroyNamespace { dev, .. } => Some(dev.clone()),
            _ => None,
        })
        .collect();
    for spec in cx.d.cxl_regions.iter().rev() {
        let Some(r) =
            cx.a.cxl
                .regions
                .iter()
                .find(|r| same_members(spec, r) && !r.locked)
        else {
            continue;
        };
        let left: Vec<&Namespace> = carried(cx.a, r)
            .into_iter()
            .filter(|n| !destroyed.contains(&n.dev))
            .collect();
        if !left.is_empty() {
            cx.warnings.push(format!(
                "CXL region {} ({}) left in place: namespace(s) {} are on it",
                spec.name,
                r.name,
                left.iter()
                    .map(|n| n.dev.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        cx.step(
            Action::DestroyCxlRegion {
                name: spec.name.clone(),
                region: r.name.clone(),
                memdevs: member_serials(r),
            },
            format!(
                "cxl destroy-region -f {} (memory device(s) {} are free again)",
                r.name,
                spec.serials()
            ),
            false,
        );
    }
}

/// Why `spec` cannot be made here: a memory device not found.
fn missing_memdevs(spec: &CxlRegionSpec, cxl: &Cxl) -> Option<String> {
    let missing: Vec<u64> = spec
        .memdevs
        .iter()
        .copied()
        .filter(|s| cxl.memdev_by_serial(*s).is_none())
        .collect();
    if missing.is_empty() {
        return None;
    }
    let found = if cxl.memdevs.is_empty() {
        "none: this machine shows no CXL memory device (if it has some, load the drivers: modprobe -a cxl_acpi cxl_pci cxl_mem cxl_pmem)".to_string()
    } else {
        cxl.memdevs
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    m.name,
                    m.serial
                        .map_or_else(|| "(no serial)".to_string(), |s| format!("{s:#x}"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "memory device(s) with serial {} not found (memory devices: {found})",
        super::action::serials(missing.into_iter().map(Some))
    ))
}

/// Why `spec`'s root decoder cannot hold it (the declared one, or none that can).
fn decoder_problem(spec: &CxlRegionSpec, cxl: &Cxl) -> Option<String> {
    let decoder = match spec.root_decoder.as_deref() {
        Some(name) => match cxl.root_decoders.iter().find(|d| d.name == name) {
            None => {
                return Some(format!(
                    "root decoder {name} not found (root decoders: {})",
                    names(cxl)
                ))
            }
            Some(d) if !d.pmem_capable => {
                return Some(format!("root decoder {name} cannot hold persistent memory"))
            }
            Some(d) => d,
        },
        None => match cxl
            .root_decoders
            .iter()
            .find(|d| d.pmem_capable && !d.locked)
        {
            Some(d) => d,
            None => {
                return Some(format!(
                    "no root decoder can hold a persistent-memory region (root decoders: {})",
                    names(cxl)
                ))
            }
        },
    };
    match spec.granularity {
        Some(g) if spec.memdevs.len() > 1 && g != decoder.interleave_granularity => Some(format!(
            "granularity {g} B: over {} memory devices it must be the root decoder's, {} B ({})",
            spec.memdevs.len(),
            decoder.interleave_granularity,
            decoder.name
        )),
        _ => None,
    }
}

fn names(cxl: &Cxl) -> String {
    if cxl.root_decoders.is_empty() {
        return "none".into();
    }
    cxl.root_decoders
        .iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Apply time: a CXL step as its op, against the state probed just before it.
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let a = bound.actual();
    let refused = |why: String| Refused::new(action.doing(), why);
    match action {
        Action::CreateCxlRegion {
            name,
            memdevs,
            root_decoder,
            granularity,
            size,
        } => {
            let spec = CxlRegionSpec {
                name: name.clone(),
                memdevs: memdevs.clone(),
                root_decoder: root_decoder.clone(),
                granularity: *granularity,
                size: *size,
            };
            if assembled(&spec, &a.cxl).is_some() {
                return Ok(Resolved::Skip(format!("CXL region {name} is assembled")));
            }
            if let Some(why) = missing_memdevs(&spec, &a.cxl) {
                return Err(refused(why));
            }
            if let Some(r) = holding(&spec, &a.cxl).first() {
                return Err(refused(format!(
                    "{} holds one of its memory devices by now",
                    r.name
                )));
            }
            let names: Vec<String> = memdevs
                .iter()
                .filter_map(|s| a.cxl.memdev_by_serial(*s).map(|m| m.name.clone()))
                .collect();
            let decoder = match root_decoder {
                Some(d) => d.clone(),
                None => {
                    let need = size.unwrap_or_default();
                    a.cxl
                        .root_decoders
                        .iter()
                        .find(|d| d.pmem_capable && !d.locked && d.free >= need && !d.free.is_zero())
                        .map(|d| d.name.clone())
                        .ok_or_else(|| {
                            refused(format!(
                                "no root decoder that can hold persistent memory has room (root decoders: {})",
                                self::names(&a.cxl)
                            ))
                        })?
                }
            };
            Ok(Resolved::Run(Op::CreateCxlRegion {
                decoder,
                memdevs: names,
                granularity: *granularity,
                size: *size,
            }))
        }
        Action::DestroyCxlRegion {
            region, memdevs, ..
        } => match a.cxl.regions.iter().find(|r| r.name == *region) {
            None => Ok(Resolved::Skip(format!("{region} is gone"))),
            Some(r) if member_serials(r) != *memdevs => Err(refused(format!(
                "{region} is over memory device(s) {} by now",
                super::action::serials(member_serials(r).into_iter())
            ))),
            Some(r) if r.locked => Err(refused(format!("{region} is locked by now"))),
            Some(_) => Ok(Resolved::Run(Op::DestroyCxlRegion {
                region: region.clone(),
            })),
        },
        _ => Err(Refused::not_mine(action, super::Layer::Cxl)),
    }
}
