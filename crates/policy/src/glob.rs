//! Glob patterns for kinds, resources, labels, commands and SQL: `*` matches any run of
//! characters (slashes and spaces included), `?` exactly one character, and `\` makes the next
//! character literal.
//!
//! Most patterns in real policies are exact names or `prefix*`; those take fast paths.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    kind: GlobKind,
}

#[derive(Clone, PartialEq, Eq)]
enum GlobKind {
    Exact(String),
    Prefix(String),
    Any,
    General(Vec<Token>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyChar,
    AnyRun,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("an empty pattern matches nothing; use \"*\" to match everything")]
    Empty,
    #[error("pattern '{0}' ends with a lone '\\' (write '\\\\' for a literal backslash)")]
    TrailingEscape(String),
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        Self::build(pattern, pattern)
    }

    /// A case-insensitive glob: the pattern is lowercased, and the caller lowercases the text.
    pub fn new_lowercase(pattern: &str) -> Result<Glob, GlobError> {
        Self::build(pattern, &pattern.to_lowercase())
    }

    fn build(source: &str, pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut bytes = pattern.bytes();
        while let Some(b) = bytes.next() {
            tokens.push(match b {
                b'*' if tokens.last() == Some(&Token::AnyRun) => continue,
                b'*' => Token::AnyRun,
                b'?' => Token::AnyChar,
                b'\\' => Token::Byte(
                    bytes
                        .next()
                        .ok_or_else(|| GlobError::TrailingEscape(source.to_owned()))?,
                ),
                b => Token::Byte(b),
            });
        }
        let literal = |tokens: &[Token]| -> Option<String> {
            let bytes: Option<Vec<u8>> = tokens
                .iter()
                .map(|t| match t {
                    Token::Byte(b) => Some(*b),
                    _ => None,
                })
                .collect();
            bytes.and_then(|b| String::from_utf8(b).ok())
        };
        let kind = match tokens.as_slice() {
            [Token::AnyRun] => GlobKind::Any,
            [head @ .., Token::AnyRun] if literal(head).is_some() => {
                GlobKind::Prefix(literal(head).unwrap_or_default())
            }
            all => match literal(all) {
                Some(exact) => GlobKind::Exact(exact),
                None => GlobKind::General(tokens),
            },
        };
        Ok(Glob {
            source: source.to_owned(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal text every match starts with: what the rule index files the pattern under.
    pub fn literal_prefix(&self) -> String {
        match &self.kind {
            GlobKind::Exact(s) | GlobKind::Prefix(s) => s.clone(),
            GlobKind::Any => String::new(),
            GlobKind::General(tokens) => {
                let bytes: Vec<u8> = tokens
                    .iter()
                    .map_while(|t| match t {
                        Token::Byte(b) => Some(*b),
                        _ => None,
                    })
                    .collect();
                // A prefix cut inside a multi-byte character is shortened to the last whole one.
                match String::from_utf8(bytes) {
                    Ok(s) => s,
                    Err(e) => {
                        let valid = e.utf8_error().valid_up_to();
                        String::from_utf8_lossy(&e.into_bytes()[..valid]).into_owned()
                    }
                }
            }
        }
    }

    /// Whether the pattern is a plain name, with no wildcard.
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, GlobKind::Exact(_))
    }

    pub fn matches(&self, text: &str) -> bool {
        match &self.kind {
            GlobKind::Exact(s) => text == s,
            GlobKind::Prefix(p) => text.starts_with(p.as_str()),
            GlobKind::Any => true,
            GlobKind::General(tokens) => matches_tokens(tokens, text.as_bytes()),
        }
    }
}

/// Iterative wildcard matching with single-star backtracking: linear in practice, quadratic at
/// worst, never exponential.
fn matches_tokens(tokens: &[Token], text: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while s < text.len() {
        match tokens.get(p) {
            Some(Token::Byte(b)) if *b == text[s] => {
                p += 1;
                s += 1;
            }
            Some(Token::AnyChar) => {
                p += 1;
                s = next_char_boundary(text, s);
            }
            Some(Token::AnyRun) => {
                backtrack = Some((p, s));
                p += 1;
            }
            _ => match backtrack {
                Some((star, mark)) => {
                    let mark = next_char_boundary(text, mark);
                    backtrack = Some((star, mark));
                    p = star + 1;
                    s = mark;
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::AnyRun)
}

fn next_char_boundary(text: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < text.len() && text[i] & 0xC0 == 0x80 {
        i += 1;
    }
    i
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}
