//! Apply-time resolution: a planned [`Action`] names objects symbolically; [`resolve`]
//! turns it into a concrete [`Op`](crate::op::Op) (device paths, numbers, full dm
//! tables, typed mkfs geometry) against the state probed just before the step runs.
//! Pure, so the real system and the fake execute exactly the same operations.
//!
//! This is dispatch: each layer's room (`plan/<layer>.rs`) owns its apply-time guard and
//! its action -> op translation next to its plan rule, with a typed outcome: run the op,
//! skip the step ([`Resolved::Skip`], a conditional step whose condition is not met), or
//! refuse it ([`Refused`]). The one guard common to every layer is here: a step that
//! depends on what a device holds ([`Action::reads`]) never runs over one the probe
//! could not read (unknown is not blank).

use crate::actual::Actual;
use crate::args::validate::Desired;
use crate::bind::bind;
pub use crate::plan::Resolved;
use crate::plan::{Action, Refused};

/// Resolve a planned action against the state probed just before it runs.
pub fn resolve(action: &Action, d: &Desired, a: &Actual) -> Result<Resolved, Refused> {
    let bound = bind(d, a);
    if let Some(u) = action
        .reads()
        .and_then(|r| bound.block(r))
        .and_then(|b| a.unreadable(b.devno))
    {
        return Err(Refused::new(
            action.doing(),
            format!(
                "{} could not be read: {}; what it holds is unknown",
                u.path, u.error
            ),
        ));
    }
    crate::plan::resolve_in_room(action, &bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::Filesystem;
    use crate::args::validate::DevRef;
    use crate::op::Op;
    use crate::system::fake::FakeSystem;
    use crate::units::Bytes;

    fn desired(args: serde_json::Value, allow_data_loss: bool) -> Desired {
        let input = crate::args::parse_input(&args.to_string())
            .map_err(|e| e.errors)
            .expect("parses");
        let mut d = crate::args::validate::validate(&input.args).expect("valid");
        d.allow_data_loss = allow_data_loss;
        d
    }

    fn blank_only_mkfs() -> Action {
        Action::Mkfs {
            device: DevRef::Namespace("pm0".into()),
            fstype: crate::args::FsType::Ext4,
            label: None,
            extra: vec![],
            stripes: 1,
            force: false,
            if_blank: true,
        }
    }

    #[test]
    fn a_refusal_names_the_step_and_allow_data_loss_only_when_data_is_the_reason() {
        let r = Refused::new("making ext4 on /dev/pmem0", "/dev/pmem0 does not exist");
        assert_eq!(
            r.to_string(),
            "refusing making ext4 on /dev/pmem0: /dev/pmem0 does not exist"
        );
        let r = Refused::losing_data(
            "to delete partition 1 of x",
            "that moves or drops the data on it",
        );
        assert_eq!(
            r.to_string(),
            "refusing to delete partition 1 of x: that moves or drops the data on it. Set allow_data_loss: true to allow it"
        );
    }

    /// A mkfs planned over content unknown then: decided on what the device holds when it
    /// runs, in one place, with a typed outcome.
    #[test]
    fn a_blank_only_mkfs_runs_skips_or_is_refused() {
        let args = serde_json::json!({
            "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
            "filesystems": [{"device": "pm0", "type": "ext4"}]
        });
        let mut fake = FakeSystem::with_fsdax(1, Bytes(1 << 30));
        let d = desired(args.clone(), false);
        // blank: runs, not forced
        match resolve(&blank_only_mkfs(), &d, &fake.state) {
            Ok(Resolved::Run(Op::Mkfs { force, fstype, .. })) => {
                assert!(!force);
                assert_eq!(fstype, crate::args::FsType::Ext4);
            }
            other => panic!("{other:?}"),
        }
        // another filesystem turned up: refused for its data, unless data loss is allowed
        let pmem0 = fake.state.block_named("pmem0").expect("pmem0").clone();
        fake.state.filesystems.push(Filesystem {
            device: pmem0.devno,
            fstype: "xfs".into(),
            uuid: None,
            label: None,
            block_size: Some(Bytes(4096)),
            stripe_unit: Some(512),
            stripe_width: Some(512),
            reflink: Some(false),
            size: Some(Bytes(1 << 20)),
            incomplete: false,
        });
        let r = resolve(&blank_only_mkfs(), &d, &fake.state).expect_err("refused");
        assert!(r.data_loss, "{r}");
        assert_eq!(r.what, "making ext4 on namespace pm0");
        assert!(
            r.to_string().starts_with(
                "refusing making ext4 on namespace pm0: /dev/pmem0 turned out to hold xfs (other geometry or size) once it appeared"
            ),
            "{r}"
        );
        let allowed = desired(args.clone(), true);
        assert!(matches!(
            resolve(&blank_only_mkfs(), &allowed, &fake.state),
            Ok(Resolved::Run(Op::Mkfs { force: true, .. }))
        ));
        // the very filesystem it would make: skipped
        fake.state.filesystems.last_mut().expect("fs").fstype = "ext4".into();
        fake.state.filesystems.last_mut().expect("fs").stripe_width = Some(0);
        assert!(matches!(
            resolve(&blank_only_mkfs(), &d, &fake.state),
            Ok(Resolved::Skip(why)) if why.contains("already holds ext4")
        ));
        // unreadable: refused, not for data loss
        fake.state.unreadable.push(crate::actual::Unreadable {
            device: pmem0.devno,
            path: pmem0.path.clone(),
            error: "Input/output error".into(),
        });
        let r = resolve(&blank_only_mkfs(), &allowed, &fake.state).expect_err("refused");
        assert!(!r.data_loss, "{r}");
        assert!(r.why.contains("what it holds is unknown"), "{r}");
    }
}
