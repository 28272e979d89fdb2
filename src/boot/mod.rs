//! Boot persistence: the files that rebuild the stack at boot, rendered purely from the
//! bound view of the desired and the actual state ([`crate::bind`]).
//!
//! Device-mapper tables live only in the kernel and `/dev/pmemN` numbers can change at
//! boot, so with `boot: {persist: true}` the module saves the desired state, installs
//! itself, and enables one instance of a oneshot template service per saved state,
//! `pmem-stack@<stem>.service` for `STATE_DIR/<stem>.json`, which replays that state
//! before `local-fs-pre.target` (dm devices rebuilt from namespace names, never from
//! `/dev/pmemN`), plus one `.mount` unit per declared mount, carrying the DAX options and
//! requiring (and ordered after) its own stack's instance: a stack that cannot be rebuilt
//! (a DIMM removed) fails its own instance and its own mounts, and the other stacks come
//! up. The replay (`pmem_stack --boot FILE`) never destroys data: it runs with
//! `allow_data_loss` off whatever the saved arguments say.
//!
//! Several tasks may each persist their own stack. Each run owns the boot entries of
//! the objects it declares and no others:
//! - its saved state is `/etc/pmem-stack/state.d/<key>.json`, the key derived from the
//!   names of the objects it declares (namespaces, dm devices, partitions, filesystem
//!   devices, mount units): re-running the same task finds its own file; its replay
//!   instance is named after the same key, so it has its own `.wants` link;
//! - a saved state that declares any object this run declares is this run's earlier
//!   self (its declaration grew, shrank or moved, which changes the key; or a host
//!   converged by a version that kept one `/etc/pmem-stack/state.json`): it is replaced
//!   by this run's state (its instance link goes with it), and the mount units it
//!   declared are this run's to keep or remove. A saved state sharing no object with
//!   this run is another task's: never touched, nor are its instance link and the units
//!   of the mounts it declares (a mount unit belongs to the stack that declares its
//!   mount);
//! - the template service and the installed binary are shared: written by any persisted
//!   run, removed by `state: absent` only when no saved state remains.
//!
//! Earlier versions had one shared service, `pmem-stack.service` (`pmem_stack --boot`
//! replaying every saved state), enabled in `local-fs-pre.target.wants/`, and mount
//! units requiring it. See [`legacy_service_needed`] for when a run removes it.
//!
//! Paths here are the machine's paths; the real system prefixes them with
//! `PMEM_STACK_ROOT` when set (tests keep them in a directory that survives a reboot).
//!
//! The module is split by concern:
//! - [`names`]: paths, unit names, the saved states' keys and the replay instances;
//! - [`ownership`](mod@ownership): which saved states are this run's, and which boot
//!   files it removes;
//! - [`render`]: which files are wanted and what each holds.
//!
//! What a replay may do (the saved arguments rewritten for it, the steps it refuses) is
//! the boot-replay policy, [`crate::plan::replay`]: it speaks of plan actions, and this
//! module sits below the planner (it never imports it).

pub mod names;
pub mod ownership;
pub mod render;

pub use names::{
    declared_objects, is_state_path, is_unit_path, mount_unit_name, objects_of, replay_link,
    replay_order, replay_unit, replay_unit_for, replay_unit_of_state, state_of_replay_unit,
    state_path, state_path_for, state_stem_for, unit_file_of, BINARY, LEGACY_BINARY,
    LEGACY_SERVICE, LEGACY_STATE_FILE, RELOAD_PENDING, REPLAY_TARGET, SERVICE_TEMPLATE, STATE_DIR,
    UNIT_DIR,
};
pub use ownership::{
    legacy_copy_removal, legacy_service_needed, ownership, removals, saved_states, Ownership,
    Removal, SavedState,
};
pub use render::{
    content_of, is_generated, mount_unit_text, reload_pending_marker, service_text, state_text,
    wanted, FileKind, Wanted, MARKER, MARKER_PREFIX,
};
