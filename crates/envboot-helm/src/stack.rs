//! Deep recursion without a stack overflow.
//!
//! Go's goroutine stacks grow on demand (up to 1 GB), so Helm renders templates nested far deeper
//! than a fixed Rust thread stack holds: 300,000 nested `{{ if }}`, `{{ template }}` recursion to
//! Go's limit of 100,000, values nested to go-yaml's limit of 10,000. Every recursive path of the
//! renderer (parser, executor, YAML reader and writers, value copies) enters its next level through
//! [`deep`], which continues on a fresh heap-allocated stack segment when the current one is nearly
//! used up (the `stacker` crate, which rustc uses for the same reason). The depth limits stay Go's
//! and Helm's; the Rust stack is no longer what ends a render.

/// Room one level may use before the next check (the largest frames are well under this).
const RED_ZONE: usize = 256 * 1024;
/// A new segment's size: small enough to be cheap, large enough to be rare.
const SEGMENT: usize = 8 * 1024 * 1024;

/// Run `f`, on a new stack segment if little of the current one is left.
#[inline]
pub(crate) fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
