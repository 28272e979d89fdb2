//! Namespace layer. A declared namespace is found by its name: its label's (alt_name),
//! or the one this module keeps for a namespace no label can carry (`NameRecord`: the one
//! namespace of a region without a label area, by the region's address range; or one the
//! user adopted by `uuid`). The module never touches a namespace it was not told about,
//! except a label-less raw namespace of the declared region (fresh DIMMs), which it
//! converts and names. Regions without a label area (`memmap=`, DIMMs without labels)
//! are planned by `label_less_region`, adoption by `adopt_found`/`adopt_missing`.
//!
//! | exists (by name) | matches (region, mode, size, align, map) | content at risk | allowed | step |
//! |---|---|---|---|---|
//! | no, label-less raw ns in region | - | no | - | reconfigure it in place (`-f -e`), set name |
//! | no, label-less raw ns in region | - | yes (fs, GPT, holders, mounts) | yes / no | reconfigure + teardown / refuse |
//! | no | - | - | - | create in region (refused if the region lacks space) |
//! | yes | yes | - | - | nothing |
//! | yes, other region | - | - | - | kept where it is, with a warning: regions are numbered by the platform in enumeration order and change when DIMMs move, so `region` only says where to create it |
//! | yes | no | no, and not devdax | - | reconfigure |
//! | yes | no | yes, or devdax (contents unknowable) | yes / no | reconfigure + teardown / refuse |
//!
//! A foreign dm device holding the namespace refuses any reconfiguration, whatever
//! `allow_data_loss` says.
//!
//! Killed runs. A namespace this module makes counts as the declared one only once its
//! ends are cleared: the real system records the uuid it gives the namespace in a
//! durable marker before ndctl runs and removes the marker after clearing
//! (`Actual::uncleared`). So, for a namespace found by name:
//!
//! | ours and uncleared | matches | in use | step |
//! |---|---|---|---|
//! | yes | yes | no | clear its ends (`clear_namespace`); what it shows is not data |
//! | yes | yes | yes | refuse: something uses a namespace whose content is stale |
//! | yes | no (e.g. disabled: ndctl stopped before enabling it) | no | reconfigure, not destructive |
//! | no | no, disabled | - | reconfigure only with `allow_data_loss` (content unknowable) |
//!
//! A nameless namespace carrying one of our uncleared uuids for a declared name is what
//! ndctl stopped between its label writes left: it is reconfigured with the name.

