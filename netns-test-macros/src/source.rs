//! Reading the outer attributes written above ours in the source text.
//!
//! A small forward scanner: it knows just enough of Rust's lexical grammar (comments, string,
//! raw string, byte and character literals, lifetimes, bracket groups) to find each outer
//! attribute `#[...]` and to tell which attributes sit directly above one another on the same
//! item.

/// Whether a built-in `#[test]` is among the outer attributes written directly above the
/// attribute that contains the position `line` (1-based) and `column` (0-based, in characters).
pub(crate) fn test_attribute_above(source: &str, line: usize, column: usize) -> bool {
    let Some(target) = byte_offset(source, line, column) else {
        return false;
    };
    let bytes = source.as_bytes();
    // Whether the attributes seen since the last other token include a `#[test]`.
    let mut test_in_run = false;
    let mut at = 0;
    while at < bytes.len() && at <= target {
        let byte = bytes[at];
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        if let Some(end) = comment_end(bytes, at) {
            // Doc comments are attributes, plain comments nothing: neither ends a run.
            at = end;
            continue;
        }
        if byte == b'#' {
            let mut open = skip_blank(bytes, at + 1);
            let inner = bytes.get(open) == Some(&b'!');
            if inner {
                open = skip_blank(bytes, open + 1);
            }
            if bytes.get(open) == Some(&b'[') {
                let end = group_end(bytes, open);
                if inner {
                    test_in_run = false;
                } else if target < end {
                    return test_in_run;
                } else {
                    test_in_run |= is_test(&source[open + 1..end.saturating_sub(1).max(open + 1)]);
                }
                at = end;
                continue;
            }
        }
        test_in_run = false;
        at = token_end(bytes, at);
    }
    false
}

/// Whether an attribute's contents (between the brackets) are the built-in test attribute.
fn is_test(contents: &str) -> bool {
    matches!(syn::parse_str::<syn::Meta>(contents), Ok(syn::Meta::Path(path)) if crate::is_builtin_test(&path))
}

/// The byte offset of a 1-based line and a 0-based column counted in characters.
fn byte_offset(source: &str, line: usize, column: usize) -> Option<usize> {
    let mut start = 0;
    for _ in 1..line {
        start += source[start..].find('\n')? + 1;
    }
    let text = &source[start..];
    let line_end = text.find('\n').unwrap_or(text.len());
    text[..line_end].char_indices().nth(column).map(|(offset, _)| start + offset)
}

/// Past whitespace and comments.
fn skip_blank(bytes: &[u8], mut at: usize) -> usize {
    loop {
        if bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        } else if let Some(end) = comment_end(bytes, at) {
            at = end;
        } else {
            return at;
        }
    }
}

/// The end of the comment starting at `at`, if one does (block comments nest).
fn comment_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at..at + 2)? {
        b"//" => Some(bytes[at..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |n| at + n + 1)),
        b"/*" => {
            let mut depth = 0usize;
            let mut i = at;
            while i + 1 < bytes.len() {
                match &bytes[i..i + 2] {
                    b"/*" => {
                        depth += 1;
                        i += 2;
                    }
                    b"*/" => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => i += 1,
                }
            }
            Some(bytes.len())
        }
        _ => None,
    }
}

/// The end of the bracket group opening at `open`, just past its closing `]`.
fn group_end(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut at = open;
    while at < bytes.len() {
        if let Some(end) = comment_end(bytes, at) {
            at = end;
            continue;
        }
        match bytes[at] {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at = token_end(bytes, at);
    }
    bytes.len()
}

/// Whether `byte` continues an identifier (or a number); non-ASCII bytes count, so that a
/// UTF-8 identifier is one token.
fn ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}

/// The end of the token starting at `at`: a literal, an identifier or keyword (with a string
/// prefix such as `r#`, `b` or `c`), a lifetime, or one punctuation byte.
fn token_end(bytes: &[u8], at: usize) -> usize {
    match bytes[at] {
        b'"' => quoted_end(bytes, at + 1, b'"'),
        b'\'' => char_or_lifetime_end(bytes, at),
        byte if ident_byte(byte) => {
            let mut end = at;
            while end < bytes.len() && ident_byte(bytes[end]) {
                end += 1;
            }
            let word = &bytes[at..end];
            match (word, bytes.get(end)) {
                (b"r" | b"br" | b"cr", Some(b'"' | b'#')) => raw_end(bytes, end),
                (b"b" | b"c", Some(b'"')) => quoted_end(bytes, end + 1, b'"'),
                (b"b", Some(b'\'')) => quoted_end(bytes, end + 1, b'\''),
                _ => end,
            }
        }
        _ => at + 1,
    }
}

