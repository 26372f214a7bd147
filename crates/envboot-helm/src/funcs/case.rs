//! Sprig's case conversions, which are huandu/xstrings': `snakecase` and `kebabcase`
//! (`ToSnakeCase`, `ToKebabCase`: words split at case changes, numbers and connectors),
//! `camelcase` (`ToPascalCase`), `swapcase` (`SwapCase`, one rune for one rune as Go's
//! `unicode.ToUpper` maps them). Written here for byte-for-byte fidelity to those functions.

/// The kinds of words xstrings' `nextWord` finds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Word {
    Invalid,
    Number,
    UpperCase,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings' connectors: `-`, `_` and white space.
fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// xstrings' `isAlphabet`: a letter that is not a CJK ideograph.
fn is_alphabet(c: char) -> bool {
    if !c.is_alphabetic() {
        return false;
    }
    !matches!(c, '\u{4E00}'..='\u{9FCC}' | '\u{3400}'..='\u{4D85}' | '\u{20000}'..='\u{2B81D}')
}

/// Go's `unicode.IsPunct` (category P): ASCII exactly, and the general punctuation block.
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return "!\"#%&'()*,-./:;?@[\\]_{}".contains(c);
    }
    matches!(c, '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{3001}'..='\u{3003}' | '\u{00A1}' | '\u{00A7}' | '\u{00AB}' | '\u{00B6}' | '\u{00B7}' | '\u{00BB}' | '\u{00BF}')
}

/// Go's `unicode.ToLower`/`ToUpper`: one rune for one rune (`ß` has no single upper case).
fn lower(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// xstrings' `nextWord`: the kind of the word at the start of `s`, the word, the rest.
fn next_word(s: &str) -> (Word, &str, &str) {
    let mut chars = s.char_indices().peekable();
    let Some((_, first)) = chars.next() else {
        return (Word::Invalid, "", "");
    };
    let end_of = |i: Option<(usize, char)>| i.map_or(s.len(), |(i, _)| i);
    let take_while = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                      keep: &dyn Fn(char) -> bool| {
        while let Some(&(_, c)) = chars.peek() {
            if !keep(c) {
                break;
            }
            chars.next();
        }
    };
    let kind = if is_connector(first) {
        take_while(&mut chars, &is_connector);
        Word::Connector
    } else if is_punct(first) {
        take_while(&mut chars, &is_punct);
        Word::Punct
    } else if first.is_uppercase() {
        match chars.peek().copied() {
            Some((_, c)) if c.is_uppercase() => {
                // "HTTPStatus": "HTTP", then "Status"
                let mut last_start = end_of(chars.peek().copied());
                while let Some(&(i, c)) = chars.peek() {
                    if !c.is_uppercase() {
                        break;
                    }
                    last_start = i;
                    chars.next();
                }
                if let Some(&(_, c)) = chars.peek() {
                    if is_alphabet(c) {
                        return (Word::UpperCase, &s[..last_start], &s[last_start..]);
                    }
                }
            }
            Some((_, c)) if is_alphabet(c) => {
                take_while(&mut chars, &|c| is_alphabet(c) && !c.is_uppercase());
            }
            _ => {}
        }
        Word::UpperCase
    } else if is_alphabet(first) {
        take_while(&mut chars, &|c| is_alphabet(c) && !c.is_uppercase());
        Word::Alphabet
    } else if first.is_numeric() {
        take_while(&mut chars, &char::is_numeric);
        Word::Number
    } else {
        take_while(&mut chars, &|c| {
            !(is_connector(c) || is_alphabet(c) || c.is_numeric() || is_punct(c))
        });
        Word::Other
    };
    let end = end_of(chars.peek().copied());
    (kind, &s[..end], &s[end..])
}

/// xstrings' `toLower`: upper-case words and connectors rune by rune, others as they are.
fn to_lower(out: &mut String, kind: Word, word: &str, connector: char) {
    if kind != Word::UpperCase && kind != Word::Connector {
        out.push_str(word);
        return;
    }
    for c in word.chars() {
        if is_connector(c) {
            out.push(connector);
        } else if c.is_uppercase() {
            out.push(lower(c));
        } else {
            out.push(c);
        }
    }
}

/// xstrings' `camelCaseToLowerCase` (`ToSnakeCase` with `_`, `ToKebabCase` with `-`).
pub(super) fn to_lower_case(s: &str, connector: char) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    if s.is_empty() {
        return out;
    }
    let (mut kind, mut word, mut rest) = next_word(s);
    while !rest.is_empty() {
        if kind != Word::Connector {
            to_lower(&mut out, kind, word, connector);
        }
        let (prev, last) = (kind, word);
        (kind, word, rest) = next_word(rest);
        match prev {
            Word::Number => {
                while kind == Word::Alphabet || kind == Word::Number {
                    to_lower(&mut out, kind, word, connector);
                    (kind, word, rest) = next_word(rest);
                }
                if !matches!(kind, Word::Invalid | Word::Punct | Word::Connector) {
                    out.push(connector);
                }
            }
            Word::Connector => to_lower(&mut out, prev, last, connector),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if kind != Word::Connector && kind != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                if rest.is_empty() {
                    continue;
                }
                let number = word;
                (kind, word, rest) = next_word(rest);
                // a number ends the word before it ("Bld4Floor" is "bld4_floor") unless
                // letters follow it ("HTTP2xx" is "http_2xx")
                if kind != Word::Alphabet {
                    to_lower(&mut out, Word::Number, number, connector);
                    if kind != Word::Connector && kind != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                out.push(connector);
                to_lower(&mut out, Word::Number, number, connector);
                while kind == Word::Alphabet || kind == Word::Number {
                    to_lower(&mut out, kind, word, connector);
                    (kind, word, rest) = next_word(rest);
                }
                if !matches!(kind, Word::Invalid | Word::Connector | Word::Punct) {
                    out.push(connector);
                }
            }
        }
    }
    to_lower(&mut out, kind, word, connector);
    out
}

