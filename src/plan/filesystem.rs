//! Filesystem layer. An existing filesystem is recognised from its superblock.
//!
//! | device content | type matches | DAX geometry matches | allowed | step |
//! |---|---|---|---|---|
//! | new (device created/re-made by this plan) | - | - | - | mkfs |
//! | nothing | - | - | - | mkfs |
//! | partition table / holders, no filesystem | - | - | yes / no | teardown, mkfs -f / refuse |
//! | filesystem | yes | yes | - | nothing (a label difference is a warning) |
//! | filesystem | yes | no | no | warning naming the fix (nothing done) |
//! | filesystem | yes | no | yes | teardown, mkfs -f |
//! | filesystem | no | - | yes / no | teardown, mkfs -f / refuse |
//!
//! DAX geometry for 2 MiB pages: 4 KiB blocks; ext4 stride 512 blocks and stripe width
//! 512 x stripes; xfs sunit 512 blocks, swidth 512 x stripes, reflink off (6.x kernels
//! refuse DAX with reflink on a partition).

use super::{Action, Ctx, Layer, Refused, Resolved};
use crate::actual::Filesystem;
use crate::args::mkfs::{self, MkfsOpt};
use crate::args::validate::{DevRef, FilesystemSpec};
use crate::args::FsType;
use crate::bind::Bound;
pub use crate::geometry::STRIPE_UNIT_BLOCKS;
use crate::geometry::{Ext4Stripe, FsGeometry, Layout, XfsStripe};
use crate::op::Op;
use crate::units::{Bytes, HUGE_PAGE, PAGE};

/// The geometry pmem_stack asks mkfs for: 4 KiB blocks; ext4 stride 512 blocks and
/// stripe width 512 x stripes (none over one device); xfs su 2 MiB, sw stripes, reflink
/// off. An option the user's `mkfs_options` restate (an `-E` with `stride` or
/// `stripe_width`, a `-b`, a `-d` with `su`/`sunit`/`sw`/`swidth`, an `-m` with
/// `reflink`, in any spelling getopt reads: [`mkfs::read`]) is left to them, so the
/// user's value wins instead of mkfs refusing the option twice.
pub fn dax_geometry(fstype: FsType, extra: &[String], stripes: u32) -> FsGeometry {
    let stripes = stripes.max(1);
    let user = mkfs::read(fstype, extra);
    let given = |pick: fn(MkfsOpt) -> bool| mkfs::gives(&user, pick);
    match fstype {
        FsType::Ext4 => FsGeometry::Ext4 {
            block_size: (!given(|o| matches!(o, MkfsOpt::BlockSize(_)))).then_some(PAGE),
            stripe: (!given(|o| matches!(o, MkfsOpt::Stride(_) | MkfsOpt::StripeWidth(_))))
                .then_some(Ext4Stripe {
                    stride: STRIPE_UNIT_BLOCKS,
                    stripe_width: (stripes > 1).then_some(STRIPE_UNIT_BLOCKS * stripes),
                }),
        },
        FsType::Xfs => FsGeometry::Xfs {
            reflink: (!given(|o| matches!(o, MkfsOpt::Reflink(_)))).then_some(false),
            stripe: (!given(|o| {
                matches!(
                    o,
                    MkfsOpt::Su(_) | MkfsOpt::Sunit(_) | MkfsOpt::Sw(_) | MkfsOpt::Swidth(_)
                )
            }))
            .then_some(XfsStripe {
                su: HUGE_PAGE,
                sw: stripes,
            }),
        },
    }
}

/// Stripe unit, width (4 KiB blocks) and reflink that the declared mkfs makes: the DAX
/// defaults, or what the user's `mkfs_options` say instead.
pub fn expected_geometry(fstype: FsType, extra: &[String], stripes: u32) -> Layout {
    dax_geometry(fstype, extra, stripes).layout(extra)
}

