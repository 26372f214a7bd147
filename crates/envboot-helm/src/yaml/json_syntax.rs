//! Go's `encoding/json` syntax check (`checkValid`, the scanner's state machine), for its
//! error messages: what `fromJson` of malformed text reports is Go's words, byte for byte
//! (`invalid character 'b' looking for beginning of value`, `unexpected end of JSON input`).

#[derive(Clone, Copy, PartialEq)]
enum Step {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// `\u` and how many hex digits are still to come
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// within a literal: the rest of it still expected, and the literal
    Literal(&'static [u8], &'static str),
}

#[derive(Clone, Copy, PartialEq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// Go's `quoteChar`: the byte as a rune, quoted as `strconv.Quote` would, in single quotes.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        b'\x07' => "'\\a'".into(),
        b'\x08' => "'\\b'".into(),
        b'\x0c' => "'\\f'".into(),
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        b'\t' => "'\\t'".into(),
        b'\x0b' => "'\\v'".into(),
        b'\\' => "'\\\\'".into(),
        c if c < 0x20 || c == 0x7f => format!("'\\x{c:02x}'"),
        c if (0x80..0xa0).contains(&c) => format!("'\\u{:04x}'", c),
        // U+00AD (soft hyphen) is not printable for strconv either
        0xad => "'\\u00ad'".into(),
        c => format!("'{}'", char::from(c)),
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

struct Scanner {
    step: Step,
    parse: Vec<Parse>,
    end_top: bool,
}

impl Scanner {
    fn error(c: u8, context: &str) -> String {
        format!("invalid character {} {context}", quote_char(c))
    }

    fn pop(&mut self) {
        self.parse.pop();
        if self.parse.is_empty() {
            self.step = Step::EndTop;
            self.end_top = true;
        } else {
            self.step = Step::EndValue;
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        self.step = match c {
            c if is_space(c) => return Ok(()),
            b'{' => {
                self.parse.push(Parse::ObjectKey);
                Step::BeginStringOrEmpty
            }
            b'[' => {
                self.parse.push(Parse::ArrayValue);
                Step::BeginValueOrEmpty
            }
            b'"' => Step::InString,
            b'-' => Step::Neg,
            b'0' => Step::Zero,
            b'1'..=b'9' => Step::One,
            b't' => Step::Literal(b"rue", "true"),
            b'f' => Step::Literal(b"alse", "false"),
            b'n' => Step::Literal(b"ull", "null"),
            c => return Err(Self::error(c, "looking for beginning of value")),
        };
        Ok(())
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(&top) = self.parse.last() else {
            self.step = Step::EndTop;
            self.end_top = true;
            return self.feed(c);
        };
        if is_space(c) {
            self.step = Step::EndValue;
            return Ok(());
        }
        let n = self.parse.len() - 1;
        match top {
            Parse::ObjectKey if c == b':' => {
                self.parse[n] = Parse::ObjectValue;
                self.step = Step::BeginValue;
                Ok(())
            }
            Parse::ObjectKey => Err(Self::error(c, "after object key")),
            Parse::ObjectValue if c == b',' => {
                self.parse[n] = Parse::ObjectKey;
                self.step = Step::BeginString;
                Ok(())
            }
            Parse::ObjectValue if c == b'}' => {
                self.pop();
                Ok(())
            }
            Parse::ObjectValue => Err(Self::error(c, "after object key:value pair")),
            Parse::ArrayValue if c == b',' => {
                self.step = Step::BeginValue;
                Ok(())
            }
            Parse::ArrayValue if c == b']' => {
                self.pop();
                Ok(())
            }
            Parse::ArrayValue => Err(Self::error(c, "after array element")),
        }
    }

    fn feed(&mut self, c: u8) -> Result<(), String> {
        match self.step {
            Step::BeginValue => self.begin_value(c),
            Step::BeginValueOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            Step::BeginStringOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b'}' {
                    let n = self.parse.len() - 1;
                    self.parse[n] = Parse::ObjectValue;
                    return self.end_value(c);
                }
                self.begin_string(c)
            }
            Step::BeginString => self.begin_string(c),
            Step::EndValue => self.end_value(c),
            Step::EndTop => {
                if is_space(c) {
                    Ok(())
                } else {
                    Err(Self::error(c, "after top-level value"))
                }
            }
            Step::InString => {
                match c {
                    b'"' => self.step = Step::EndValue,
                    b'\\' => self.step = Step::InStringEsc,
                    c if c < 0x20 => return Err(Self::error(c, "in string literal")),
                    _ => {}
                }
                Ok(())
            }
            Step::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.step = Step::InString;
                    Ok(())
                }
                b'u' => {
                    self.step = Step::InStringEscU(4);
                    Ok(())
                }
                c => Err(Self::error(c, "in string escape code")),
            },
            Step::InStringEscU(left) => {
                if !c.is_ascii_hexdigit() {
                    return Err(Self::error(c, "in \\u hexadecimal character escape"));
                }
                self.step = if left == 1 {
                    Step::InString
                } else {
                    Step::InStringEscU(left - 1)
                };
                Ok(())
            }
            Step::Neg => match c {
                b'0' => {
                    self.step = Step::Zero;
                    Ok(())
                }
                b'1'..=b'9' => {
                    self.step = Step::One;
                    Ok(())
                }
                c => Err(Self::error(c, "in numeric literal")),
            },
            Step::One if c.is_ascii_digit() => Ok(()),
            Step::One | Step::Zero => match c {
                b'.' => {
                    self.step = Step::Dot;
                    Ok(())
                }
                b'e' | b'E' => {
                    self.step = Step::E;
                    Ok(())
                }
                c => self.end_value(c),
            },
            Step::Dot => {
                if c.is_ascii_digit() {
                    self.step = Step::Dot0;
                    Ok(())
                } else {
                    Err(Self::error(c, "after decimal point in numeric literal"))
                }
            }
            Step::Dot0 => match c {
                c if c.is_ascii_digit() => Ok(()),
                b'e' | b'E' => {
                    self.step = Step::E;
                    Ok(())
                }
                c => self.end_value(c),
            },
            Step::E if c == b'+' || c == b'-' => {
                self.step = Step::ESign;
                Ok(())
            }
            Step::E | Step::ESign => {
                if c.is_ascii_digit() {
                    self.step = Step::E0;
                    Ok(())
                } else {
                    Err(Self::error(c, "in exponent of numeric literal"))
                }
            }
            Step::E0 if c.is_ascii_digit() => Ok(()),
            Step::E0 => self.end_value(c),
            Step::Literal(rest, word) => {
                if c != rest[0] {
                    return Err(Self::error(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(rest[0])),
                    ));
                }
                self.step = if rest.len() == 1 {
                    Step::EndValue
                } else {
                    Step::Literal(&rest[1..], word)
                };
                Ok(())
            }
        }
    }

    fn begin_string(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            return Ok(());
        }
        if c == b'"' {
            self.step = Step::InString;
            return Ok(());
        }
        Err(Self::error(c, "looking for beginning of object key string"))
    }
}