/// The end of a literal whose contents start at `at`, closed by `close`, with `\` escapes.
fn quoted_end(bytes: &[u8], mut at: usize, close: u8) -> usize {
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            byte if byte == close => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The end of a raw string (`r"…"`, `r#"…"#`, ...) whose hashes or quote start at `at`, or of
/// a raw identifier (`r#name`).
fn raw_end(bytes: &[u8], at: usize) -> usize {
    let hashes = bytes[at..].iter().take_while(|b| **b == b'#').count();
    let quote = at + hashes;
    if bytes.get(quote) != Some(&b'"') {
        let mut end = quote;
        while end < bytes.len() && ident_byte(bytes[end]) {
            end += 1;
        }
        return end;
    }
    let mut i = quote + 1;
    while i < bytes.len() {
        if bytes[i] == b'"' && bytes[i + 1..].iter().take(hashes).filter(|b| **b == b'#').count() == hashes {
            return i + 1 + hashes;
        }
        i += 1;
    }
    bytes.len()
}

/// The end of a character literal (`'a'`, `'\n'`, `'é'`) or of a lifetime or label (`'a`).
fn char_or_lifetime_end(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at + 1) {
        Some(b'\\') => quoted_end(bytes, at + 1, b'\''),
        Some(&lead) => {
            let width = match lead {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            if bytes.get(at + 1 + width) == Some(&b'\'') {
                at + 2 + width
            } else {
                let mut end = at + 1;
                while end < bytes.len() && ident_byte(bytes[end]) {
                    end += 1;
                }
                end.max(at + 1)
            }
        }
        None => at + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::test_attribute_above;

    /// Whether `#[test]` is found above the attribute marked `#[netns_test]` (its first one).
    fn above(source: &str) -> bool {
        let offset = source.find("#[netns_test").expect("the source has the attribute");
        let line = source[..offset].matches('\n').count() + 1;
        let line_start = source[..offset].rfind('\n').map_or(0, |n| n + 1);
        let column = source[line_start..offset].chars().count();
        test_attribute_above(source, line, column)
    }

    #[test]
    fn test_written_above_is_found() {
        assert!(above("#[test]\n#[netns_test]\nfn a() {}"));
        assert!(above("#[test] #[netns_test] fn a() {}"));
        assert!(above("# [ test ]\n/// doc\n// note\n#[ignore = \"]\"]\n/* x */ #[netns_test]\nfn a() {}"));
        assert!(above("#[::core::prelude::v1::test]\n#[netns_test(timeout = \"1s\")]\nfn a() {}"));
        assert!(above("mod m {\n    #[test]\n    #[netns_test]\n    fn a() {}\n}"));
        assert!(above("const S: &str = \"é\";\n#[test]\n\t#[netns_test]\nfn a() {}"));
    }

    #[test]
    fn test_elsewhere_is_not_taken_for_one_above() {
        assert!(!above("#[netns_test]\nfn a() {}"));
        assert!(!above("#[netns_test]\n#[test]\nfn a() {}"));
        assert!(!above("#[test]\nfn b() {}\n#[netns_test]\nfn a() {}"));
        assert!(!above("#[tokio::test]\n#[netns_test]\nfn a() {}"));
        assert!(!above("#[test(x)]\n#[netns_test]\nfn a() {}"));
        assert!(!above("#![test]\n#[netns_test]\nfn a() {}"));
        assert!(!above("// #[test]\n#[netns_test]\nfn a() {}"));
        assert!(!above("/* #[test] /* nested */ */\n#[netns_test]\nfn a() {}"));
        assert!(!above("const S: &str = \"#[test]\";\n#[netns_test]\nfn a() {}"));
        assert!(!above("const S: &str = r#\"\"#[test]\"#;\n#[netns_test]\nfn a() {}"));
        assert!(!above("#[test]\nfn b<'a>(x: &'a u8) -> char { 'x' }\n#[netns_test]\nfn a() {}"));
        assert!(!above("#[test] fn b() { let c = '\\''; }\n#[netns_test]\nfn a() {}"));
    }

    #[test]
    fn a_position_outside_the_source_is_no_attribute() {
        assert!(!test_attribute_above("#[test]\n#[netns_test]\nfn a() {}", 9, 0));
        assert!(!test_attribute_above("#[test]\n#[netns_test]\nfn a() {}", 2, 80));
    }
}