use super::{Action, Ctx, Layer, Refused, Resolved};
use crate::actual::{Actual, Missing, NameRecord, Named, Namespace};
use crate::args::validate::{Desired, DevRef, NamespaceSpec};
use crate::args::NamespaceMode;
use crate::bind::Bound;
use crate::op::{NamespaceConfig, Op};
use crate::units::Bytes;
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn plan(cx: &mut Ctx) {
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let mut reserved: BTreeMap<String, Bytes> = BTreeMap::new();
    for spec in &cx.d.namespaces {
        let spec = spec.clone();
        if let Some(c) = spec.cxl_region.as_deref() {
            if let Some(expected) = cx.cxl_new.get(c).cloned() {
                on_new_cxl_region(cx, &spec, c, &expected);
                continue;
            }
            if spec.region == c {
                // not assembled, and not planned: the CXL layer refused it
                continue;
            }
        }
        match cx.a.namespace_named(&spec.name) {
            Some(ns) => {
                claimed.insert(ns.dev.clone());
                if let Some(r) = cx.a.record_of(ns).filter(|r| r.planned) {
                    let of = r.of.clone();
                    adopt_found(cx, &spec, ns, of);
                    continue;
                }
                if let Some(u) = spec.uuid.as_deref().filter(|u| !ns.has_uuid(u)) {
                    cx.refusals.push(Refused::because(format!(
                        "namespace {}: the namespace named so is {} ({}), not the one with uuid {u}; drop uuid to keep {}, or name the one to adopt otherwise",
                        spec.name,
                        ns.dev,
                        uuids_of(ns),
                        ns.dev
                    )));
                    continue;
                }
                if let Some(why) = cannot_carve(cx, &spec, ns) {
                    cx.refusals.push(Refused::because(why));
                    continue;
                }
                if ns.region != spec.region {
                    cx.warnings.push(format!(
                        "namespace {} is in {}, declared in {}: kept where it is (regions are numbered in platform enumeration order, which changes when DIMMs move; the name is its identity)",
                        spec.name, ns.region, spec.region
                    ));
                }
                // made by an earlier run that was stopped before it cleared the ends:
                // what the namespace shows is an older namespace's content, not data
                let ours = cx.a.is_uncleared(ns);
                let mut diffs = differences(&spec, ns);
                if ns.is_disabled() {
                    diffs.push("disabled (no device; an interrupted ndctl leaves this)".into());
                }
                let bd = ns.blockdev.as_deref().and_then(|b| cx.a.block_named(b));
                if diffs.is_empty() {
                    if ours {
                        if let Some(bd) = bd {
                            if stale_only(cx, bd) {
                                cx.step(
                                    Action::ClearNamespace {
                                        name: spec.name.clone(),
                                        dev: ns.dev.clone(),
                                    },
                                    format!(
                                        "clear the ends of {} ({}): a run stopped after ndctl made it and before it was cleared, so what it shows is an earlier namespace's content",
                                        spec.name, bd.path
                                    ),
                                    false,
                                );
                                cx.o.mark_fresh(DevRef::Namespace(spec.name.clone()));
                            } else {
                                cx.refusals.push(Refused::because(format!(
                                    "namespace {} ({}) was made by a run stopped before it cleared it, yet it is in use ({}); it is not cleared while in use: stop what uses it, then run again",
                                    spec.name,
                                    bd.path,
                                    cx.lost_with(bd).join(", ")
                                )));
                            }
                        }
                    }
                    continue;
                }
                let why = format!(
                    "reconfiguring namespace {} ({}: {})",
                    spec.name,
                    ns.dev,
                    diffs.join(", ")
                );
                let devdax = ns.mode == NamespaceMode::Devdax && !ns.is_disabled();
                let lost = match bd {
                    Some(b) if !(ours && stale_only(cx, b)) => cx.lost_with(b),
                    _ => Vec::new(),
                };
                let allowed = match bd {
                    Some(b) if ours && stale_only(cx, b) => true,
                    Some(b) => cx.destroy(b, &why),
                    None => true,
                };
                if !allowed {
                    continue;
                }
                if devdax && !cx.d.allow_data_loss {
                    cx.refusals.push(Refused::losing_data(
                        &why,
                        format!(
                            "it would destroy the contents of devdax namespace {} ({}), which cannot be inspected",
                            spec.name,
                            ns.chardev.as_deref().unwrap_or(&ns.dev)
                        ),
                    ));
                    continue;
                }
                let disabled = ns.is_disabled() && !ours;
                if disabled && !cx.d.allow_data_loss {
                    cx.refusals.push(
                        Refused::new(
                            &why,
                            format!(
                                "namespace {} ({}) is disabled, so its contents cannot be inspected",
                                spec.name, ns.dev
                            ),
                        )
                        .advised(format!(
                            "Enable it (ndctl enable-namespace {}) or set {} to allow it",
                            ns.dev,
                            super::ALLOW_DATA_LOSS
                        )),
                    );
                    continue;
                }
                let destructive = devdax || disabled || !lost.is_empty();
                let here = NamespaceSpec {
                    region: ns.region.clone(),
                    ..spec.clone()
                };
                cx.step(
                    reconfigure_action(&here, &ns.dev),
                    format!(
                        "{} ({})",
                        ndctl_words(&here, Some(&ns.dev)),
                        diffs.join(", ")
                    ),
                    destructive,
                );
                cx.o.mark_fresh(DevRef::Namespace(spec.name.clone()));
            }
            None if spec.uuid.is_some() => adopt_missing(cx, &spec),
            None => {
                // a namespace an interrupted run of ours made for this name but that
                // never got the name (ndctl stopped between its label writes): reuse it
                let leftover = cx.a.namespaces.iter().find(|n| {
                    !claimed.contains(&n.dev)
                        && n.name.is_none()
                        && n.uuid.as_deref().is_some_and(|u| {
                            cx.a.uncleared
                                .iter()
                                .any(|m| m.uuid == u && m.name == spec.name)
                        })
                });
                if let Some(ns) = leftover {
                    claimed.insert(ns.dev.clone());
                    let here = NamespaceSpec {
                        region: ns.region.clone(),
                        ..spec.clone()
                    };
                    cx.step(
                        reconfigure_action(&here, &ns.dev),
                        format!(
                            "{} (left without its name by an interrupted run of this module)",
                            ndctl_words(&here, Some(&ns.dev))
                        ),
                        false,
                    );
                    cx.o.mark_fresh(DevRef::Namespace(spec.name.clone()));
                    continue;
                }
                let label_less = cx.a.namespaces.iter().find(|n| {
                    n.region == spec.region
                        && n.is_label_less()
                        && n.size.0 > 0
                        && !claimed.contains(&n.dev)
                        && !n.name_recorded
                });
                let without_labels = cx.a.region(&spec.region).filter(|r| !r.labels);
                if let (Some(ns), Some(region)) = (label_less, without_labels) {
                    claimed.insert(ns.dev.clone());
                    let ns = ns.clone();
                    let region = region.clone();
                    label_less_region(cx, &spec, &ns, &region);
                    continue;
                }
                if let Some(ns) = label_less {
                    claimed.insert(ns.dev.clone());
                    let why = format!(
                        "converting label-less namespace {} to {} namespace {}",
                        ns.dev, spec.mode, spec.name
                    );
                    let bd = ns.blockdev.as_deref().and_then(|b| cx.a.block_named(b));
                    let lost = bd.map(|b| cx.lost_with(b)).unwrap_or_default();
                    if let Some(bd) = bd {
                        if !cx.destroy(bd, &why) {
                            continue;
                        }
                    }
                    // ndctl cannot sub-divide a label-less namespace ("Legacy / label-less
                    // namespaces do not support sub-dividing a region"): it converts whole.
                    if spec.size.is_some_and(|s| s != ns.size) {
                        cx.refusals.push(Refused::because(format!(
                            "namespace {}: {} holds only the label-less namespace {} of fresh DIMMs, which can only be converted whole ({}); drop size, or initialise labels first (ndctl disable-region {r}; ndctl init-labels -f <its nmems>; ndctl enable-region {r})",
                            spec.name, spec.region, ns.dev, ns.size, r = spec.region
                        )));
                        continue;
                    }
                    reserved.insert(spec.region.clone(), ns.size);
                    let whole = NamespaceSpec {
                        size: None,
                        ..spec.clone()
                    };
                    cx.step(
                        reconfigure_action(&whole, &ns.dev),
                        format!(
                            "{} (label-less raw namespace of fresh DIMMs; named {} from now on)",
                            ndctl_words(&whole, Some(&ns.dev)),
                            spec.name
                        ),
                        !lost.is_empty(),
                    );
                } else {
                    create(cx, &spec, &mut reserved);
                }
                cx.o.mark_fresh(DevRef::Namespace(spec.name.clone()));
            }
        }
    }
}

