//! Writing HTML safely: every piece of text goes through [`escape`] (or [`untrusted`] for what an
//! agent wrote), and every page shares one layout.

use std::fmt::Write as _;

use countersign_model::Timestamp;

/// Text made safe for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text an agent controls (its justification, arguments, labels, the names it gives): escaped,
/// and with control and hidden characters (zero-width, bidirectional, line separators) shown as
/// `\u{…}` by the same rule as in every other channel (`countersign_model::text`), so it can
/// neither inject markup nor disguise itself. Line breaks and tabs stay: SQL and justifications
/// keep their lines.
pub fn untrusted(text: &str) -> String {
    escape(&countersign_model::text::clean_lines(text))
}

/// `2026-05-02 14:03:05 UTC`.
pub fn time(at: Timestamp) -> String {
    let text = at.to_string();
    format!(
        "<time datetime=\"{}\">{} UTC</time>",
        escape(&text),
        escape(&text.replace('T', " ").chars().take(19).collect::<String>())
    )
}

/// The pages of the top navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Inbox,
    History,
    Audit,
    Dashboard,
    None,
}

/// Who is signed in, for the page header.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub id: &'a str,
    pub csrf: &'a str,
}

/// A whole page: the layout around `body`.
pub fn page(title: &str, viewer: Option<Viewer<'_>>, active: Nav, body: &str) -> String {
    let mut nav = String::new();
    if let Some(viewer) = viewer {
        nav.push_str("<nav aria-label=\"Main\"><ul>");
        for (item, href, label) in [
            (Nav::Inbox, "/inbox", "Inbox"),
            (Nav::History, "/history", "History"),
            (Nav::Audit, "/audit", "Audit log"),
            (Nav::Dashboard, "/dashboard", "Dashboard"),
        ] {
            let current = if item == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(nav, "<li><a href=\"{href}\"{current}>{label}</a></li>");
        }
        let _ = write!(
            nav,
            "</ul></nav><form class=\"sign-out\" method=\"post\" action=\"/sign-out\">\
             <span>Signed in as <strong>{}</strong></span>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Sign out</button></form>",
            escape(viewer.id),
            escape(viewer.csrf)
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Countersign</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/live.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><a class=\"brand\" href=\"/inbox\">Countersign</a>{nav}</header>\
         <main id=\"main\">{body}</main></body></html>\n",
        title = escape(title),
    )
}

/// A short notice: `kind` is `error`, `ok` or `info`.
pub fn notice(kind: &str, heading: &str, text: &str) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    format!(
        "<div class=\"notice {kind}\" role=\"{role}\"><strong>{}</strong> {}</div>",
        escape(heading),
        escape(text)
    )
}

/// A request's state as a labelled badge.
pub fn state_badge(state: &str) -> String {
    format!("<span class=\"badge {s}\">{s}</span>", s = escape(state))
}
