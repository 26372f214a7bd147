//! The last line of defence for secrets: decrypted values are registered once, and
//! [`redact`] masks them in anything printed.

/// What is shown in place of a secret value.
pub const SENSITIVE: &str = "(sensitive)";

/// Values of length at least this are masked wherever they appear in output (shorter ones
/// would mask ordinary words; Secret data is masked whatever its length).
pub const MIN_REDACTED_LEN: usize = 4;

/// The shortest line of a multi-line secret that is masked on its own.
pub const MIN_REDACTED_LINE: usize = 8;

static SENSITIVE_VALUES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The forms a value takes in what envboot prints: itself, base64 (Secret data), JSON- and
/// Go-escaped (inside a quoted string: diffs, JSON plans, errors), and each of its lines (a key
/// or certificate printed line by line in YAML). Forms shorter than [`MIN_REDACTED_LEN`] are
/// left out.
pub fn forms(value: &str) -> Vec<String> {
    use base64::Engine;
    let mut out = vec![
        value.to_string(),
        base64::engine::general_purpose::STANDARD.encode(value),
    ];
    if let Ok(quoted) = serde_json::to_string(value) {
        // Without the quotes: the value may sit inside a longer string.
        out.push(quoted[1..quoted.len() - 1].to_string());
    }
    out.push(value.escape_debug().to_string());
    out.retain(|f| f.len() >= MIN_REDACTED_LEN);
    // A line of a multi-line value must be long enough not to be an ordinary word.
    if value.contains('\n') {
        out.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= MIN_REDACTED_LINE)
                .map(str::to_string),
        );
    }
    out
}

/// Registers decrypted values (in every form of [`forms`]) so that [`redact`] masks them.
pub fn register_sensitive<'a>(values: impl IntoIterator<Item = &'a str>) {
    let Ok(mut known) = SENSITIVE_VALUES.lock() else {
        return;
    };
    for v in values {
        if v.len() >= MIN_REDACTED_LEN {
            known.extend(forms(v));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escaped_and_multi_line_secrets_are_masked_in_each_form() {
        let secret = "pa\"ss\nword-line-two";
        register_sensitive([secret]);
        let json = serde_json::to_string(secret).unwrap_or_default();
        assert_eq!(redact(&format!("a {json} b")), "a \"(sensitive)\" b");
        assert_eq!(redact("value: word-line-two"), "value: (sensitive)");
        assert!(!redact(&format!("{secret:?}")).contains("word-line-two"));
        assert_eq!(redact("ab"), "ab");
    }
}
