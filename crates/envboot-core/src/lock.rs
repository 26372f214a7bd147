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