/// Go's `checkValid` of `data`: `None` when it is one JSON value, else Go's syntax error.
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut s = Scanner {
        step: Step::BeginValue,
        parse: Vec::new(),
        end_top: false,
    };
    for &c in data {
        if let Err(e) = s.feed(c) {
            return Some(e);
        }
    }
    // Go's `eof`: a space ends a number or a literal, or says what is missing
    if s.end_top {
        return None;
    }
    if let Err(e) = s.feed(b' ') {
        return Some(e);
    }
    if s.end_top {
        return None;
    }
    Some("unexpected end of JSON input".into())
}

#[cfg(test)]
mod tests {
    use super::syntax_error;

    #[test]
    fn syntax_errors_are_gos() {
        // each as helm v4.1.4's fromJson reports it
        for (text, go) in [
            ("", "unexpected end of JSON input"),
            ("  ", "unexpected end of JSON input"),
            (
                "bad",
                "invalid character 'b' looking for beginning of value",
            ),
            ("{", "unexpected end of JSON input"),
            ("[1,", "unexpected end of JSON input"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\":2}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "{1:2}",
                "invalid character '1' looking for beginning of object key string",
            ),
            ("\"a\\qb\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12G4\"",
                "invalid character 'G' in \\u hexadecimal character escape",
            ),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            ("1e", "invalid character ' ' in exponent of numeric literal"),
            (
                "1.5e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            ("-", "invalid character ' ' in numeric literal"),
            ("01", "invalid character '1' after top-level value"),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            (
                "nul",
                "invalid character ' ' in literal null (expecting 'l')",
            ),
            ("truex", "invalid character 'x' after top-level value"),
            ("[1]]", "invalid character ']' after top-level value"),
            ("\"\x01\"", "invalid character '\\x01' in string literal"),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (
                "[,1]",
                "invalid character ',' looking for beginning of value",
            ),
            ("\"\\", "invalid character ' ' in string escape code"),
            (
                "{\"a\":[1,{\"b\":}]}",
                "invalid character '}' looking for beginning of value",
            ),
            ("é", "invalid character 'Ã' looking for beginning of value"),
            ("{\"a\":1}{", "invalid character '{' after top-level value"),
            ("0x1", "invalid character 'x' after top-level value"),
        ] {
            assert_eq!(
                syntax_error(text.as_bytes()).as_deref(),
                Some(go),
                "{text:?}"
            );
        }
        for ok in [
            "{}",
            "[]",
            " [1, 2.5e-3, -0, \"x\\u00e9\", true, false, null] ",
            "{\"a\":{\"b\":[]}}",
            "0",
        ] {
            assert_eq!(syntax_error(ok.as_bytes()), None, "{ok}");
        }
    }
}