/// How an existing filesystem differs from what the declared mkfs would make (empty:
/// it is that filesystem). Block size is always 4 KiB: DAX needs it.
pub fn geometry_problems(fstype: FsType, expected: Layout, fs: &Filesystem) -> Vec<String> {
    let Layout {
        stripe_unit: want_su,
        stripe_width: want_sw,
        reflink: want_reflink,
    } = expected;
    let mut p = Vec::new();
    if let Some(bs) = fs.block_size {
        if bs != PAGE {
            p.push(format!("block size {bs} (DAX needs 4K)"));
        }
    }
    let su = fs.stripe_unit.unwrap_or(0);
    let sw = fs.stripe_width.unwrap_or(0);
    let (su_name, sw_name) = match fstype {
        FsType::Ext4 => ("stride", "stripe_width"),
        FsType::Xfs => ("sunit", "swidth"),
    };
    if su != want_su {
        p.push(format!("{su_name}={su} blocks (want {want_su})"));
    }
    // ext4 made with only a stride records no stripe width, or the stride
    let sw_ok = sw == want_sw || (want_sw == 0 && (sw == 0 || sw == su));
    if !sw_ok {
        p.push(format!("{sw_name}={sw} blocks (want {want_sw})"));
    }
    if fstype == FsType::Xfs && fs.reflink.is_some_and(|r| r != want_reflink) {
        p.push(format!(
            "reflink={} (want {})",
            u8::from(!want_reflink),
            u8::from(want_reflink)
        ));
    }
    p
}

/// Whether `r` is a declared dm device or LV, suspended, and mounted with `fstype`.
fn suspended_but_mounted_with(cx: &Ctx, r: &DevRef, fstype: &str) -> bool {
    let dm = match r {
        DevRef::Device(name) => cx.a.dm(name),
        DevRef::Volume(vg, lv) => cx.a.lv_dm(vg, lv),
        _ => None,
    };
    dm.filter(|dm| dm.suspended)
        .is_some_and(|dm| cx.a.mounts_of(dm.devno).any(|m| m.fstype == fstype))
}

pub(crate) fn plan(cx: &mut Ctx) {
    for (i, spec) in cx.d.filesystems.iter().enumerate() {
        let spec = spec.clone();
        if cx.o.is_unknown(&spec.device) {
            // Made over content that existed before (a dm device rebuilt over its members):
            // what it holds is seen only once it exists. Decided when the step runs.
            mkfs_step(
                cx,
                &spec,
                false,
                false,
                true,
                "only if the device is blank when it appears: it is built over existing data"
                    .into(),
            );
            continue;
        }
        if suspended_but_mounted_with(cx, &spec.device, spec.fstype.as_str()) {
            // A declared dm device left suspended while mounted (a reload stopped between
            // its suspend and its resume): the dm layer resumes it; its superblock could
            // not be read, but the mount shows the filesystem is there.
            continue;
        }
        if cx.o.is_fresh(&spec.device) {
            // The device is new or its content was judged (and given up) by a lower layer:
            // stale signatures on it (a superblock surviving a reload) are not data.
            mkfs(cx, &spec, true, false, "new device".into());
            continue;
        }
        let Some(bd) = cx.current(&spec.device) else {
            if let DevRef::Path(p) = &spec.device {
                cx.refusals.push(Refused::because(format!(
                    "filesystems[{i}]: {p} does not exist"
                )));
            }
            continue;
        };
        match cx.a.filesystem(bd.devno) {
            Some(fs) if fs.incomplete => {
                // a mkfs stopped before it finished (a kill, a power cut): the kernel
                // will not mount it, and it holds no data
                let why = format!(
                    "the {} found there is one whose mkfs never finished (sb_inprogress): it holds no data",
                    fs.fstype
                );
                if cx.destroy(bd, &format!("making {} on {}", spec.fstype, bd.path)) {
                    mkfs(cx, &spec, true, false, why);
                }
            }
            None => {
                let lost = cx.lost_with(bd);
                if cx.destroy(bd, &format!("making {} on {}", spec.fstype, bd.path)) {
                    let force = !lost.is_empty();
                    mkfs(
                        cx,
                        &spec,
                        force,
                        force,
                        if force {
                            format!("replaces {}", lost.join(", "))
                        } else {
                            "no filesystem yet".into()
                        },
                    );
                }
            }
            Some(fs) if fs.fstype == spec.fstype.as_str() => {
                let expected = expected_geometry(spec.fstype, &spec.mkfs_options, spec.stripes);
                let problems = geometry_problems(spec.fstype, expected, fs);
                if let (Some(want), have) = (&spec.label, &fs.label) {
                    if have.as_deref() != Some(want.as_str()) {
                        cx.warnings.push(format!(
                            "filesystems[{i}]: {} on {} is labelled {:?}, not {want:?}; the label is not changed",
                            fs.fstype,
                            bd.path,
                            have.as_deref().unwrap_or("")
                        ));
                    }
                }
                if problems.is_empty() {
                    continue;
                }
                if !cx.d.allow_data_loss {
                    let hint = match spec.fstype {
                        FsType::Ext4 => format!(
                            " (or keep the data and run: tune2fs -E stride={STRIPE_UNIT_BLOCKS}{} {})",
                            if spec.stripes > 1 { format!(",stripe_width={}", STRIPE_UNIT_BLOCKS * spec.stripes) } else { String::new() },
                            bd.path
                        ),
                        FsType::Xfs => " (or mount it with -o sunit=4096,swidth=... to keep the data)".to_string(),
                    };
                    cx.warnings.push(format!(
                        "filesystems[{i}]: {} on {} has {}: DAX falls back to 4 KiB pages. Set allow_data_loss: true to re-make it{hint}",
                        fs.fstype,
                        bd.path,
                        problems.join(", ")
                    ));
                    continue;
                }
                let lost = cx.lost_with(bd);
                if cx.destroy(
                    bd,
                    &format!("re-making the {} filesystem on {}", fs.fstype, bd.path),
                ) {
                    mkfs(
                        cx,
                        &spec,
                        true,
                        true,
                        format!(
                            "geometry {}; replaces {}",
                            problems.join(", "),
                            lost.join(", ")
                        ),
                    );
                }
            }
            Some(fs) => {
                let lost = cx.lost_with(bd);
                if cx.destroy(
                    bd,
                    &format!(
                        "making {} over the {} filesystem on {}",
                        spec.fstype, fs.fstype, bd.path
                    ),
                ) {
                    mkfs(
                        cx,
                        &spec,
                        true,
                        true,
                        format!("replaces {}", lost.join(", ")),
                    );
                }
            }
        }
    }
}