/// xstrings' `ToPascalCase` (what Sprig's `camelcase` is): words joined, each with its first
/// letter upper case; leading connectors and doubled ones stay.
pub(super) fn to_pascal_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut first_upper = false;
    let mut r0 = None;
    for c in chars.by_ref() {
        if !is_connector(c) {
            first_upper = c.is_uppercase();
            r0 = Some(upper(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        // only connectors: Go's loop writes the last one once more
        if let Some(last) = s.chars().last() {
            out.push(last);
        }
        return out;
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = r0.is_uppercase();
            r0 = upper(r0);
        } else {
            if first_upper {
                if r0.is_uppercase() {
                    r0 = lower(r0);
                } else {
                    first_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

/// xstrings' `SwapCase`.
pub(super) fn swap_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                lower(c)
            } else if c.is_lowercase() {
                upper(c)
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_xstrings() {
        // xstrings' own examples, and what helm renders
        for (s, snake) in [
            ("FirstName", "first_name"),
            ("HTTPServer", "http_server"),
            ("NoHTTPS", "no_https"),
            ("GO_PATH", "go_path"),
            ("GO PATH", "go_path"),
            ("GO-PATH", "go_path"),
            ("http2xx", "http_2xx"),
            ("HTTP20xOK", "http_20x_ok"),
            ("Duration2m3s", "duration_2m3s"),
            ("Bld4Floor3rd", "bld4_floor_3rd"),
            ("ID123abc", "id_123abc"),
            ("", ""),
        ] {
            assert_eq!(to_lower_case(s, '_'), snake, "{s}");
        }
        assert_eq!(to_lower_case("ABCDef1G", '-'), "abc-def1-g");
        for (s, pascal) in [
            ("some_words", "SomeWords"),
            ("http_server", "HttpServer"),
            ("_complex__case_", "_Complex_Case_"),
            ("GOLANG_IS_GREAT", "GolangIsGreat"),
            ("_a__b_", "_A_B_"),
            ("ABC_def", "AbcDef"),
            ("x", "X"),
            ("__", "___"),
        ] {
            assert_eq!(to_pascal_case(s), pascal, "{s}");
        }
        assert_eq!(swap_case("Hello ß"), "hELLO ß");
    }
}
