//! A lexer that finds literals exactly where PostgreSQL's scanner (scan.l) would, with
//! standard_conforming_strings on (tablegate pins it).
//!
//! It does not produce a token stream: it only needs to know, for every byte, whether it is
//! inside a comment, a quoted identifier, a dollar-quoted string or a literal — so that text
//! that merely looks like a literal inside a comment or an identifier is never taken for one.
//! Only plain string literals (`'...'`) and plain numbers (`42`, `3.14`) become [`Literal`]s;
//! other literal forms (E'', U&'', $$…$$, B'', X'', N'', strings continued across lines)
//! are [`LexOutcome::opaque`]: the statement is then cached by its exact text.

/// A literal the cache may replace by a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal {
    /// Byte range in the statement text, quotes included.
    pub start: usize,
    pub end: usize,
    /// Where sqlparser reports it: 1-based line and column (columns count characters).
    pub line: u64,
    pub column: u64,
    pub kind: LiteralKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiteralKind {
    /// `'...'`: a standard string.
    Text,
    /// Digits only.
    Integer,
    /// Digits, a point, digits.
    Decimal,
}

#[derive(Debug, Default)]
pub struct LexOutcome {
    pub literals: Vec<Literal>,
    /// The text holds literal forms the cache does not slot, or does not lex cleanly.
    pub opaque: bool,
}

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn ident_cont(c: char) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == '$'
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: u64,
    column: u64,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.text[self.pos..].chars().nth(n)
    }

    fn starts_with(&self, s: &str) -> bool {
        self.text[self.pos..].starts_with(s)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Skips a quoted run ending at `quote`, where a doubled quote stands for one.
    /// Returns false if the text ends first.
    fn skip_quoted(&mut self, quote: char) -> bool {
        loop {
            match self.bump() {
                None => return false,
                Some(c) if c == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                    } else {
                        return true;
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Skips an E'' string's body: backslash escapes any character.
    fn skip_escaped(&mut self) -> bool {
        loop {
            match self.bump() {
                None => return false,
                Some('\\') => {
                    if self.bump().is_none() {
                        return false;
                    }
                }
                Some('\'') => {
                    if self.peek() == Some('\'') {
                        self.bump();
                    } else {
                        return true;
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Whitespace between two string literals that contains a newline makes PostgreSQL join
    /// them into one literal; `--` comments count as whitespace there (scan.l's
    /// `whitespace_with_newline`), and a `--` comment always ends in a newline.
    fn continues_string(&self) -> bool {
        let mut rest = &self.text[self.pos..];
        let mut newline = false;
        loop {
            let gap_end = rest
                .find(|c: char| !matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'))
                .unwrap_or(rest.len());
            newline |= rest[..gap_end].contains(['\n', '\r']);
            rest = &rest[gap_end..];
            if !rest.starts_with("--") {
                return newline && rest.starts_with('\'');
            }
            match rest.find(['\n', '\r']) {
                Some(line_end) => {
                    newline = true;
                    rest = &rest[line_end..];
                }
                None => return false,
            }
        }
    }
}

/// Finds the literals of `text`.
pub fn lex(text: &str) -> LexOutcome {
    let mut out = LexOutcome::default();
    let mut c = Cursor {
        text,
        pos: 0,
        line: 1,
        column: 1,
    };
    while let Some(ch) = c.peek() {
        let (start, line, column) = (c.pos, c.line, c.column);
        if c.starts_with("--") {
            while let Some(ch) = c.bump() {
                if ch == '\n' || ch == '\r' {
                    break;
                }
            }
        } else if c.starts_with("/*") {
            let mut depth = 0usize;
            loop {
                if c.starts_with("/*") {
                    c.bump();
                    c.bump();
                    depth += 1;
                } else if c.starts_with("*/") {
                    c.bump();
                    c.bump();
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                } else if c.bump().is_none() {
                    out.opaque = true;
                    return out;
                }
            }
        } else if ch == '\'' {
            c.bump();
            if !c.skip_quoted('\'') {
                out.opaque = true;
                return out;
            }
            if c.continues_string() {
                out.opaque = true;
            }
            out.literals.push(Literal {
                start,
                end: c.pos,
                line,
                column,
                kind: LiteralKind::Text,
            });
        } else if ch == '"' {
            c.bump();
            if !c.skip_quoted('"') {
                out.opaque = true;
                return out;
            }
        } else if ch == '$' {
            c.bump();
            if c.peek().is_some_and(|d| d.is_ascii_digit()) {
                // A parameter, $1.
                while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                    c.bump();
                }
            } else {
                // A dollar quote: $tag$ ... $tag$.
                let tag_start = c.pos;
                if c.peek().is_some_and(ident_start) {
                    while c.peek().is_some_and(|d| ident_cont(d) && d != '$') {
                        c.bump();
                    }
                }
                if c.peek() != Some('$') {
                    out.opaque = true;
                    return out;
                }
                let delimiter = format!("${}$", &text[tag_start..c.pos]);
                c.bump();
                match text[c.pos..].find(&delimiter) {
                    Some(offset) => {
                        let end = c.pos + offset + delimiter.len();
                        while c.pos < end {
                            c.bump();
                        }
                        out.opaque = true;
                    }
                    None => {
                        out.opaque = true;
                        return out;
                    }
                }
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.peek_at(1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut kind = LiteralKind::Integer;
            let mut plain = ch != '.';
            while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                c.bump();
            }
            if c.peek() == Some('.') && c.peek_at(1) != Some('.') {
                c.bump();
                kind = LiteralKind::Decimal;
                plain &= c.peek().is_some_and(|d| d.is_ascii_digit());
                while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                    c.bump();
                }
            }
            if matches!(c.peek(), Some('e' | 'E')) {
                plain = false;
                c.bump();
                if matches!(c.peek(), Some('+' | '-')) {
                    c.bump();
                }
                while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                    c.bump();
                }
            }
            // PostgreSQL rejects trailing junk such as 0x1F or 1abc; never slot those.
            if c.peek().is_some_and(|d| ident_cont(d) || d == '.')
                || start > 0 && text[..start].ends_with('.')
            {
                plain = false;
            }
            if plain {
                out.literals.push(Literal {
                    start,
                    end: c.pos,
                    line,
                    column,
                    kind,
                });
            } else {
                out.opaque = true;
            }
        } else if ident_start(ch) {
            let prefixed_string = match ch {
                'e' | 'E' | 'b' | 'B' | 'x' | 'X' | 'n' | 'N' => c.peek_at(1) == Some('\''),
                'u' | 'U' => c.peek_at(1) == Some('&') && matches!(c.peek_at(2), Some('\'' | '"')),
                _ => false,
            };
            if prefixed_string {
                out.opaque = true;
                let escaped = matches!(ch, 'e' | 'E');
                if matches!(ch, 'u' | 'U') {
                    c.bump();
                }
                c.bump();
                let quote = c.bump().expect("peeked");
                let closed = if escaped {
                    c.skip_escaped()
                } else {
                    c.skip_quoted(quote)
                };
                if !closed {
                    return out;
                }
            } else {
                while c.peek().is_some_and(ident_cont) {
                    c.bump();
                }
            }
        } else {
            c.bump();
        }
    }
    out
}

/// The value of a [`LiteralKind::Text`] literal's source text (`'it''s'` → `it's`).
pub fn text_value(source: &str) -> String {
    source[1..source.len() - 1].replace("''", "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(text: &str) -> Vec<&str> {
        lex(text)
            .literals
            .iter()
            .map(|l| &text[l.start..l.end])
            .collect()
    }

    #[test]
    fn finds_plain_literals_with_sqlparser_positions() {
        let text = "SELECT -5, 1.5, 'é''x' FROM t\nWHERE a = 'b'";
        let out = lex(text);
        assert!(!out.opaque);
        let found: Vec<_> = out
            .literals
            .iter()
            .map(|l| (&text[l.start..l.end], l.line, l.column))
            .collect();
        assert_eq!(
            found,
            [
                ("5", 1, 9),
                ("1.5", 1, 12),
                ("'é''x'", 1, 17),
                ("'b'", 2, 11)
            ]
        );
    }

    #[test]
    fn nothing_inside_comments_identifiers_or_dollar_quotes_is_a_literal() {
        assert_eq!(
            literals("SELECT /* 'a' /* 1 */ 'b' */ 2 -- 'c'\n, \"x'y\" "),
            ["2"]
        );
        assert!(lex("SELECT $q$ 'a' 1 $q$").literals.is_empty());
        assert!(lex("SELECT $q$ 'a' 1 $q$").opaque);
        assert_eq!(literals("SELECT $1, a$1, 'x'"), ["'x'"]);
        assert_eq!(literals("SELECT ne'x'"), ["'x'"]);
    }

    #[test]
    fn special_strings_and_odd_numbers_make_the_text_opaque() {
        for text in [
            "SELECT E'\\''",
            "SELECT U&'\\0041'",
            "SELECT u&\"x\"",
            "SELECT B'101'",
            "SELECT X'ff'",
            "SELECT N'x'",
            "SELECT 1e5",
            "SELECT 0x1F",
            "SELECT 1abc",
            "SELECT 'a'\n'b'",
            "SELECT 'a' -- joined by PostgreSQL\n'b'",
            "SELECT 'a'\n  -- one\n-- two\n 'b'",
            "SELECT 'unterminated",
            "SELECT /* unterminated",
            "SELECT 5.",
        ] {
            assert!(lex(text).opaque, "{text}");
        }
    }

    #[test]
    fn backslashes_are_plain_characters_in_standard_strings() {
        assert_eq!(literals(r"SELECT 'a\', 'b'"), [r"'a\'", "'b'"]);
        assert_eq!(text_value("'it''s'"), "it's");
    }

    #[test]
    fn a_comment_after_a_string_joins_nothing_when_no_string_follows() {
        let out = lex("SELECT 'a' -- note\n, 'b' -- end");
        assert!(!out.opaque);
        assert_eq!(out.literals.len(), 2);
    }

    #[test]
    fn slices_are_not_decimals() {
        assert_eq!(literals("SELECT a[1:2]"), ["1", "2"]);
    }
}
