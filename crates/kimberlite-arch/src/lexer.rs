//! Rust source to a flat list of tokens, with comments, string, char and byte literals and
//! lifetimes removed: only identifiers and punctuation matter for finding paths.

/// One token of the source that can be part of a path or delimit an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An identifier or keyword (`r#` prefix removed).
    Ident(String),
    /// `::`
    PathSep,
    /// Any other punctuation character, brackets included.
    Punct(char),
    /// A literal (string, char, number); its content never names a module.
    Literal,
}

/// A token and the 1-based line it starts on.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Splits `source` into tokens. Never fails: an unterminated literal or comment ends the file.
pub fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        pos: 0,
        line: 1,
        out: Vec::new(),
    };
    lexer.run();
    lexer.out
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) {
        if self.peek(0) == Some('\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn push(&mut self, tok: Tok, line: usize) {
        self.out.push(Token { tok, line });
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            let line = self.line;
            match c {
                _ if c.is_whitespace() => self.bump(),
                '/' if self.peek(1) == Some('/') => self.skip_line(),
                '/' if self.peek(1) == Some('*') => self.skip_block_comment(),
                '"' => {
                    self.skip_quoted('"');
                    self.push(Tok::Literal, line);
                }
                '\'' => self.char_or_lifetime(),
                ':' if self.peek(1) == Some(':') => {
                    self.pos += 2;
                    self.push(Tok::PathSep, line);
                }
                _ if c.is_ascii_digit() => {
                    self.skip_while(|c| c.is_alphanumeric() || c == '_');
                    self.push(Tok::Literal, line);
                }
                _ if c == '_' || c.is_alphabetic() => self.ident_or_prefixed_literal(),
                _ => {
                    self.bump();
                    self.push(Tok::Punct(c), line);
                }
            }
        }
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek(0).is_some_and(&keep) {
            self.bump();
        }
    }

    fn skip_line(&mut self) {
        self.skip_while(|c| c != '\n');
    }

    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            if c == '/' && self.peek(1) == Some('*') {
                depth += 1;
                self.pos += 2;
            } else if c == '*' && self.peek(1) == Some('/') {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// Skips a `"`- or `'`-delimited literal with escapes, the opening quote at `pos`.
    fn skip_quoted(&mut self, quote: char) {
        self.bump();
        while let Some(c) = self.peek(0) {
            self.bump();
            if c == '\\' {
                self.bump();
            } else if c == quote {
                return;
            }
        }
    }

    /// `'x'`, `'\n'` are char literals; `'a` and `'static` are lifetimes or labels.
    fn char_or_lifetime(&mut self) {
        let line = self.line;
        if self.peek(1) == Some('\\') || self.peek(2) == Some('\'') {
            self.skip_quoted('\'');
            self.push(Tok::Literal, line);
        } else {
            self.bump();
            self.skip_while(|c| c == '_' || c.is_alphanumeric());
        }
    }

    /// An identifier, or a literal with a prefix: `b"..."`, `r"..."`, `r#"..."#`, `br#".."#`,
    /// `c"..."`, `b'x'`; `r#ident` is a raw identifier.
    fn ident_or_prefixed_literal(&mut self) {
        let line = self.line;
        let start = self.pos;
        self.skip_while(|c| c == '_' || c.is_alphanumeric());
        let word: String = self
            .chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        let next = self.peek(0);
        let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
        if raw_prefix && (next == Some('"') || (next == Some('#') && self.raw_string_ahead())) {
            self.skip_raw_string();
            self.push(Tok::Literal, line);
        } else if word == "r" && next == Some('#') {
            self.bump();
            let start = self.pos;
            self.skip_while(|c| c == '_' || c.is_alphanumeric());
            let raw: String = self
                .chars
                .get(start..self.pos)
                .unwrap_or_default()
                .iter()
                .collect();
            self.push(Tok::Ident(raw), line);
        } else if matches!(word.as_str(), "b" | "c") && next == Some('"') {
            self.skip_quoted('"');
            self.push(Tok::Literal, line);
        } else if word == "b" && next == Some('\'') {
            self.skip_quoted('\'');
            self.push(Tok::Literal, line);
        } else {
            self.push(Tok::Ident(word), line);
        }
    }

    /// At `#`: whether `#`s are followed by `"` (a raw string, not a raw identifier).
    fn raw_string_ahead(&self) -> bool {
        let mut ahead = 0;
        while self.peek(ahead) == Some('#') {
            ahead += 1;
        }
        self.peek(ahead) == Some('"')
    }

    /// At the `#`s or `"` after a raw prefix: skips to the `"` followed by as many `#`s.
    fn skip_raw_string(&mut self) {
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            hashes += 1;
            self.bump();
        }
        self.bump();
        while let Some(c) = self.peek(0) {
            self.bump();
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                self.pos += hashes;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(source: &str) -> Vec<String> {
        tokenize(source)
            .into_iter()
            .filter_map(|t| match t.tok {
                Tok::Ident(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_literals_and_lifetimes_hide_nothing_else() {
        let source = r####"
            // crate::a
            /* crate::b /* nested crate::c */ crate::d */
            let s = "crate::e \" crate::f";
            let r = r#"crate::g " "#;
            let c = '"'; let q = '\''; fn f<'a>(x: &'a str) {}
            let b = b"crate::h"; let r2 = r#match;
            keep::me
        "####;
        assert_eq!(
            idents(source),
            [
                "let", "s", "let", "r", "let", "c", "let", "q", "fn", "f", "x", "str", "let", "b",
                "let", "r2", "match", "keep", "me"
            ]
        );
    }

    #[test]
    fn lines_are_counted_through_comments_and_strings() {
        let tokens = tokenize("a\n/* x\n y */ \"s\ns\" b");
        let b = tokens
            .iter()
            .find(|t| t.tok == Tok::Ident("b".into()))
            .map(|t| t.line);
        assert_eq!(b, Some(4));
    }
}
