//! Boot persistence files: written, removed, the daemon-reload and its pending mark
//! (as the real system keeps it); the saved states a boot replays.

use super::FakeSystem;
use crate::actual::FileContent;

impl FakeSystem {
    /// The saved states, as `pmem_stack --boot` without a file finds them: `(path, text)`
    /// in replay order (the legacy file, then `state.d` by name), for `crate::replay`
    /// after a [`reboot`](Self::reboot). Files survive a reboot (all but /run). The fake
    /// does not run units: the tests model what systemd does with them.
    pub fn saved_states(&self) -> Vec<(String, Result<String, String>)> {
        crate::boot::saved_states(&self.state)
            .into_iter()
            .map(|s| {
                let text = match self.state.file(&s.path).map(|f| &f.content) {
                    Some(crate::actual::FileContent::Text { text }) => Ok(text.clone()),
                    _ => Err(format!("{}: not a text file", s.path)),
                };
                (s.path, text)
            })
            .collect()
    }

    /// A file written (atomically, as the real system does), or a link.
    pub(super) fn write_file(&mut self, path: &str, content: &FileContent, mode: u32) {
        self.before_unit_change(path);
        let f = crate::actual::FileState {
            path: path.to_string(),
            content: content.clone(),
            mode: Some(mode),
        };
        match self.state.files.iter_mut().find(|x| x.path == path) {
            Some(slot) => *slot = f,
            None => self.state.files.push(f),
        }
    }

    /// A file removed.
    pub(super) fn remove_file(&mut self, path: &str) {
        self.before_unit_change(path);
        self.state.files.retain(|f| f.path != path)
    }

    /// `systemctl daemon-reload`: the pending mark cleared.
    pub(super) fn daemon_reload(&mut self) {
        self.state
            .files
            .retain(|f| f.path != crate::boot::RELOAD_PENDING);
    }

    /// As the real system: a unit change marks the daemon-reload pending.
    fn before_unit_change(&mut self, path: &str) {
        let pending = crate::boot::RELOAD_PENDING;
        if crate::boot::is_unit_path(path) && self.state.file(pending).is_none() {
            self.state
                .files
                .push(crate::boot::reload_pending_marker(path));
        }
    }
}
