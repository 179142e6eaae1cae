//! Text that other people wrote (agents' justifications, argv, SQL, tool arguments, comments),
//! made inert for display: control characters, bidirectional controls, zero-width characters and
//! line separators cannot rewrite, reorder, join or hide what a terminal, a chat message or a web
//! page shows. Every channel (CLI, Slack, web inbox) shows such characters the same way, as
//! `\u{…}` escapes, through [`clean`] or [`clean_lines`].

use std::fmt::Write as _;

/// `text` on one line: every [hidden](is_hidden) character escaped, line breaks and tabs as
/// `\n`, `\r`, `\t`, the rest as `\u{202e}`, `\u{200b}`….
pub fn clean(text: &str) -> String {
    escape_hidden(text, false)
}

/// Like [`clean`], but line feeds and tabs stay as they are: for SQL, JSON and justifications
/// shown in a block where their lines matter. Every other hidden character is escaped.
pub fn clean_lines(text: &str) -> String {
    escape_hidden(text, true)
}

fn escape_hidden(text: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if keep_lines => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters a reader cannot see for what they are: control characters, bidirectional
/// controls, zero-width characters and joiners, invisible operators, the byte-order mark, and
/// the line and paragraph separators (which some terminals and chat clients break lines on).
/// `cust\u{200b}omers` looks like `customers`; escaped, it cannot pass for it.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || is_bidi_control(c)
        || matches!(
            c,
            '\u{00ad}' // soft hyphen
                | '\u{034f}' // combining grapheme joiner
                | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' // Hangul fillers, drawn blank
                | '\u{180e}' // Mongolian vowel separator
                | '\u{200b}'..='\u{200d}' // zero-width space, non-joiner, joiner
                | '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{206a}'..='\u{206f}' // deprecated format characters
                | '\u{feff}' // zero-width no-break space, the byte-order mark
                | '\u{fff9}'..='\u{fffb}' // interlinear annotation
        )
}

/// Marks that reorder text (ALM, LRM, RLM, embeddings, overrides, isolates).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(clean("a\nb\u{1b}[2J\u{202e}c"), "a\\nb\\u{1b}[2J\\u{202e}c");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn zero_width_and_separator_characters_are_escaped() {
        assert_eq!(clean("cust\u{200b}omers"), "cust\\u{200b}omers");
        for c in [
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}', '\u{2028}', '\u{2029}',
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
        ] {
            let text = format!("a{c}b");
            assert_eq!(clean(&text), format!("a\\u{{{:x}}}b", u32::from(c)));
            assert_eq!(clean_lines(&text), clean(&text));
        }
        assert_eq!(
            clean_lines("select 1\n\tfrom t\r\u{2028}"),
            "select 1\n\tfrom t\\r\\u{2028}"
        );
        assert_eq!(clean("plain ascii, é, 日本"), "plain ascii, é, 日本");
    }
}
