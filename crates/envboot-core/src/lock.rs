//! The health of an environment's lock while a run holds it: the renewer marks it lost when a
//! renewal fails, and the engine checks it before every write.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct LockHealth {
    lost: Mutex<Option<String>>,
}

impl LockHealth {
    /// Marks the lock lost, with why (the first reason is kept).
    pub fn lose(&self, why: String) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert(why);
        }
    }

    /// Why the lock was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }
}

/// The host and process id in a holder identity (`envboot CMD (user@host, pid N)`), the form
/// both locks (the Lease and the AWS key pair) record their holder in.
pub fn host_and_pid(holder: &str) -> Option<(&str, u32)> {
    let inner = holder.strip_suffix(')')?;
    let (rest, pid) = inner.rsplit_once(", pid ")?;
    let (_, host) = rest.rsplit_once('@')?;
    Some((host, pid.parse().ok()?))
}
