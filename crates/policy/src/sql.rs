//! SQL text as `match.sql` sees it: cut into statements, comments dropped, whitespace collapsed,
//! lowercased, so that a pattern never matches across statements (`select *` must not allow
//! `SELECT 1; DELETE FROM customers`) and a comment hides nothing from a pattern.
//!
//! Where a statement ends depends on how the server reads quotes and comments, and servers
//! disagree: PostgreSQL keeps a backslash literal in '…' (unless `standard_conforming_strings`
//! is off) and nests /* */ comments, MySQL treats a backslash as an escape and `#` as a comment.
//! SQLite, SQL Server and MySQL with `NO_BACKSLASH_ESCAPES` take no backslash escapes and end a
//! comment at the first */. The text is cut every one of those ways and every statement of any
//! reading is kept, so whichever server runs it, each of its statements is among those matched.

use std::collections::BTreeSet;

/// The statements of `sql` under every reading, normalized, without repeats or empty ones.
pub(crate) fn statements(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for dialect in Dialect::ALL {
        for statement in split(&chars, dialect) {
            if !statement.is_empty() && seen.insert(statement.clone()) {
                all.push(statement);
            }
        }
    }
    all
}

#[derive(Clone, Copy)]
struct Dialect {
    /// A backslash escapes the next character inside every quoted string (MySQL).
    backslash_escapes: bool,
    /// `#` starts a comment to the end of the line (MySQL).
    hash_comments: bool,
    /// `--` starts a comment only when followed by whitespace (MySQL), not always (PostgreSQL).
    dash_comment_needs_space: bool,
    /// /* */ comments nest (PostgreSQL).
    nested_comments: bool,
    /// `$tag$…$tag$` quoting and `E'…'` strings with escapes (PostgreSQL).
    dollar_quotes: bool,
    /// `…` quotes identifiers (MySQL).
    backticks: bool,
    /// `/*! … */` and `/*M! … */` hold SQL the server runs (MySQL, MariaDB): not comments.
    executable_comments: bool,
}

impl Dialect {
    const POSTGRES: Dialect = Dialect {
        backslash_escapes: false,
        hash_comments: false,
        dash_comment_needs_space: false,
        nested_comments: true,
        dollar_quotes: true,
        backticks: false,
        executable_comments: false,
    };
    /// PostgreSQL with `standard_conforming_strings = off`: backslashes escape in '…' too.
    const POSTGRES_LEGACY: Dialect = Dialect {
        backslash_escapes: true,
        ..Dialect::POSTGRES
    };
    const MYSQL: Dialect = Dialect {
        backslash_escapes: true,
        hash_comments: true,
        dash_comment_needs_space: true,
        nested_comments: false,
        dollar_quotes: false,
        backticks: true,
        executable_comments: true,
    };
    /// MySQL with `sql_mode = NO_BACKSLASH_ESCAPES`.
    const MYSQL_NO_BACKSLASH: Dialect = Dialect {
        backslash_escapes: false,
        ..Dialect::MYSQL
    };
    /// SQL as the standard has it, and SQLite and SQL Server read it: no backslash escapes, `--`
    /// always a comment, /* */ comments that do not nest.
    const STANDARD: Dialect = Dialect {
        backslash_escapes: false,
        hash_comments: false,
        dash_comment_needs_space: false,
        nested_comments: false,
        dollar_quotes: false,
        backticks: false,
        executable_comments: false,
    };
    const ALL: [Dialect; 5] = [
        Dialect::POSTGRES,
        Dialect::POSTGRES_LEGACY,
        Dialect::MYSQL,
        Dialect::MYSQL_NO_BACKSLASH,
        Dialect::STANDARD,
    ];
}

/// Cuts `sql` at every `;` outside quotes and comments; each comment becomes a space.
fn split(chars: &[char], dialect: Dialect) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ';' => {
                statements.push(normalize(&current));
                current.clear();
                i += 1;
            }
            '\'' | '"' => {
                let escapes = dialect.backslash_escapes
                    || (c == '\''
                        && dialect.dollar_quotes
                        && i > 0
                        && matches!(chars[i - 1], 'e' | 'E')
                        && !chars.get(i.wrapping_sub(2)).is_some_and(|p| is_word(*p)));
                i = copy_quoted(chars, i, c, escapes, &mut current);
            }
            '`' if dialect.backticks => i = copy_quoted(chars, i, '`', false, &mut current),
            '-' if next == Some('-')
                && (!dialect.dash_comment_needs_space
                    || chars.get(i + 2).is_none_or(|c| c.is_whitespace())) =>
            {
                i = skip_line(chars, i);
                current.push(' ');
            }
            '#' if dialect.hash_comments => {
                i = skip_line(chars, i);
                current.push(' ');
            }
            '/' if next == Some('*') && dialect.executable_comments && executable(chars, i) => {
                // What follows is read as SQL; its closing `*/` stays in the text.
                current.push(' ');
                i += if chars.get(i + 2) == Some(&'!') { 3 } else { 4 };
            }
            '/' if next == Some('*') => {
                i = skip_block_comment(chars, i, dialect.nested_comments);
                current.push(' ');
            }
            '$' if dialect.dollar_quotes && !(i > 0 && is_word(chars[i - 1])) => {
                match dollar_tag(chars, i) {
                    Some(tag) => i = copy_dollar_quoted(chars, i, &tag, &mut current),
                    None => {
                        current.push(c);
                        i += 1;
                    }
                }
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    statements.push(normalize(&current));
    statements
}

/// `/*!` or `/*M!` at `i`.
fn executable(chars: &[char], i: usize) -> bool {
    match chars.get(i + 2) {
        Some('!') => true,
        Some('M') => chars.get(i + 3) == Some(&'!'),
        _ => false,
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Copies a quoted run from its opening quote through its closing one (a doubled quote stays
/// inside); an unclosed quote runs to the end. Returns the index after it.
fn copy_quoted(
    chars: &[char],
    start: usize,
    quote: char,
    escapes: bool,
    out: &mut String,
) -> usize {
    out.push(quote);
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        if escapes && c == '\\' {
            if let Some(&escaped) = chars.get(i + 1) {
                out.push(escaped);
            }
            i += 2;
            continue;
        }
        if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                out.push(quote);
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

/// The index of the newline ending a `--` or `#` comment (kept: it is whitespace).
fn skip_line(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

fn skip_block_comment(chars: &[char], start: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            if depth == 0 || nested {
                depth += 1;
            }
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// `$$` or `$tag$` at `start` (a tag is a letter or `_`, then letters, digits or `_`), as text.
fn dollar_tag(chars: &[char], start: usize) -> Option<String> {
    let mut i = start + 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        if i == start + 1 && chars[i].is_ascii_digit() {
            return None; // $1 is a parameter
        }
        i += 1;
    }
    (chars.get(i) == Some(&'$')).then(|| chars[start..=i].iter().collect())
}

fn copy_dollar_quoted(chars: &[char], start: usize, tag: &str, out: &mut String) -> usize {
    let tag: Vec<char> = tag.chars().collect();
    out.extend(&tag);
    let mut i = start + tag.len();
    while i < chars.len() {
        if chars[i..].starts_with(&tag) {
            out.extend(&tag);
            return i + tag.len();
        }
        out.push(chars[i]);
        i += 1;
    }
    i
}

fn normalize(statement: &str) -> String {
    statement
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
