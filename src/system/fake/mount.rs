//! Mounts: mount(2) with the DAX the device and the kernel give (xfs turns DAX off
//! silently, ext4 refuses; a kernel before 5.8 knows only a bare `dax`), remount,
//! umount, the root's extent size hint; and the checks after mounting.

use super::FakeSystem;
use crate::actual::{DaxSyntax, Devno, Extsize, Mount, NsMount};
use crate::args::DaxMode;
use crate::system::{DaxCheck, DevId, SystemError};
use crate::units::Bytes;

impl FakeSystem {
    /// mount(2) of `source` on `target` as `fstype` with `options`.
    pub(super) fn mount(
        &mut self,
        source: &DevId,
        target: &str,
        fstype: &str,
        options: &[String],
    ) -> Result<(), SystemError> {
        let bd = self.device(source, "mount", "no device")?;
        let fs = self.state.filesystem(bd.devno).cloned().ok_or_else(|| {
            Self::fail(
                "mount",
                format!("{}: wrong fs type, bad superblock", bd.path),
            )
        })?;
        if fs.fstype != *fstype {
            return Err(Self::fail(
                "mount",
                format!("{} is {}, not {fstype}", bd.path, fs.fstype),
            ));
        }
        // xfs refuses a superblock its mkfs left in progress
        if fs.incomplete {
            return Err(Self::fail(
                "mount",
                format!("{}: EUCLEAN: Structure needs cleaning", bd.path),
            ));
        }
        if self.state.mount_at(target).is_some() {
            return Err(Self::fail(
                "mount",
                format!("{target} is already a mount point"),
            ));
        }
        // the kernel of `state.platform.kernel`: before 5.8 only a bare `dax`
        let syntax = self.state.dax_syntax();
        Self::dax_options_known(syntax, options, "mount")?;
        let wanted = options.iter().find_map(|o| match o.as_str() {
            "dax" => Some(DaxMode::Always),
            o => o.strip_prefix("dax=").map(|d| match d {
                "always" => DaxMode::Always,
                "inode" => DaxMode::Inode,
                _ => DaxMode::Never,
            }),
        });
        let dax = match wanted {
            Some(DaxMode::Always | DaxMode::Inode) if !bd.dax => {
                if fstype == "ext4" {
                    return Err(Self::fail(
                        "mount",
                        format!("{}: DAX unsupported by block device", bd.path),
                    ));
                }
                Some(DaxMode::Never) // xfs turns DAX off silently
            }
            other => other.or(Some(DaxMode::Never)),
        };
        let mut opts: Vec<String> = vec!["rw".into()];
        opts.extend(
            options
                .iter()
                .filter(|o| *o != "dax" && !o.starts_with("dax="))
                .cloned(),
        );
        // as mountinfo shows it: `dax=MODE` from 5.8, `dax` or nothing before
        let shown = match (syntax, dax) {
            (DaxSyntax::Modes, Some(d)) => Some(format!("dax={}", d.as_str())),
            (DaxSyntax::Flag, Some(DaxMode::Always | DaxMode::Inode)) => Some("dax".to_string()),
            _ => None,
        };
        opts.extend(shown);
        self.state.mounts.push(Mount {
            target: target.to_string(),
            devno: bd.devno,
            source: bd.path.clone(),
            fstype: fstype.to_string(),
            options: opts,
            dax,
            root_extsize: (fstype == "xfs").then(|| {
                fs.uuid
                    .as_ref()
                    .and_then(|u| self.extsize_by_fs.get(u).copied())
                    .unwrap_or(Extsize {
                        size: Bytes(0),
                        inherit: false,
                    })
            }),
        });
        Ok(())
    }

    /// mount(2) with MS_REMOUNT: the options added.
    pub(super) fn remount(&mut self, target: &str, options: &[String]) -> Result<(), SystemError> {
        Self::dax_options_known(self.state.dax_syntax(), options, "remount")?;
        let m = self.top_mount(target, "remount")?;
        for o in options {
            if !m.options.contains(o) {
                m.options.push(o.clone());
            }
        }
        Ok(())
    }

    /// The mount on top at `target` (`what` fails when nothing is mounted there).
    fn top_mount(&mut self, target: &str, what: &str) -> Result<&mut Mount, SystemError> {
        self.state
            .mounts
            .iter_mut()
            .rev()
            .find(|m| m.target == *target)
            .ok_or_else(|| Self::fail(what, format!("{target}: not mounted")))
    }

