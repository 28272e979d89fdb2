//! The read-only side: `--facts` (the probed snapshot as `ansible_facts.pmem_stack`, with
//! the DAX audit and LVM at a glance), the facts module `pmem_stack_info` that is the same binary under
//! another name, and reading a captured snapshot for `--actual`.

use crate::args::{self, Overrides};
use crate::report::ModuleResult;
use crate::system::{ProbeScope, System};
use crate::{actual, audit};

/// `--facts`: the snapshot as `ansible_facts.pmem_stack`, probed in the base scope (PMEM,
/// every dm device, what holds them and their partitions), with the DAX audit of every
/// DAX mount (`dax_audit`) and every PV, VG and LV with its 2 MiB alignment
/// (`lvm_summary`). `msg` counts what was found (LVM's PVs, VGs and LVs too, and those
/// not 2 MiB aligned) and says what kernel support is missing; devices in that scope
/// that could not be read are warnings.
pub fn facts(system: &mut dyn System) -> ModuleResult {
    let r = ModuleResult::new(Default::default());
    system.set_scope(ProbeScope::base());
    match system.probe() {
        Ok(a) => {
            let mut r = r;
            let lvm = audit::lvm::summary(&a);
            r.msg = format!(
                "{} region(s), {} namespace(s), {} dm device(s), {} mount(s), {}",
                a.regions.len(),
                a.namespaces.len(),
                a.dm_devices.len(),
                a.mounts.len(),
                lvm_counts(&lvm)
            );
            if !a.cxl.is_empty() {
                r.msg.push_str(&format!(
                    ", {} CXL memory device(s), {} CXL region(s)",
                    a.cxl.memdevs.len(),
                    a.cxl.regions.len()
                ));
            }
            let ram: Vec<&crate::actual::ram::DaxDevice> = a
                .memory
                .dax
                .iter()
                .filter(|d| d.mode == crate::actual::ram::DaxMode::SystemRam)
                .collect();
            if !ram.is_empty() {
                let online: u64 = ram
                    .iter()
                    .map(|d| d.online_bytes(a.memory.block_size).0)
                    .sum();
                r.msg.push_str(&format!(
                    ", {} dax device(s) as system RAM ({} online)",
                    ram.len(),
                    crate::units::Bytes(online)
                ));
            }
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
            r.lvm_summary = Some(lvm);
            r.ansible_facts = Some(serde_json::json!({ "pmem_stack": a }));
            r
        }
        Err(e) => r.fail(e.to_string()),
    }
}

/// `3 PV(s), 2 VG(s), 3 LV(s)`, and what of it is not 2 MiB aligned
/// (`, not 2 MiB aligned: 1 PV(s), 1 LV(s)`).
fn lvm_counts(s: &audit::lvm::LvmSummary) -> String {
    let mut out = format!(
        "{} PV(s), {} VG(s), {} LV(s)",
        s.pvs.len(),
        s.vgs.len(),
        s.lvs.len()
    );
    let off = [
        (
            s.pvs.iter().filter(|p| p.aligned == Some(false)).count(),
            "PV",
        ),
        (
            s.vgs.iter().filter(|v| !v.extent_size_aligned).count(),
            "VG",
        ),
        (s.lvs.iter().filter(|l| !l.aligned).count(), "LV"),
    ];
    let off: Vec<String> = off
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}(s)"))
        .collect();
    if !off.is_empty() {
        out.push_str(&format!(", not 2 MiB aligned: {}", off.join(", ")));
    }
    out
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