/// A namespace on a CXL region this plan makes, in the NVDIMM region it is `expected`
/// to show as: planned as if that region were blank (what its labels hold is known only
/// once it is made; a live run plans again then, see `plan::cxl`).
fn on_new_cxl_region(cx: &mut Ctx, spec: &NamespaceSpec, cxl: &str, expected: &str) {
    let spec = NamespaceSpec {
        region: expected.to_string(),
        ..spec.clone()
    };
    create_step(cx, &spec);
    cx.warnings.push(format!(
        "CXL region {cxl} is not assembled yet: what is planned on it takes it for blank and its NVDIMM region for {expected}, the number the kernel gives next; a run plans again once it is made (namespaces its labels hold are kept)"
    ));
    cx.o.mark_fresh(DevRef::Namespace(spec.name.clone()));
}

/// The step that makes `spec` in its region; its words are ndctl's, with the CXL region
/// it is on.
fn create_step(cx: &mut Ctx, spec: &NamespaceSpec) {
    let words = match &spec.cxl_region {
        Some(c) => format!("{} (on CXL region {c})", ndctl_words(spec, None)),
        None => ndctl_words(spec, None),
    };
    cx.step(
        Action::CreateNamespace {
            name: spec.name.clone(),
            region: spec.region.clone(),
            mode: spec.mode,
            size: spec.size,
            align: spec.align,
            map: spec.map,
        },
        words,
        false,
    );
}