fn mkfs(cx: &mut Ctx, spec: &FilesystemSpec, force: bool, destructive: bool, why: String) {
    mkfs_step(cx, spec, force, destructive, false, why);
}

fn mkfs_step(
    cx: &mut Ctx,
    spec: &FilesystemSpec,
    force: bool,
    destructive: bool,
    if_blank: bool,
    why: String,
) {
    let geometry = dax_geometry(spec.fstype, &spec.mkfs_options, spec.stripes);
    if let Some(size) = size_bound(cx, &spec.device, 0) {
        if let Some(why) = crate::geometry::xfs_cannot_fit(size, &geometry, &spec.mkfs_options) {
            cx.refusals.push(Refused::new(
                format!("making {} on {}", spec.fstype, spec.device),
                why,
            ));
            return;
        }
    }
    let path = cx
        .current(&spec.device)
        .map(|b| b.path.clone())
        .unwrap_or_else(|| format!("<{}>", spec.device));
    let command = crate::op::argv::mkfs(
        spec.fstype,
        &geometry,
        spec.label.as_deref(),
        force,
        &spec.mkfs_options,
        &path,
    );
    cx.step(
        Action::Mkfs {
            device: spec.device.clone(),
            fstype: spec.fstype,
            label: spec.label.clone(),
            extra: spec.mkfs_options.clone(),
            stripes: spec.stripes,
            force,
            if_blank,
        },
        format!("{} ({why})", command.join(" ")),
        destructive,
    );
    cx.o.new_fs(&spec.device);
}

