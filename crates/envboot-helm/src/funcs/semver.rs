//! Sprig's `semver` and `semverCompare` (Masterminds semver, in `crate::semver`).

use std::rc::Rc;

use super::{call_err, Args, Registry};
use crate::exec::FnResult;
use crate::semver as sv;
use crate::value::{Obj, Value};

pub(super) fn register(r: &mut Registry) {
    r.pure("semver", semver);
    r.pure("semverCompare", semver_compare);
}

fn semver(a: Args) -> FnResult {
    a.want(1)?;
    let v = sv::Version::parse(&a.s(0)?).map_err(call_err)?;
    Ok(Value::Obj(Rc::new(Obj::Semver(v))))
}

fn semver_compare(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(
        sv::compare(&a.s(0)?, &a.s(1)?).map_err(call_err)?,
    ))
}