fn create(cx: &mut Ctx, spec: &NamespaceSpec, reserved: &mut BTreeMap<String, Bytes>) {
    let Some(region) = cx.a.region(&spec.region) else {
        let known: Vec<&str> = cx.a.regions.iter().map(|r| r.name.as_str()).collect();
        // say why there is none: drivers not loaded, or no persistent memory
        let why = if cx.a.missing.contains(&Missing::Nvdimm) {
            format!(": {}", Missing::Nvdimm.explain())
        } else if known.is_empty() {
            ": this machine shows no NVDIMM region (if it has persistent memory, load the drivers: modprobe nfit nd_pmem)".to_string()
        } else {
            String::new()
        };
        cx.refusals.push(Refused::because(format!(
            "namespace {}: {} does not exist on this machine (regions: {}){why}",
            spec.name,
            spec.region,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
        return;
    };
    if !region.labels {
        let holder =
            cx.a.namespaces
                .iter()
                .find(|n| n.region == spec.region && !n.size.is_zero())
                .map(|n| match &n.name {
                    Some(name) => format!(": its namespace {} is {name}", n.dev),
                    None => format!(": its namespace is {}", n.dev),
                })
                .unwrap_or_default();
        cx.refusals.push(Refused::because(format!(
            "namespace {}: {} is label-less ({}), so it holds exactly one namespace, spanning the whole region{holder}; namespace {} cannot be made there. Declare one namespace per label-less region (with a label area, DIMMs can be carved: ndctl init-labels)",
            spec.name,
            spec.region,
            label_less_kind(region),
            spec.name
        )));
        return;
    }
    let used = reserved.get(&spec.region).copied().unwrap_or_default();
    let available = region.available_size.saturating_sub(used);
    let need = spec.size.unwrap_or(available);
    if need.is_zero() || need > available {
        cx.refusals.push(Refused::because(format!(
            // it is created because no namespace of that name exists: say so, since
            // a namespace that held data and is gone (its DIMM removed or failed) ends
            // here too
            "namespace {}: missing (no namespace of that name in any region; if it existed, its DIMM may be gone) and cannot be created: {} has {} available, {} needed{}",
            spec.name,
            spec.region,
            available,
            if need.is_zero() {
                "some space".to_string()
            } else {
                need.to_string()
            },
            unnamed_hint(cx, &spec.region)
        )));
        return;
    }
    // the kernel refuses a size that is not a multiple of the region's alignment times
    // its interleave ways ("align setting is 0x1000000 size 0x7800000 is misaligned")
    if let (Some(size), Some(align)) = (spec.size, region.align) {
        let unit = align.saturating_mul(u64::from(region.interleave_ways.unwrap_or(1).max(1)));
        if !unit.is_zero() && !size.is_multiple_of(unit) {
            cx.refusals.push(Refused::because(format!(
                "namespace {}: size {size} is not a multiple of {}, the alignment of {} (its align x interleave ways); use {} or {}",
                spec.name,
                unit,
                spec.region,
                size.align_down(unit),
                unit.saturating_mul(size.0 / unit.0 + 1),
            )));
            return;
        }
    }
    reserved.insert(spec.region.clone(), used + need);
    create_step(cx, spec);
}

/// Namespaces of `region` without a name (made by hand or by another tool), for a
/// refusal: the `uuid` that would adopt each.
fn unnamed_hint(cx: &Ctx, region: &str) -> String {
    let hints: Vec<String> =
        cx.a.namespaces
            .iter()
            .filter(|n| n.region == region && n.name.is_none() && !n.size.is_zero())
            .filter_map(|n| {
                let u = n.uuid.as_deref().or(n.info_uuid.as_deref())?;
                Some(
                    format!("{} ({}, {})", n.dev, n.mode, n.size)
                        .replace(')', &format!("; uuid: {u})")),
                )
            })
            .collect();
    if hints.is_empty() {
        String::new()
    } else {
        format!(
            ". {region} holds namespaces without a name, left alone: {}; to adopt one as it is, with its data, declare its uuid",
            hints.join(", ")
        )
    }
}

/// The uuids a namespace shows, for people.
fn uuids_of(ns: &crate::actual::Namespace) -> String {
    match (&ns.uuid, &ns.info_uuid) {
        (Some(l), Some(i)) => format!("uuid {l}, info block {i}"),
        (Some(l), None) => format!("uuid {l}"),
        (None, Some(i)) => format!("info block uuid {i}"),
        (None, None) => "no uuid".into(),
    }
}

/// How an adopted namespace's name is kept: by its region's address range when it is
/// label-less (converting it again would give its info block a new uuid), else by its
/// uuid.
pub(crate) fn adoption_record(a: &Actual, name: &str, ns: &Namespace, uuid: &str) -> NameRecord {
    let by_region = a
        .region(&ns.region)
        .filter(|r| !r.labels && ns.is_label_less())
        .and_then(|r| r.identity());
    NameRecord {
        name: name.to_string(),
        planned: true,
        of: match by_region {
            Some(id) => Named::Region(id),
            None => Named::Uuid(uuid.to_string()),
        },
    }
}

/// The probed state as the planner sees it when namespaces are adopted by uuid: each
/// declared `uuid` that one unnamed namespace carries names it (a planned record), so
/// the layers above find it, with its content, as the declared namespace. `None` when
/// nothing is adopted.
pub(crate) fn adoption_view(d: &Desired, a: &Actual) -> Option<Actual> {
    let mut records = Vec::new();
    for spec in &d.namespaces {
        let Some(u) = spec.uuid.as_deref() else {
            continue;
        };
        if a.namespace_named(&spec.name).is_some() {
            continue;
        }
        let found: Vec<&Namespace> = a
            .namespaces
            .iter()
            .filter(|n| n.has_uuid(u) && !n.size.is_zero())
            .collect();
        if let [ns] = found[..] {
            if ns.name.is_none() {
                records.push(adoption_record(a, &spec.name, ns, u));
            }
        }
    }
    if records.is_empty() {
        return None;
    }
    let mut v = a.clone();
    v.name_records.extend(records);
    v.apply_name_records();
    Some(v)
}

/// A declared `uuid` that adopts nothing: why.
///
/// | found with that uuid | named | step |
/// |---|---|---|
/// | no | - | refuse: nothing to adopt (drop uuid to make one) |
/// | yes | by another name | refuse: it is that other namespace |
fn adopt_missing(cx: &mut Ctx, spec: &NamespaceSpec) {
    let Some(u) = spec.uuid.as_deref() else {
        return;
    };
    match cx.a.namespaces.iter().find(|n| n.has_uuid(u) && !n.size.is_zero()) {
        None => cx.refusals.push(Refused::because(format!(
            "namespace {}: no namespace has uuid {u} (ndctl list -N shows each one's); drop uuid to make a new one",
            spec.name
        ))),
        Some(ns) => cx.refusals.push(Refused::because(format!(
            "namespace {}: the namespace with uuid {u} is {}, named {}; declare it by that name, or drop uuid",
            spec.name,
            ns.dev,
            ns.name.as_deref().unwrap_or("otherwise")
        ))),
    }
}

/// Adopt the namespace the user named by its uuid (`spec.uuid`): one made by hand or by
/// another tool, kept as it is with its data, its name kept in this module's record.
///
/// | as declared | step |
/// |---|---|
/// | yes | record the name |
/// | no | refuse: adopting keeps it as it is (declare it as it is) |
fn adopt_found(cx: &mut Ctx, spec: &NamespaceSpec, ns: &Namespace, of: Named) {
    let u = spec.uuid.as_deref().unwrap_or_default();
    let diffs = differences(spec, ns);
    if !diffs.is_empty() {
        cx.refusals.push(Refused::because(format!(
            "namespace {}: {} (uuid {u}) is adopted as it is, with its data, and it is not as declared ({}); declare it as it is, or destroy it first (ndctl destroy-namespace -f {}) and drop uuid to make it anew",
            spec.name,
            ns.dev,
            diffs.join(", "),
            ns.dev
        )));
        return;
    }
    if ns.region != spec.region {
        cx.warnings.push(format!(
            "namespace {} (uuid {u}) is in {}, declared in {}: kept where it is",
            spec.name, ns.region, spec.region
        ));
    }
    let how = match &of {
        Named::Region(id) => format!("the namespace of the label-less region at {id}"),
        Named::Uuid(u) => format!("the namespace with uuid {u}"),
    };
    cx.step(
        Action::RecordName {
            name: spec.name.clone(),
            dev: ns.dev.clone(),
            of,
        },
        format!(
            "adopt {} ({how}) as {}, as it is, with its data: the name is kept in this module's record",
            ns.dev, spec.name
        ),
        false,
    );
}

/// What kind of label-less region `r` is, for people.
fn label_less_kind(r: &crate::actual::Region) -> &'static str {
    if r.interleave_ways == Some(0) {
        "a legacy range such as the kernel's memmap= option makes, with no label area"
    } else {
        "its DIMMs have no label area"
    }
}

/// Why the declared `spec` cannot be what label-less namespace `ns` is: a label-less
/// namespace spans its region and cannot be carved (ndctl: "Legacy / label-less
/// namespaces do not support sub-dividing a region").
fn cannot_carve(cx: &Ctx, spec: &NamespaceSpec, ns: &crate::actual::Namespace) -> Option<String> {
    let region = cx.a.region(&ns.region).filter(|r| !r.labels)?;
    if !ns.is_label_less() {
        return None;
    }
    let size = spec.size.filter(|s| *s != ns.size)?;
    Some(format!(
        "namespace {}: {} is label-less ({}), so its one namespace {} spans the whole region ({}) and cannot be made {size}; drop size (or give {}), and carve the space above it instead (partitions or a dm linear device)",
        spec.name,
        ns.region,
        label_less_kind(region),
        ns.dev,
        ns.size,
        ns.size
    ))
}

/// A declared namespace in a region without a label area (a `memmap=` range, DIMMs
/// without labels), whose one namespace `ns` no record names yet. No label can carry the
/// name, so the module keeps it (`RecordName`, by the region's address range) before it
/// converts the namespace: a second run, and a boot with the regions numbered the other
/// way, find the same one by its address.
///
/// | ns | content | allowed | steps |
/// |---|---|---|---|
/// | fresh (raw, or page-mapped in RAM), as declared | - | - | record the name |
/// | fresh, not as declared | none | - | record the name, reconfigure in place |
/// | fresh, not as declared | some (fs, GPT, holders, mounts) | yes / no | record, teardown, reconfigure / refuse |
/// | carries an info block (fsdax, devdax, sector made by hand or another tool) | - | - | refuse: adopted only by its uuid (`uuid:`), never reformatted |
fn label_less_region(
    cx: &mut Ctx,
    spec: &NamespaceSpec,
    ns: &crate::actual::Namespace,
    region: &crate::actual::Region,
) {
    if let Some(why) = cannot_carve(cx, spec, ns) {
        cx.refusals.push(Refused::because(why));
        return;
    }
    let Some(id) = region.identity() else {
        cx.refusals.push(Refused::because(format!(
            "namespace {}: {} is label-less and the kernel shows no address for it (no resource attribute), so the name cannot be kept for it across runs and boots",
            spec.name, region.name
        )));
        return;
    };
    if !ns.is_fresh() {
        cx.refusals.push(Refused::because(format!(
            "namespace {}: {} of label-less {} is already {} (an info block with uuid {}, made by hand or by another tool) and has no name here; it is never reformatted on a guess. To adopt it as {} with its data, add uuid: {} to that namespace; to make it anew, destroy it first (ndctl destroy-namespace -f {})",
            spec.name,
            ns.dev,
            region.name,
            ns.mode,
            ns.info_uuid.as_deref().unwrap_or("?"),
            spec.name,
            ns.info_uuid.as_deref().unwrap_or("?"),
            ns.dev
        )));
        return;
    }
    let diffs = differences(spec, ns);
    let bd = ns
        .blockdev
        .as_deref()
        .and_then(|b| cx.a.block_named(b))
        .cloned();
    let why = format!(
        "converting label-less namespace {} of {} to {} namespace {}",
        ns.dev, region.name, spec.mode, spec.name
    );
    let lost = match (&bd, diffs.is_empty()) {
        (Some(b), false) => cx.lost_with(b),
        _ => Vec::new(),
    };
    if let (Some(b), false) = (&bd, diffs.is_empty()) {
        if !cx.destroy(b, &why) {
            return;
        }
    }
    cx.step(
        Action::RecordName {
            name: spec.name.clone(),
            dev: ns.dev.clone(),
            of: crate::actual::Named::Region(id),
        },
        format!(
            "keep the name {} for the namespace of the label-less region at {id} ({}, {} now) in this module's record: no label can carry it",
            spec.name, region.name, ns.dev
        ),
        false,
    );
    if diffs.is_empty() {
        return;
    }
    let whole = NamespaceSpec {
        size: None,
        region: ns.region.clone(),
        ..spec.clone()
    };
    cx.step(
        reconfigure_action(&whole, &ns.dev),
        format!(
            "{} (label-less: {})",
            ndctl_words(&whole, Some(&ns.dev)),
            diffs.join(", ")
        ),
        !lost.is_empty(),
    );
    cx.o.mark_fresh(DevRef::Namespace(spec.name.clone()));
}

/// Whether nothing but content left from before is on `bd`: no mount, holder or
/// partition in use (a run stopped before clearing made nothing on it).
fn stale_only(cx: &Ctx, bd: &crate::actual::BlockDevice) -> bool {
    bd.holders.is_empty()
        && cx.a.mounts_of(bd.devno).next().is_none()
        && cx.a.partitions_of(&bd.name).next().is_none()
}

fn reconfigure_action(spec: &NamespaceSpec, dev: &str) -> Action {
    Action::ReconfigureNamespace {
        dev: dev.to_string(),
        name: spec.name.clone(),
        mode: spec.mode,
        size: spec.size,
        align: spec.align,
        map: spec.map,
    }
}

fn dax_like(mode: NamespaceMode) -> bool {
    matches!(mode, NamespaceMode::Fsdax | NamespaceMode::Devdax)
}

/// What differs between the wanted and the found namespace, for people.
fn differences(spec: &NamespaceSpec, ns: &crate::actual::Namespace) -> Vec<String> {
    let mut d = Vec::new();
    if ns.mode != spec.mode {
        d.push(format!("mode {} -> {}", ns.mode, spec.mode));
    }
    if let Some(size) = spec.size {
        if ns.size != size {
            d.push(format!("size {} -> {}", ns.size, size));
        }
    }
    if dax_like(spec.mode) && ns.mode == spec.mode {
        if let Some(align) = ns.align {
            if align != spec.align {
                d.push(format!("align {} -> {}", align, spec.align));
            }
        }
        if let Some(map) = ns.map {
            if map != spec.map {
                d.push(format!("map {} -> {}", map.as_str(), spec.map.as_str()));
            }
        }
    }
    d
}

/// The ndctl command the step will run, for the plan's detail: in place over `dev`, or
/// new in the spec's region (spelled from the op the step becomes, see [`resolve`]).
fn ndctl_words(spec: &NamespaceSpec, dev: Option<&str>) -> String {
    let config = NamespaceConfig {
        name: spec.name.clone(),
        mode: spec.mode,
        size: spec.size,
        align: spec.align,
        map: spec.map,
    };
    let op = match dev {
        Some(dev) => Op::ReconfigureNamespace {
            dev: dev.to_string(),
            config,
        },
        None => Op::CreateNamespace {
            region: spec.region.clone(),
            config,
        },
    };
    crate::op::argv::command_line(&op)
        .unwrap_or_default()
        .join(" ")
}

/// Apply time: a namespace step as its op. No guard of its own: what it acts on was
/// decided by the plan against the kernel's namespaces, which ndctl checks again.
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let config = |name: &str, mode, size, align, map| NamespaceConfig {
        name: name.to_string(),
        mode,
        size,
        align,
        map,
    };
    Ok(Resolved::Run(match action {
        Action::CreateNamespace {
            name,
            region,
            mode,
            size,
            align,
            map,
        } => Op::CreateNamespace {
            region: region.clone(),
            config: config(name, *mode, *size, *align, *map),
        },
        Action::ReconfigureNamespace {
            dev,
            name,
            mode,
            size,
            align,
            map,
        } => Op::ReconfigureNamespace {
            dev: dev.clone(),
            config: config(name, *mode, *size, *align, *map),
        },
        Action::DestroyNamespace { dev, .. } => Op::DestroyNamespace { dev: dev.clone() },
        Action::RecordName { name, of, .. } => Op::RecordName {
            record: NameRecord {
                name: name.clone(),
                planned: false,
                of: of.clone(),
            },
        },
        Action::ForgetName { name } => Op::ForgetName { name: name.clone() },
        Action::ClearNamespace { name, .. } => Op::ClearNamespace {
            name: name.clone(),
            device: bound
                .dev_id(&DevRef::Namespace(name.clone()))
                .map_err(|why| Refused::new(action.doing(), why))?,
        },
        _ => return Err(Refused::not_mine(action, Layer::Namespace)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::MapMode;

    fn spec(mode: NamespaceMode, size: Option<Bytes>) -> NamespaceSpec {
        NamespaceSpec {
            name: "pm0".into(),
            region: "region0".into(),
            cxl_region: None,
            mode,
            size,
            align: Bytes(2 << 20),
            map: MapMode::Dev,
            uuid: None,
            system_ram: None,
        }
    }

    #[test]
    fn the_detail_names_the_ndctl_command() {
        assert_eq!(
            ndctl_words(&spec(NamespaceMode::Fsdax, Some(Bytes(1 << 30))), None),
            "ndctl create-namespace -r region0 -m fsdax -n pm0 -s 1073741824 -a 2M -M dev"
        );
        assert_eq!(
            ndctl_words(&spec(NamespaceMode::Devdax, None), Some("namespace0.0")),
            "ndctl create-namespace -f -e namespace0.0 -m devdax -n pm0 -a 2M -M dev"
        );
        assert_eq!(
            ndctl_words(&spec(NamespaceMode::Sector, None), None),
            "ndctl create-namespace -r region0 -m sector -n pm0"
        );
    }
}
