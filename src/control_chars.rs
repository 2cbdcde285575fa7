//! Text from outside (WeCom's names, userids, positions, attributes and error messages) as it
//! goes to a terminal or a log line.
//!
//! Control characters become visible escapes (`\u{1b}`): raw, they move the cursor, rewrite
//! what the admin sees, set the terminal's clipboard (OSC 52) or start a forged log line
//! (found by red-team review). Bidirectional overrides are escaped too, as they reorder what
//! is shown.

use std::borrow::Cow;

/// `text` with every control character and bidirectional override written as `\u{…}`.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape_control("张三 Sales"), "张三 Sales");
        assert_eq!(
            escape_control("a\u{1b}]52;c;ZXZpbA==\u{7}b\r\nc\u{202e}d"),
            "a\\u{1b}]52;c;ZXZpbA==\\u{7}b\\u{d}\\u{a}c\\u{202e}d"
        );
        assert_eq!(escape_control("\u{9b}2J"), "\\u{9b}2J");
    }
}
