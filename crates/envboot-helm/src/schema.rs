//! A minimal JSON-schema check of values (`values.schema.json`): type, required, properties,
//! additionalProperties, items, enum, const, minimum/maximum, minLength/maxLength, pattern.

use super::value::Value;
use super::yaml;

pub fn validate(schema_text: &str, values: &Value) -> Result<(), String> {
    let schema = yaml::from_json(schema_text).map_err(|e| format!("- invalid schema: {e}"))?;
    let mut errs = Vec::new();
    check(&schema, values, "", &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

fn get(schema: &Value, k: &str) -> Option<Value> {
    match schema {
        Value::Map(m) => m.borrow().get(k).cloned(),
        _ => None,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => matches!(v, Value::Map(_)),
        "array" => matches!(v, Value::List(_)),
        "string" => matches!(v, Value::Str(_)),
        "boolean" => matches!(v, Value::Bool(_)),
        "null" => v.is_nil(),
        "number" => matches!(v, Value::Int(_) | Value::Float(_)),
        "integer" => match v {
            Value::Int(_) => true,
            Value::Float(f) => f.fract() == 0.0,
            _ => false,
        },
        _ => true,
    }
}

fn type_word(v: &Value) -> &'static str {
    match v {
        Value::Map(_) => "object",
        Value::List(_) => "array",
        Value::Str(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Nil => "null",
        Value::Int(_) => "integer",
        Value::Float(f) if f.fract() == 0.0 => "integer",
        Value::Float(_) => "number",
        Value::Obj(_) => "object",
    }
}

fn check(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    crate::stack::deep(|| check_inner(schema, v, path, errs))
}

fn check_inner(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let at = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    if let Some(t) = get(schema, "type") {
        let types: Vec<String> = match &t {
            Value::Str(s) => vec![s.to_string()],
            Value::List(l) => l
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| type_ok(t, v)) {
            errs.push(format!(
                "- at '{at}': got {}, want {}",
                type_word(v),
                types.join(" or ")
            ));
            return;
        }
    }
    if let Some(Value::List(e)) = get(schema, "enum") {
        if !e.iter().any(|x| super::value::deep_equal(&num(x), &num(v))) {
            errs.push(format!(
                "- at '{at}': value must be one of the enumerated values"
            ));
        }
    }
    if let Some(c) = get(schema, "const") {
        if !super::value::deep_equal(&num(&c), &num(v)) {
            errs.push(format!("- at '{at}': value must be the constant"));
        }
    }
    if let (Some(min), Value::Float(_) | Value::Int(_)) = (get(schema, "minimum"), v) {
        if super::funcs::to_f64(v) < super::funcs::to_f64(&min) {
            errs.push(format!(
                "- at '{at}': minimum: got {}, want {}",
                super::value::to_v(v),
                super::value::to_v(&min)
            ));
        }
    }
    if let (Some(max), Value::Float(_) | Value::Int(_)) = (get(schema, "maximum"), v) {
        if super::funcs::to_f64(v) > super::funcs::to_f64(&max) {
            errs.push(format!(
                "- at '{at}': maximum: got {}, want {}",
                super::value::to_v(v),
                super::value::to_v(&max)
            ));
        }
    }
    if let Value::Str(s) = v {
        if let Some(p) = get(schema, "pattern").and_then(|p| p.as_str().map(String::from)) {
            if let Ok(re) = regex::Regex::new(&p) {
                if !re.is_match(s) {
                    errs.push(format!("- at '{at}': '{s}' does not match pattern '{p}'"));
                }
            }
        }
        if let Some(n) = get(schema, "minLength") {
            if (s.chars().count() as f64) < super::funcs::to_f64(&n) {
                errs.push(format!(
                    "- at '{at}': minLength: got {}, want {}",
                    s.chars().count(),
                    super::value::to_v(&n)
                ));
            }
        }
        if let Some(n) = get(schema, "maxLength") {
            if (s.chars().count() as f64) > super::funcs::to_f64(&n) {
                errs.push(format!(
                    "- at '{at}': maxLength: got {}, want {}",
                    s.chars().count(),
                    super::value::to_v(&n)
                ));
            }
        }
    }
    if let Value::Map(m) = v {
        if let Some(Value::List(req)) = get(schema, "required") {
            let missing: Vec<String> = req
                .iter()
                .filter_map(|r| r.as_str().map(String::from))
                .filter(|r| !m.borrow().contains_key(r))
                .map(|r| format!("'{r}'"))
                .collect();
            if !missing.is_empty() {
                errs.push(format!(
                    "- at '{at}': missing property {}",
                    missing.join(", ")
                ));
            }
        }
        let props = get(schema, "properties");
        let entries: Vec<(String, Value)> = m
            .borrow()
            .iter()
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect();
        for (k, x) in entries {
            let sub = props.as_ref().and_then(|p| get(p, &k));
            match sub {
                Some(s) => check(&s, &x, &format!("{path}/{k}"), errs),
                None => {
                    if let Some(Value::Bool(false)) = get(schema, "additionalProperties") {
                        errs.push(format!(
                            "- at '{at}': additional properties '{k}' not allowed"
                        ));
                    } else if let Some(ap @ Value::Map(_)) = get(schema, "additionalProperties") {
                        check(&ap, &x, &format!("{path}/{k}"), errs);
                    }
                }
            }
        }
    }
    if let (Value::List(l), Some(items)) = (v, get(schema, "items")) {
        for (i, x) in l.iter().enumerate() {
            check(&items, x, &format!("{path}/{i}"), errs);
        }
    }
}

fn num(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::Float(*i as f64),
        v => v.clone(),
    }
}