/// The most the device of `r` can hold once this plan made it, if that can be told
/// now: its size when it exists and stays, else what its declaration gives (a
/// namespace's raw size less the page map the default `map: dev` puts on it, 64 bytes
/// per 4 KiB page; a dm device from its members; a partition's declared size, or its
/// disk's). An upper bound: the kernel and the tools take a little more.
fn size_bound(cx: &Ctx, r: &DevRef, depth: usize) -> Option<Bytes> {
    if depth > 16 {
        return None; // a reference cycle (refused elsewhere)
    }
    // a device without a live table shows size 0: what it will be is in its declaration
    if let Some(bd) = cx.current(r).filter(|b| b.size.0 > 0) {
        return Some(bd.size.bytes());
    }
    match r {
        DevRef::Namespace(n) => {
            let spec = cx.d.namespace(n)?;
            // declared, or as found, or (converted whole) the region's fresh namespace,
            // or what the region has left; nothing known is no bound
            let raw = spec
                .size
                .or_else(|| cx.a.namespace_named(n).map(|ns| ns.size))
                .or_else(|| {
                    cx.a.namespaces
                        .iter()
                        .find(|ns| ns.region == spec.region && ns.is_fresh() && ns.name.is_none())
                        .map(|ns| ns.size)
                })
                .or_else(|| cx.a.region(&spec.region).map(|g| g.available_size))
                .filter(|b| !b.is_zero())?;
            Some(match (spec.mode, spec.map) {
                (
                    crate::args::NamespaceMode::Fsdax | crate::args::NamespaceMode::Devdax,
                    crate::args::MapMode::Dev,
                ) => Bytes(raw.0 - raw.0 / 64),
                _ => raw,
            })
        }
        DevRef::Device(n) => {
            let spec = cx.d.device(n)?;
            let sizes: Option<Vec<Bytes>> = spec
                .members
                .iter()
                .map(|m| size_bound(cx, m, depth + 1))
                .collect();
            let sizes = sizes?;
            Some(match spec.target {
                crate::args::DmTarget::Striped => {
                    let least = sizes.iter().min().copied().unwrap_or_default();
                    Bytes(least.0.saturating_mul(sizes.len() as u64))
                }
                _ => Bytes(sizes.iter().fold(0u64, |t, b| t.saturating_add(b.0))),
            })
        }
        DevRef::Partition(n) => {
            let spec = cx.d.partition(n)?;
            match spec.size {
                Some(s) => Some(s.bytes()),
                None => size_bound(cx, &spec.disk, depth + 1),
            }
        }
        DevRef::Volume(vg, lv) => cx.d.logical_volume(vg, lv)?.size,
        DevRef::Path(_) => None,
    }
}

/// Extent size hint wanted on an xfs root for 2 MiB allocations.
pub const XFS_EXTSIZE: Bytes = HUGE_PAGE;

