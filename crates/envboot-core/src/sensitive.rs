//! The last line of defence for secrets: decrypted values are registered once, and
//! [`redact`] masks them in anything printed.

/// What is shown in place of a secret value.
pub const SENSITIVE: &str = "(sensitive)";

/// Values of length at least this are masked wherever they appear in output (shorter ones
/// would mask ordinary words; Secret data is masked whatever its length).
pub const MIN_REDACTED_LEN: usize = 4;

static SENSITIVE_VALUES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Registers decrypted values (and their base64 forms) so that [`redact`] masks them.
pub fn register_sensitive<'a>(values: impl IntoIterator<Item = &'a str>) {
    use base64::Engine;
    let Ok(mut known) = SENSITIVE_VALUES.lock() else {
        return;
    };
    for v in values {
        if v.len() >= MIN_REDACTED_LEN {
            known.push(v.to_string());
            known.push(base64::engine::general_purpose::STANDARD.encode(v));
        }
    }
    // Longest first, so that a value containing another is masked whole.
    known.sort_by_key(|v| std::cmp::Reverse(v.len()));
    known.dedup();
}

/// `text` with every registered secret value replaced by [`SENSITIVE`]: the last line of
/// defence for anything printed (output, errors, events), beyond the masking of Secret data.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let Ok(known) = SENSITIVE_VALUES.lock() else {
        return std::borrow::Cow::Borrowed(text);
    };
    if !known.iter().any(|v| text.contains(v.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in known.iter() {
        out = out.replace(v.as_str(), SENSITIVE);
    }
    std::borrow::Cow::Owned(out)
}