    /// umount(2) of the top mount at `target`: EBUSY while a file on it is open,
    /// unless `lazy` (MNT_DETACH), which detaches it at once (the filesystem lives on
    /// until its files are closed).
    pub(super) fn umount(
        &mut self,
        target: &str,
        lazy: bool,
        when_busy: &str,
    ) -> Result<(), SystemError> {
        let i = self
            .state
            .mounts
            .iter()
            .rposition(|m| m.target == *target)
            .ok_or_else(|| Self::fail("umount", format!("{target}: not mounted")))?;
        let devno = self.state.mounts[i].devno;
        let t = target.trim_end_matches('/');
        if let Some(f) = self.open_files.iter().find(|f| {
            f.on_fs
                && f.devno == devno
                && f.path.strip_prefix(t).is_some_and(|r| r.starts_with('/'))
        }) {
            if !lazy {
                return Err(Self::fail(
                    "umount",
                    format!(
                        "{target}: target is busy ({} is open: {}); refused ({when_busy})",
                        f.path, f.by
                    ),
                ));
            }
        }
        self.state.mounts.remove(i);
        Ok(())
    }

    /// A sandboxed service starts now (systemd's `ProtectSystem=`, as systemd-logind):
    /// its new mount namespace `ns` holds a copy of every block-device mount there is,
    /// which an umount in ours does not reach (no propagation is modelled).
    pub fn start_sandboxed_service(&mut self, comm: &str, pid: u32, ns: u64) {
        let copies: Vec<NsMount> = self
            .state
            .mounts
            .iter()
            .map(|m| NsMount {
                ns,
                pid,
                comm: comm.to_string(),
                target: m.target.clone(),
                devno: m.devno,
            })
            .collect();
        self.state.elsewhere.extend(copies);
    }

    /// umount(2) of `target` (of `devno`) in the namespaces of `copies`; a namespace
    /// without it (gone, or unmounted meanwhile) has nothing to do.
    pub(super) fn umount_elsewhere(&mut self, target: &str, devno: Devno, copies: &[NsMount]) {
        self.state.elsewhere.retain(|m| {
            !(m.target == target && m.devno == devno && copies.iter().any(|c| c.ns == m.ns))
        });
    }

    /// FS_IOC_FSSETXATTR on the root: the hint, inherited, kept with the filesystem.
    pub(super) fn set_extsize(&mut self, target: &str, size: &Bytes) -> Result<(), SystemError> {
        let m = self.top_mount(target, "FS_IOC_FSSETXATTR")?;
        let e = Extsize {
            size: *size,
            inherit: true,
        };
        m.root_extsize = Some(e);
        let devno = m.devno;
        if let Some(u) = self.state.filesystem(devno).and_then(|f| f.uuid.clone()) {
            self.extsize_by_fs.insert(u, e);
        }
        Ok(())
    }

    /// A kernel before 5.8 refuses `dax=MODE` ("Unrecognized mount option").
    fn dax_options_known(
        syntax: DaxSyntax,
        options: &[String],
        what: &str,
    ) -> Result<(), SystemError> {
        match options.iter().find(|o| o.starts_with("dax=")) {
            Some(o) if syntax == DaxSyntax::Flag => Err(Self::fail(
                what,
                format!("Unrecognized mount option \"{o}\" or missing value"),
            )),
            _ => Ok(()),
        }
    }

    /// A new file on the filesystem at `mount_point` has DAX when it is mounted with
    /// dax=always (and the kernel is not one that shows the option but gives no DAX).
    pub(super) fn statx_dax(&self, mount_point: &str) -> Result<DaxCheck, SystemError> {
        let m = self
            .state
            .mount_at(mount_point)
            .ok_or_else(|| Self::fail("dax check", format!("{mount_point}: not mounted")))?;
        let statx_dax = m.dax == Some(DaxMode::Always) && !self.files_without_dax;
        Ok(DaxCheck {
            statx_dax,
            kernel_log: if statx_dax {
                Vec::new()
            } else {
                vec![format!(
                    "{}: DAX unsupported by block device. Turning off DAX.",
                    m.source
                )]
            },
        })
    }
}
