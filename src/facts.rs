//! The read-only side: `--facts` (the probed snapshot as `ansible_facts.pmem_stack`, with
//! the DAX audit), the facts module `pmem_stack_info` that is the same binary under
//! another name, and reading a captured snapshot for `--actual`.

use crate::args::{self, Overrides};
use crate::report::ModuleResult;
use crate::system::{ProbeScope, System};
use crate::{actual, audit};

/// `--facts`: the snapshot as `ansible_facts.pmem_stack`, probed in the base scope (PMEM,
/// every dm device, what holds them and their partitions). Devices in that scope that
/// could not be read are warnings; missing kernel support is said in `msg`.
pub fn facts(system: &mut dyn System) -> ModuleResult {
    let r = ModuleResult::new(Default::default());
    system.set_scope(ProbeScope::base());
    match system.probe() {
        Ok(a) => {
            let mut r = r;
            r.msg = format!(
                "{} region(s), {} namespace(s), {} dm device(s), {} mount(s)",
                a.regions.len(),
                a.namespaces.len(),
                a.dm_devices.len(),
                a.mounts.len()
            );
            for m in &a.missing {
                r.msg.push_str("; ");
                r.msg.push_str(m.explain());
            }
            r.warnings = a
                .unreadable
                .iter()
                .map(|u| format!("could not read {}: {}", u.path, u.error))
                .collect();
            r.dax_audit = Some(audit::audit(&a, None));
            r.ansible_facts = Some(serde_json::json!({ "pmem_stack": a }));
            r
        }
        Err(e) => r.fail(e.to_string()),
    }
}

/// Whether this run is the facts module `pmem_stack_info` (the same binary, installed
/// under that name as well: the collection ships it twice). Ansible says which module
/// it runs in `_ansible_module_name` (the name the task used: `pmem_stack_info`,
/// `pmemstack.pmem.pmem_stack_info`, `ansible.legacy.pmem_stack_info`); that key decides
/// when present. Without it (the binary run by hand) the program's own file name does:
/// `argv0`, as Ansible names its remote copy `AnsiballZ_<module file name>`.
pub fn invoked_as_info(args_text: &str, argv0: &str) -> bool {
    let named = args::module_name(args_text).unwrap_or_else(|| {
        let file = argv0.rsplit('/').next().unwrap_or(argv0);
        file.strip_prefix("AnsiballZ_").unwrap_or(file).to_string()
    });
    named.rsplit('.').next() == Some(args::INFO_MODULE_NAME)
}

/// `pmem_stack_info`: what [`facts`] reports (`ansible_facts.pmem_stack` and the DAX
/// audit), never changing anything. It takes no options: any key but Ansible's internal
/// `_ansible_*` ones fails the run, naming it, before the machine is probed.
pub fn info(args_text: &str, system: &mut dyn System) -> ModuleResult {
    info_with(args_text, system, Overrides::default())
}

/// [`info`], with the command line's `overrides` (only the check mode it reports matters
/// to it: it changes nothing either way).
pub fn info_with(args_text: &str, system: &mut dyn System, overrides: Overrides) -> ModuleResult {
    match args::parse_info_input(args_text) {
        Ok(internal) => {
            let internal = overrides.apply(internal);
            let mut r = facts(system);
            r.check_mode = internal.check_mode;
            r
        }
        Err(f) => ModuleResult::new(f.raw_options).input_errors(&f.errors),
    }
}

/// Read a snapshot given to `--actual`: the bare snapshot or a `--facts` result.
pub fn read_snapshot(text: &str) -> Result<actual::Actual, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the snapshot is not valid JSON: {e}"))?;
    let inner = v.pointer("/ansible_facts/pmem_stack").cloned().unwrap_or(v);
    serde_path_to_error::deserialize(inner).map_err(|e| {
        format!(
            "the snapshot does not describe a system at {}: {}",
            e.path(),
            e.inner()
        )
    })
}