/// `pmem_stack_info`: what [`facts`] reports (`ansible_facts.pmem_stack`, the DAX audit
/// and the LVM summary), never changing anything. It takes no options: any key but Ansible's internal
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::lvm::fixtures::{machine, pmem, vgp, with_lv, VGD_PV0, VGP_PV0, VGP_PV1};
    use crate::audit::lvm::{LvSummary, PvSummary, VgSummary};

    /// A machine of three namespaces: `vgp` (`--dataalignment 2m`) on the first two,
    /// its striped LV active with pmem's max_sectors_kb (1280), and `vgd` (LVM's
    /// defaults) on the third.
    fn two_vgs() -> crate::system::fake::FakeSystem {
        let mut fake = machine(3);
        let a = fake.state.clone();
        let lvm = crate::audit::lvm::fixtures::lvm_of(&[
            (VGP_PV0, pmem(&a, 0)),
            (VGP_PV1, pmem(&a, 1)),
            (VGD_PV0, pmem(&a, 2)),
        ]);
        assert_eq!(lvm.vgs.len(), 2);
        fake.state = with_lv(a, lvm, "vgp", "lvs", 1280);
        fake
    }

    /// The facts list every PV, VG and LV with its alignment: `vgd`'s PV (pe_start
    /// 1 MiB) and LV are not aligned, naming the PV and the fix; `vgp`'s are, and its
    /// active striped LV shows its dm device and the max_sectors_kb below its stripe;
    /// `msg` counts them.
    #[test]
    fn facts_list_pvs_vgs_and_lvs_with_their_alignment() {
        let mut fake = two_vgs();
        let r = facts(&mut fake);
        assert!(!r.failed, "{}", r.msg);
        assert_eq!(
            r.msg,
            "3 region(s), 3 namespace(s), 1 dm device(s), 1 mount(s), 3 PV(s), 2 VG(s), 3 LV(s), not 2 MiB aligned: 1 PV(s), 1 LV(s)"
        );
        let s = r.lvm_summary.as_ref().expect("lvm_summary");
        let pvs: Vec<_> = s
            .pvs
            .iter()
            .map(|p: &PvSummary| (p.device.as_str(), p.vg.as_deref(), p.pe_start, p.aligned))
            .collect();
        assert_eq!(
            pvs,
            [
                ("/dev/pmem0", Some("vgp"), Some(2 << 20), Some(true)),
                ("/dev/pmem1", Some("vgp"), Some(2 << 20), Some(true)),
                ("/dev/pmem2", Some("vgd"), Some(1 << 20), Some(false)),
            ]
        );
        let vgs: Vec<(&str, u64, bool, bool)> = s
            .vgs
            .iter()
            .map(|v: &VgSummary| {
                (
                    v.name.as_str(),
                    v.extent_size,
                    v.extent_size_aligned,
                    v.aligned,
                )
            })
            .collect();
        assert_eq!(
            vgs,
            [("vgp", 4 << 20, true, true), ("vgd", 4 << 20, true, false)]
        );
        assert_eq!(s.vgs[0].pvs, ["/dev/pmem0", "/dev/pmem1"]);
        assert_eq!(s.vgs[0].lvs, ["lvs", "lvl"]);
        let lv =
            |name: &str| -> &LvSummary { s.lvs.iter().find(|l| l.name == name).expect("listed") };
        let lvs = lv("vgp/lvs");
        assert_eq!(
            (lvs.layout.as_str(), lvs.stripes, lvs.stripe_size, lvs.size),
            ("striped", 2, Some(2 << 20), 64 << 20)
        );
        assert!(lvs.aligned && lvs.active);
        assert_eq!(lvs.path.as_deref(), Some("/dev/mapper/vgp-lvs"));
        assert_eq!(lvs.max_sectors_kb, Some(1280));
        assert_eq!(
            lvs.problems,
            ["dm /dev/mapper/vgp-lvs: max_sectors_kb 1280, below the stripe size: no 2 MiB fault is mapped; fix: echo 2048 > /sys/block/dm-0/queue/max_sectors_kb"]
        );
        let lvl = lv("vgp/lvl");
        assert!(lvl.aligned && !lvl.active && lvl.problems.is_empty());
        assert_eq!((lvl.layout.as_str(), lvl.stripe_size), ("linear", None));
        let lvd = lv("vgd/lvd");
        assert!(!lvd.aligned && !lvd.active);
        assert_eq!(
            (lvd.layout.as_str(), lvd.size, lvd.segments),
            ("linear", 100 << 20, 1)
        );
        assert_eq!(
            lvd.problems,
            ["pv /dev/pmem2: data area (pe_start) at 1M, not a multiple of 2 MiB; fix: pvcreate --dataalignment 2m (the PV made again, which loses its data)"]
        );
        // the snapshot keeps the raw LVM part; the summary is in the result, as JSON
        let v = serde_json::to_value(&r).expect("json");
        assert!(
            v["ansible_facts"]["pmem_stack"]["lvm"]["vgs"].is_array(),
            "{v}"
        );
        assert_eq!(
            v["lvm_summary"]["pvs"][2]["aligned"],
            serde_json::json!(false)
        );
        assert!(v["lvm_summary"]["pvs"][0].get("error").is_none(), "{v}");
    }

    /// Without LVM, the summary is there and empty, and `msg` says 0 of each; one VG's
    /// odd extent size is counted among those not aligned.
    #[test]
    fn no_lvm_and_an_odd_extent_size() {
        let mut fake = machine(1);
        let r = facts(&mut fake);
        assert_eq!(
            r.msg,
            "1 region(s), 1 namespace(s), 0 dm device(s), 0 mount(s), 0 PV(s), 0 VG(s), 0 LV(s)"
        );
        assert_eq!(r.lvm_summary, Some(Default::default()));
        let mut fake = machine(2);
        let mut lvm = vgp();
        lvm.vgs[0].extent_size = crate::units::Bytes(3 << 20);
        fake.state.lvm = lvm;
        let r = facts(&mut fake);
        assert!(
            r.msg
                .ends_with(", 2 PV(s), 1 VG(s), 2 LV(s), not 2 MiB aligned: 1 VG(s), 2 LV(s)"),
            "{}",
            r.msg
        );
        let s = r.lvm_summary.expect("summary");
        assert!(!s.vgs[0].extent_size_aligned && !s.vgs[0].aligned);
        assert!(s.lvs.iter().all(|l| l.problems[0]
            .starts_with("vg vgp: extent size 3M, not a multiple of 2 MiB; fix: vgcreate -s 4m")));
    }
}
