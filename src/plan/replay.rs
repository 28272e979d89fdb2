//! The boot replay's policy, in one place: what the replay of a saved state
//! (`pmem_stack --boot`, one run per saved state) runs with, and what it refuses.
//!
//! The replay reassembles what exists (namespaces on their labels, partition tables and
//! filesystems on the media) and rebuilds the dm tables, which have no on-disk metadata.
//! LVM brings its LVs back by itself (its metadata is on the PVs); the replay activates
//! one LVM has not activated yet and raises a striped LV's largest I/O, which the kernel
//! sets anew at every activation.
//! It never destroys data, and it never makes what should already be there:
//! - it runs with the saved arguments rewritten ([`replay_args`], [`replay_args_with`]):
//!   `allow_data_loss` off whatever they say, `state: present`, the boot files left
//!   alone, and under systemd the mounts that have their unit left to it;
//! - a plan with a step that would make or change what should be on the media
//!   (`not_at_boot`) fails the replay before anything is done (`refused_plan`);
//! - a filesystem it would make when its step comes to run (a rebuilt device found
//!   blank where its filesystem should be) fails it there (`refused_when_run`).
//!
//! It lives with the planner because it speaks of plan [`Action`]s: `crate::boot` (the
//! boot files' names, ownership and rendering) sits below the planner and does not
//! import it. `crate::apply` asks it at those two moments; the library's replay
//! (`crate::replay_observed`) rewrites each saved state's arguments with it.

use super::{Action, Refused, Step};

/// The arguments a boot replay runs with: the saved options, data loss disallowed
/// whatever they say, and boot files left alone (they are what is running).
pub fn replay_args(saved: &str) -> Result<String, String> {
    replay_args_with(saved, &|_| false)
}

/// [`replay_args`], without the mounts for which `by_unit(path)` is true: at a boot
/// under systemd, a mount that has its mount unit is mounted by that unit, after the
/// replay service (`Requires=`/`After=` it), so that systemd knows the mount from its
/// start and orders whatever needs it (`RequiresMountsFor=`) after it. Were the replay to
/// mount it, the mount would appear while the service still runs and its consumers could
/// start before the replay ends. Without systemd (an init script runs `--boot`) there is
/// no unit to do it and the replay mounts everything.
pub fn replay_args_with(saved: &str, by_unit: &dyn Fn(&str) -> bool) -> Result<String, String> {
    let mut v: serde_json::Value = serde_json::from_str(saved)
        .map_err(|e| format!("the saved state is not valid JSON: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or("the saved state is not a JSON object")?;
    if let Some(serde_json::Value::Array(mounts)) = obj.get_mut("mounts") {
        mounts.retain(|m| !m.get("path").and_then(|p| p.as_str()).is_some_and(by_unit));
    }
    obj.insert("allow_data_loss".into(), serde_json::Value::Bool(false));
    obj.insert("boot".into(), serde_json::json!({"persist": false}));
    obj.insert("state".into(), serde_json::Value::String("present".into()));
    obj.retain(|k, _| !k.starts_with("_ansible_"));
    Ok(v.to_string())
}

/// What a boot replay may not do: a step that would make or change what should already
/// be on the media means that something is missing or was replaced (a DIMM removed or
/// failed): doing it at boot would build a new, empty stack over the survivors (a new
/// namespace for the missing member, then a filesystem over both). `Some(why)` for such
/// a step.
pub(crate) fn not_at_boot(action: &Action) -> Option<&'static str> {
    use Action as A;
    match action {
        A::CreateNamespace { .. } => Some("it is missing (its DIMM removed or failed?)"),
        A::ReconfigureNamespace { .. }
        | A::ClearNamespace { .. }
        | A::DestroyNamespace { .. }
        | A::RecordName { .. }
        | A::ForgetName { .. } => Some("it is not as saved"),
        A::CreateGpt { .. } | A::AddPartition { .. } | A::DeletePartition { .. } => {
            Some("its partition table is not as saved")
        }
        A::Mkfs {
            if_blank: false, ..
        } => Some("its filesystem is missing"),
        // LVM keeps its own metadata: at boot its VGs and LVs are there or not; the
        // replay activates an LV LVM has not (yet) and raises its largest I/O
        A::CreatePv { .. } | A::CreateVg { .. } | A::CreateLv(_) => {
            Some("it is missing (a PV's DIMM removed or failed?)")
        }
        A::ExtendVg { .. }
        | A::ExtendLv { .. }
        | A::RemoveLv { .. }
        | A::RemoveVg { .. }
        | A::RemovePv { .. } => Some("it is not as saved"),
        A::ActivateLv { .. } | A::RaiseMaxSectors { .. } => None,
        // the CXL decoders are reset at every boot: assembling the region again is what
        // the replay is for; something in its way is not as saved
        A::CreateCxlRegion { .. } => None,
        // a devdax namespace's memory is given to the kernel again at every boot (kmem
        // does not persist); taking it back is not what was saved
        A::ToSystemRam { .. } | A::OnlineMemory { .. } | A::RestoreAutoOnline { .. } => None,
        A::ToDevdax { .. } => Some("it is system RAM where the saved state says devdax"),
        A::DestroyCxlRegion { .. } => Some("it is in the way of a saved CXL region"),
        _ => None,
    }
}

/// A replay's plan refused before anything is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedPlan {
    /// One refusal `<action> <target> (<why>)` per step [`not_at_boot`] forbids, in plan
    /// order: the result's `refusals`.
    pub refusals: Vec<Refused>,
    /// The run's failure message.
    pub msg: String,
}

