//! Mounts (to be written).
use crate::actual::Mount;
use crate::plan::resolve::DevId;
use crate::system::{Output, SystemError};
use crate::units::Bytes;

fn todo(what: &str) -> SystemError {
    SystemError::Unavailable {
        msg: format!("{what} is not implemented yet"),
    }
}
/// Mounts from mountinfo.
pub fn probe() -> Result<Vec<Mount>, SystemError> {
    Ok(Vec::new())
}
/// mount(2).
pub fn mount(_s: &DevId, _t: &str, _f: &str, _o: &[String]) -> Result<Output, SystemError> {
    Err(todo("mount"))
}
/// Remount.
pub fn remount(_t: &str, _o: &[String]) -> Result<Output, SystemError> {
    Err(todo("remount"))
}
/// umount(2).
pub fn umount(_t: &str) -> Result<Output, SystemError> {
    Err(todo("umount"))
}
/// Extsize.
pub fn set_extsize(_t: &str, _s: Bytes) -> Result<Output, SystemError> {
    Err(todo("extsize"))
}