/// Apply time: a mkfs step as its op, decided on the device as it is now.
///
/// | found now | planned over unknown content (`if_blank`) | allowed | outcome |
/// |---|---|---|---|
/// | a device mkfs.xfs cannot make this filesystem on | - | - | refuse |
/// | this very filesystem (type, geometry, size) | yes | - | skip |
/// | another filesystem | yes | no / yes | refuse / make it over the other (forced) |
/// | a partition table | yes | - | refuse |
/// | anything | no | - | make it (the plan allowed what it destroys) |
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let (d, a) = (bound.desired(), bound.actual());
    let refused = |why: String| Refused::new(action.doing(), why);
    let Action::Mkfs {
        device,
        fstype,
        label,
        extra,
        stripes,
        force,
        if_blank,
    } = action
    else {
        return Err(Refused::not_mine(action, Layer::Filesystem));
    };
    let b = bound.existing(device).map_err(refused)?;
    // a filesystem mkfs.xfs cannot make on the device as it came out (the planner
    // judged an upper bound of its size): refused before mkfs prints its usage text
    let geometry = dax_geometry(*fstype, extra, *stripes);
    if let Some(why) = crate::geometry::xfs_cannot_fit(b.size.bytes(), &geometry, extra) {
        return Err(refused(why));
    }
    // a filesystem whose mkfs never finished holds nothing: it is made over (forced)
    let unfinished = a.filesystem(b.devno).is_some_and(|f| f.incomplete);
    let found = a.filesystem(b.devno).filter(|f| !f.incomplete);
    if *if_blank {
        if let Some(fs) = found {
            // what this mkfs would make: only that very filesystem counts as found
            let expected = expected_geometry(*fstype, extra, *stripes);
            let same = fs.fstype == fstype.as_str()
                && geometry_problems(*fstype, expected, fs).is_empty()
                && fs.size.is_none_or(|s| s <= b.size.bytes());
            if same {
                return Ok(Resolved::Skip(format!(
                    "{} already holds {} with this geometry (built over existing data)",
                    b.path, fs.fstype
                )));
            }
            // with allow_data_loss it is made over the other one (forced)
            if !d.allow_data_loss {
                return Err(Refused::losing_data(
                    action.doing(),
                    format!(
                        "{} turned out to hold {} (other geometry or size) once it appeared",
                        b.path, fs.fstype
                    ),
                ));
            }
        } else if a.gpt(b.devno).is_some() {
            return Err(refused(format!(
                "{} turned out to hold a partition table once it appeared",
                b.path
            )));
        }
    }
    Ok(Resolved::Run(Op::Mkfs {
        geometry,
        fstype: *fstype,
        label: label.clone(),
        // a conditional mkfs that runs over another filesystem (allowed above, with
        // allow_data_loss) overwrites it
        force: *force || unfinished || (*if_blank && found.is_some()),
        extra: extra.clone(),
        device: bound.dev_id(device).map_err(refused)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::Devno;

    /// The command line a planned mkfs runs: the planner's geometry, the real system's
    /// words.
    fn mkfs_argv(
        fstype: FsType,
        device: &str,
        label: Option<&str>,
        extra: &[String],
        stripes: u32,
        force: bool,
    ) -> Vec<String> {
        let geometry = dax_geometry(fstype, extra, stripes);
        crate::op::argv::mkfs(fstype, &geometry, label, force, extra, device)
    }

    fn fs(t: &str, su: u32, sw: u32, reflink: Option<bool>) -> Filesystem {
        Filesystem {
            device: Devno { major: 1, minor: 1 },
            fstype: t.into(),
            uuid: None,
            label: None,
            block_size: Some(PAGE),
            stripe_unit: Some(su),
            stripe_width: Some(sw),
            reflink,
            size: None,
            incomplete: false,
        }
    }

    #[test]
    fn argv_carries_the_dax_geometry() {
        assert_eq!(
            mkfs_argv(FsType::Ext4, "/dev/pmem0", None, &[], 1, false).join(" "),
            "mkfs.ext4 -q -b 4096 -E stride=512 /dev/pmem0"
        );
        assert_eq!(
            mkfs_argv(
                FsType::Ext4,
                "/dev/mapper/s",
                Some("d"),
                &["-m".into(), "0".into()],
                2,
                true
            )
            .join(" "),
            "mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=1024 -L d -m 0 /dev/mapper/s"
        );
        assert_eq!(
            mkfs_argv(FsType::Xfs, "/dev/mapper/s", None, &[], 2, false).join(" "),
            "mkfs.xfs -q -m reflink=0 -d su=2m,sw=2 /dev/mapper/s"
        );
    }

    #[test]
    fn the_users_geometry_replaces_the_default() {
        let extra = ["-d".to_string(), "su=1m,sw=2".to_string()];
        assert_eq!(
            mkfs_argv(FsType::Xfs, "/dev/x", None, &extra, 2, false).join(" "),
            "mkfs.xfs -q -m reflink=0 -d su=1m,sw=2 /dev/x"
        );
        let extra = [
            "-E".to_string(),
            "stride=256".to_string(),
            "-b".to_string(),
            "4096".to_string(),
        ];
        assert_eq!(
            mkfs_argv(FsType::Ext4, "/dev/x", None, &extra, 1, false).join(" "),
            "mkfs.ext4 -q -E stride=256 -b 4096 /dev/x"
        );
        // an -E without geometry keeps ours
        let extra = ["-E".to_string(), "lazy_itable_init=0".to_string()];
        assert!(mkfs_argv(FsType::Ext4, "/dev/x", None, &extra, 1, false)
            .join(" ")
            .contains("-E stride=512 -E lazy_itable_init=0"));
    }

    /// Where the planner read only a flag word followed by its value word and validation
    /// read the words as getopt does, getopt's reading now decides both what the planner
    /// leaves to the user and the superblock it expects; each tool reads its own options.
    #[test]
    fn the_users_words_are_read_as_mkfs_reads_them() {
        use FsType::{Ext4, Xfs};
        let w = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let argv = |fstype, extra: &[String], stripes| {
            mkfs_argv(fstype, "/dev/x", None, extra, stripes, false).join(" ")
        };
        let layout = |stripe_unit, stripe_width, reflink| Layout {
            stripe_unit,
            stripe_width,
            reflink,
        };
        // a value attached to its option, or an option ending a cluster: the user's
        // value, not ours as well (mke2fs made the user's stride while the planner
        // expected ours; mkfs.xfs refuses an option "respecified"); sunit/swidth
        // (512-byte sectors) leave ours out and are read (the planner expected 0 and 0)
        #[rustfmt::skip]
        let cases = [
            (Ext4, "-Estride=256", 1, "-b 4096", layout(256, 0, true)),
            (Ext4, "-qE stride=256", 1, "-b 4096", layout(256, 0, true)),
            (Ext4, "-b4096", 1, "-E stride=512", layout(512, 0, true)),
            (Xfs, "-dsu=1m,sw=4", 2, "-m reflink=0", layout(256, 1024, false)),
            (Xfs, "-Kd su=1m,sw=4", 2, "-m reflink=0", layout(256, 1024, false)),
            (Xfs, "-mreflink=1", 1, "-d su=2m,sw=1", layout(512, 512, true)),
            (Xfs, "-m reflink", 1, "-d su=2m,sw=1", layout(512, 512, true)),
            (Xfs, "-d sunit=2048,swidth=4096", 2, "-m reflink=0", layout(256, 512, false)),
        ];
        for (fstype, words, stripes, ours, made) in cases {
            let extra = w(&words.split(' ').collect::<Vec<_>>());
            assert_eq!(
                argv(fstype, &extra, stripes),
                format!("mkfs.{fstype} -q {ours} {} /dev/x", extra.join(" "))
            );
            assert_eq!(
                expected_geometry(fstype, &extra, stripes),
                made,
                "{extra:?}"
            );
        }
        // a word that is another option's value is no option: `-L -b` is a label, and
        // our block size stays
        assert_eq!(
            dax_geometry(
                FsType::Ext4,
                &w(&["-L", "-b", "-E", "lazy_itable_init=0"]),
                1
            ),
            FsGeometry::Ext4 {
                block_size: Some(PAGE),
                stripe: Some(Ext4Stripe {
                    stride: STRIPE_UNIT_BLOCKS,
                    stripe_width: None
                })
            }
        );
        // one tool's option is not the other's: mkfs.xfs has no -E, mke2fs's -d is
        // the directory to copy in (the layout took both for stripe geometry)
        assert_eq!(
            expected_geometry(FsType::Xfs, &w(&["-E", "stride=16"]), 2),
            layout(512, 1024, false)
        );
        assert_eq!(
            expected_geometry(FsType::Ext4, &w(&["-d", "su=1m"]), 1),
            layout(512, 0, true)
        );
    }

    #[test]
    fn geometry() {
        let xfs2 = expected_geometry(FsType::Xfs, &[], 2);
        let ext1 = expected_geometry(FsType::Ext4, &[], 1);
        let ext2 = expected_geometry(FsType::Ext4, &[], 2);
        assert_eq!(
            xfs2,
            Layout {
                stripe_unit: 512,
                stripe_width: 1024,
                reflink: false
            }
        );
        assert!(
            geometry_problems(FsType::Xfs, xfs2, &fs("xfs", 512, 1024, Some(false))).is_empty()
        );
        assert!(geometry_problems(FsType::Ext4, ext1, &fs("ext4", 512, 0, None)).is_empty());
        let p = geometry_problems(FsType::Xfs, xfs2, &fs("xfs", 0, 0, Some(true)));
        assert_eq!(p.len(), 3, "{p:?}");
        let p = geometry_problems(FsType::Ext4, ext2, &fs("ext4", 512, 512, None));
        assert_eq!(p, vec!["stripe_width=512 blocks (want 1024)".to_string()]);
    }
}
