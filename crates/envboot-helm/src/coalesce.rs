//! Values as Helm computes them (its chartutil `coalesce.go` and `mergeMaps`): chart defaults,
//! then values files, then `--set`; subcharts get their section and the shared `global`. The
//! order and the treatment of `null` (which deletes a default) follow Helm exactly.

use std::collections::BTreeMap;

use crate::value::{self, Value};
use crate::{Error, Loaded};

/// Helm's `mergeMaps` for values files.
pub(crate) fn merge_maps(a: &Value, b: &Value) -> Value {
    crate::stack::deep(|| merge_maps_inner(a, b))
}

fn merge_maps_inner(a: &Value, b: &Value) -> Value {
    let (Value::Map(a), Value::Map(b)) = (a, b) else {
        return b.clone();
    };
    let mut out = a.borrow().clone();
    for (k, v) in b.borrow().iter() {
        if let Value::Map(_) = v {
            if let Some(av @ Value::Map(_)) = out.get(k) {
                let merged = merge_maps(av, v);
                out.insert(k.clone(), merged);
                continue;
            }
        }
        out.insert(k.clone(), v.clone());
    }
    Value::map(out)
}

/// Helm's `coalesceTablesFullKey`: `dst` (higher precedence) over `src`, in place.
fn coalesce_tables(dst: &value::MapRef, src: &value::MapRef, merge: bool) {
    crate::stack::deep(|| coalesce_tables_inner(dst, src, merge))
}

fn coalesce_tables_inner(dst: &value::MapRef, src: &value::MapRef, merge: bool) {
    let src_entries = value::entries(src);
    for (k, sv) in src_entries {
        let dv = dst.borrow().get(&k).cloned();
        match dv {
            Some(Value::Nil) if !merge => {
                dst.borrow_mut().remove(&k);
            }
            None => {
                dst.borrow_mut().insert(k, sv.deep_copy());
            }
            Some(Value::Map(d)) => {
                if let Value::Map(s) = &sv {
                    coalesce_tables(&d, s, merge);
                }
            }
            Some(_) => {}
        }
    }
}

/// Helm's `coalesceValues`: user values over chart defaults, `null` deleting a default.
fn coalesce_values(defaults: &Value, user: &value::MapRef, subchart_names: &[String]) {
    let Value::Map(defaults) = defaults.deep_copy() else {
        return;
    };
    let entries = value::entries(&defaults);
    for (k, dv) in entries {
        let uv = user.borrow().get(&k).cloned();
        match uv {
            Some(Value::Nil) => {
                user.borrow_mut().remove(&k);
            }
            Some(Value::Map(u)) => {
                if let Value::Map(d) = &dv {
                    let merge = subchart_names.contains(&k);
                    coalesce_tables(&u, d, merge);
                }
            }
            Some(_) => {}
            None => {
                user.borrow_mut().insert(k, dv);
            }
        }
    }
}

fn coalesce_globals(dest: &value::MapRef, src: &value::MapRef) {
    let sg = match src.borrow().get("global") {
        Some(Value::Map(m)) => m.borrow().clone(),
        _ => BTreeMap::new(),
    };
    let dg = match dest.borrow().get("global") {
        Some(Value::Map(m)) => m.borrow().clone(),
        _ => BTreeMap::new(),
    };
    let mut dg = dg;
    for (k, v) in sg {
        match &v {
            Value::Map(sv) => {
                let vv = Value::Map(sv.clone()).deep_copy();
                match dg.get(&k) {
                    None => {
                        dg.insert(k, vv);
                    }
                    Some(Value::Map(dm)) => {
                        if let Value::Map(vm) = &vv {
                            coalesce_tables(vm, dm, true);
                        }
                        dg.insert(k, vv);
                    }
                    Some(_) => {}
                }
            }
            _ => {
                if !matches!(dg.get(&k), Some(Value::Map(_))) {
                    dg.insert(k, v);
                }
            }
        }
    }
    dest.borrow_mut().insert("global".into(), Value::map(dg));
}

/// `coalesce` for a chart and its dependencies; returns the chart's values.
pub(crate) fn chart_values(chart: &Loaded, user: &value::MapRef) -> Result<(), Error> {
    let names: Vec<String> = chart.subcharts.iter().map(|s| s.name.clone()).collect();
    coalesce_values(&chart.defaults, user, &names);
    for sub in &chart.subcharts {
        let existing = user.borrow().get(&sub.name).cloned();
        let sv = match existing {
            None | Some(Value::Nil) => {
                let m = Value::empty_map();
                user.borrow_mut().insert(sub.name.clone(), m.clone());
                m
            }
            Some(v @ Value::Map(_)) => v,
            Some(_) => {
                return Err(Error::Values(format!(
                    "type mismatch on {}: {}",
                    sub.name, "not a table"
                )))
            }
        };
        if let Value::Map(sm) = &sv {
            coalesce_globals(sm, user);
            chart_values(sub, sm)?;
        }
    }
    Ok(())
}