/// Whether the plan `steps` of a boot replay has steps that [`not_at_boot`] forbids:
/// then the replay fails before anything is done.
pub(crate) fn refused_plan(steps: &[Step]) -> Option<RefusedPlan> {
    let refused: Vec<String> = steps
        .iter()
        .filter_map(|s| {
            not_at_boot(&s.action)
                .map(|why| format!("{} {} ({why})", s.action.name(), s.action.target()))
        })
        .collect();
    if refused.is_empty() {
        return None;
    }
    let msg = format!(
        "the boot replay only reassembles what exists and would have to {}; nothing was done. Run the task that declares this stack once what is missing is back (or to rebuild it)",
        refused.join(", ")
    );
    Some(RefusedPlan {
        refusals: refused.iter().map(Refused::because).collect(),
        msg,
    })
}

/// Whether a boot replay refuses the step `action` when it comes to run, `would_run`
/// saying whether it would (its resolution against the state probed just before it ran,
/// rather than a skip): the replay never makes a filesystem, not even an if-blank one
/// planned over a rebuilt device whose content was unknown, which turned out blank where
/// its filesystem should be.
pub(crate) fn refused_when_run(action: &Action, would_run: bool) -> Option<Refused> {
    (would_run && matches!(action, Action::Mkfs { .. })).then(|| {
        Refused::new(
            format!("making a filesystem on {} at boot", action.target()),
            "the rebuilt device is blank where its filesystem should be (its members changed?); the replay never makes a filesystem",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::validate::DevRef;
    use crate::args::FsType;

    #[test]
    fn a_replay_never_allows_data_loss() {
        let r = replay_args(r#"{"allow_data_loss": true, "state": "absent", "boot": {"persist": true}, "_ansible_check_mode": true, "devices": []}"#)
            .expect("replay args");
        let v: serde_json::Value = serde_json::from_str(&r).expect("json");
        assert_eq!(v["allow_data_loss"], false);
        assert_eq!(v["state"], "present");
        assert_eq!(v["boot"]["persist"], false);
        assert!(v.get("_ansible_check_mode").is_none());
        assert!(replay_args("[1]").is_err());
    }

    fn mkfs(if_blank: bool) -> Action {
        Action::Mkfs {
            device: DevRef::Device("pmem-striped".into()),
            fstype: FsType::Xfs,
            label: None,
            extra: Vec::new(),
            stripes: 2,
            force: false,
            if_blank,
        }
    }

    #[test]
    fn a_replay_never_makes_a_filesystem() {
        // planned as missing: the plan is refused before anything runs
        assert_eq!(not_at_boot(&mkfs(false)), Some("its filesystem is missing"));
        // planned if blank (content unknown): refused only once it would run
        assert_eq!(not_at_boot(&mkfs(true)), None);
        assert_eq!(refused_when_run(&mkfs(true), false), None);
        let r = refused_when_run(&mkfs(true), true).expect("refused");
        assert_eq!(
            r.to_string(),
            "refusing making a filesystem on dm device pmem-striped at boot: the rebuilt device is blank where its filesystem should be (its members changed?); the replay never makes a filesystem"
        );
        assert!(!r.data_loss);
        assert_eq!(refused_when_run(&Action::DaemonReload, true), None);
        assert_eq!(not_at_boot(&Action::DaemonReload), None);
    }

    #[test]
    fn a_replay_activates_lvs_and_raises_their_io_but_makes_no_lvm_object() {
        let lv = || ("vg".to_string(), "lv".to_string());
        let made = [
            Action::CreatePv {
                device: DevRef::Namespace("pm0".into()),
                wipe: false,
            },
            Action::CreateVg {
                vg: lv().0,
                extent_size: crate::units::Bytes(4 << 20),
                pvs: vec![],
            },
            Action::CreateLv(crate::op::NewLv {
                vg: lv().0,
                lv: lv().1,
                extents: crate::op::Extents::RestOfVg,
                stripes: 2,
                stripe_size: crate::units::Bytes(2 << 20),
            }),
            Action::RemoveLv {
                vg: lv().0,
                lv: lv().1,
            },
        ];
        for a in &made {
            assert!(not_at_boot(a).is_some(), "{a:?}");
        }
        for a in [
            Action::ActivateLv {
                vg: lv().0,
                lv: lv().1,
            },
            Action::RaiseMaxSectors {
                device: DevRef::Volume(lv().0, lv().1),
                kb: 2048,
            },
        ] {
            assert_eq!(not_at_boot(&a), None, "{a:?}");
        }
    }
}
