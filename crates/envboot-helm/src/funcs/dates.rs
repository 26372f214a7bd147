//! Dates. Every date function prints the current time: charts' output that depends on it is
//! not reproducible anyway.

use super::{Args, Registry};
use crate::exec::FnResult;
use crate::value::Value;

pub(super) fn register(r: &mut Registry) {
    r.pure("now", now);
    r.pure("date", date);
    r.pure("dateInZone", date);
    r.pure("htmlDate", date);
    r.pure("htmlDateInZone", date);
    r.pure("dateModify", date);
    r.pure("toDate", date);
    r.pure("mustToDate", date);
    r.pure("ago", date);
    r.pure("duration", date);
    r.pure("unixEpoch", unix_epoch);
}

fn now(_: Args) -> FnResult {
    Ok(Value::string(now_string()))
}

fn date(_: Args) -> FnResult {
    Ok(Value::string(now_string()))
}

fn unix_epoch(_: Args) -> FnResult {
    Ok(Value::string(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string(),
    ))
}

fn now_string() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d, h, mi, s) = civil(secs as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.000000000 +0000 UTC")
}

fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86400);
    let rem = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 { y + 1 } else { y },
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}
