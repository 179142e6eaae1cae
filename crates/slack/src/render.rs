//! The Block Kit message for a request. Pure: the request, the rules' reasons and the outcome in,
//! JSON out.
//!
//! Everything the agent controls (the action, resource, labels, claims, justification, the chain
//! it names: who it acts for and what started it) and everything reviewers wrote (comments) is shown
//! only where Slack parses nothing: `rich_text` elements and `plain_text` objects (with emoji
//! shortcodes off), with `&`, `<` and `>` escaped as Slack asks and hidden characters made visible
//! (`countersign_model::text`). `mrkdwn` carries only text Countersign or its configuration writes
//! (reviewers' ids, rule ids and reasons, times, the link), escaped too. So no agent can mention
//! `@channel`, add a link or an emoji, format text, or make its words look like the message's own
//! fields.

use countersign_approval::{Request, State, Verdict};
use countersign_model::claims::{self, CLAIMS_CAPTION};
use countersign_model::text::{clean, clean_lines, truncate};
use countersign_model::{Action, PrincipalKind, Summary, Timestamp, summary};
use serde_json::{Value, json};

/// The longest stretch of agent text shown in one block; Slack refuses a section over 3,000.
const MAX_TEXT: usize = 2_800;

/// Action ids of the message's buttons, and of the deny modal.
pub const APPROVE: &str = "countersign_approve";
pub const DENY: &str = "countersign_deny";
pub const DENY_MODAL: &str = "countersign_deny_reason";
pub const REASON_BLOCK: &str = "reason";
pub const REASON_INPUT: &str = "reason_input";

pub use countersign_channel::{Context, Outcome};

/// Escapes the three characters Slack gives meaning to in text: `&`, `<`, `>`.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text someone else wrote, made inert: visible control characters, escaped, bounded.
fn inert(text: &str, max: usize) -> String {
    escape(&truncate(&clean(text), max))
}

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text, "emoji": false })
}

fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": text })
}

/// A date Slack shows in each reader's own time zone, with `fallback` for old clients.
fn date(at: Timestamp) -> String {
    let secs = at.unix_millis().div_euclid(1000);
    format!("<!date^{secs}^{{date_short_pretty}} at {{time}}|{at}>")
}

/// The exact action, as its kind is summed up: the command line of a `shell.exec`, the SQL of a
/// `sql.statement`, every detail (as JSON) of anything else.
pub fn action_text(request: &Request) -> String {
    let summary = summary(&request.action);
    let text = match summary {
        Summary::Details(details) => {
            serde_json::to_string_pretty(details).unwrap_or_else(|_| summary.line())
        }
        // The command line names the program as the agent typed it; which file runs is the path
        // `countersign run` resolved, and a look-alike (`./pg_dump`) must be seen as such.
        Summary::Command(_) => match request
            .action
            .details
            .get("program")
            .and_then(Value::as_str)
        {
            Some(program) => format!("{}\n# the program {program}", summary.line()),
            None => summary.line(),
        },
        Summary::Sql(_) => summary.line(),
    };
    // Newlines stay real in a code block (SQL, JSON); tabs become spaces; the rest is visible.
    truncate(&clean_lines(&text.replace('\t', "    ")), MAX_TEXT)
}

/// Where the request stands, in the words of a message's title.
fn state_words(request: &Request) -> &'static str {
    match request.state {
        State::Pending => "Approval requested",
        State::Approved { .. } => "Approved",
        State::Denied { .. } => "Denied",
        State::Expired { .. } => "Expired",
        State::Cancelled { .. } => "Cancelled",
    }
}

fn title(request: &Request) -> String {
    let state = state_words(request);
    truncate(&format!("{state}: {}", request.action.kind), 150)
}

/// The notification text (what a phone shows, and what Slack parses as mrkdwn): Countersign's
/// words and the requester's configured id only; the kind is the agent's, so it stays out.
pub fn fallback_text(request: &Request) -> String {
    let state = state_words(request);
    escape(&format!(
        "{state}: request {} from {}",
        request.id, request.action.principal.id
    ))
}

/// A `rich_text` text element: literal, never parsed for formatting, mentions or emoji.
fn literal(text: &str, bold: bool) -> Value {
    let mut element = json!({ "type": "text", "text": text });
    if bold {
        element["style"] = json!({ "bold": true });
    }
    element
}

/// Who asks, as literal rich text: the agent names who it acts for and what started it, so
/// those names are never mrkdwn (`:rotating_light:` or `_urgent_` stays as typed).
fn who_asks(request: &Request) -> Value {
    let chain = &request.action.principal;
    let kind = match chain.kind {
        PrincipalKind::Agent => "agent",
        PrincipalKind::Human => "human",
        PrincipalKind::Service => "service",
    };
    let name = |id: &str| literal(&truncate(&clean(id), 150), true);
    let mut elements = vec![name(&chain.id), literal(&format!(" ({kind})"), false)];
    for (i, human) in chain.on_behalf_of.iter().enumerate() {
        let joint = if i == 0 { ", acting for " } else { " and " };
        elements.push(literal(joint, false));
        elements.push(name(human));
    }
    if let Some(started) = &chain.started_by {
        elements.push(literal(", started by ", false));
        elements.push(name(started));
    }
    elements.push(literal(" asks to run:", false));
    json!({ "type": "rich_text_section", "elements": elements })
}

/// Under the buttons, which everyone in the channel shares: who cannot review, and why.
fn chain_note(request: &Request) -> Value {
    let members: Vec<String> = request
        .action
        .principal
        .members()
        .map(|m| truncate(&clean(m), 150))
        .collect();
    plain(&escape(&format!(
        "Nobody in this request's chain ({}) can review it: the agent, the people it acts for and what started it never approve their own request, and their clicks are refused.",
        members.join(", ")
    )))
}

fn quorum(request: &Request) -> String {
    let mut lines = Vec::new();
    for (progress, requirement) in request.progress().iter().zip(request.requirements()) {
        let mark = if progress.satisfied {
            ":white_check_mark:"
        } else if progress.rejected {
            ":no_entry:"
        } else {
            ":hourglass_flowing_sand:"
        };
        let mut line = format!(
            "{mark} {} of {} from {}",
            progress.approved_by.len(),
            progress.needed,
            escape(&requirement.who())
        );
        if progress.groups_needed > 0 {
            line.push_str(&format!(
                ", covering {} of {} groups",
                progress.groups_covered, progress.groups_needed
            ));
        }
        line.push_str(&format!(" (rule `{}`)", escape(&requirement.rule)));
        lines.push(line);
    }
    lines.join("\n")
}

fn reviews(request: &Request) -> Option<Value> {
    if request.reviews.is_empty() {
        return None;
    }
    let lines: Vec<String> = request
        .reviews
        .iter()
        .map(|review| {
            let (mark, verb) = match review.verdict {
                Verdict::Approve => (":white_check_mark:", "approved"),
                Verdict::Deny => (":x:", "denied"),
            };
            let groups: Vec<&str> = review.reviewer.groups.iter().map(String::as_str).collect();
            let groups = if groups.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(&groups.join(", ")))
            };
            format!(
                "{mark} *{}*{groups} {verb} via {} {}",
                escape(&review.reviewer.id),
                review.channel.as_str(),
                date(review.at)
            )
        })
        .collect();
    let mut block =
        json!({ "type": "section", "text": mrkdwn(&format!("*Reviews*\n{}", lines.join("\n"))) });
    // Comments are people's words: plain text only.
    let comments: Vec<Value> = request
        .reviews
        .iter()
        .filter_map(|r| {
            r.comment.as_ref().map(|c| {
                plain(&format!(
                    "{}: “{}”",
                    r.reviewer.id,
                    inert(c, 1_900 / request.reviews.len().max(1))
                ))
            })
        })
        .take(10)
        .collect();
    if !comments.is_empty() {
        block["fields"] = Value::Array(comments);
    }
    Some(block)
}

fn ending(request: &Request, context: &Context) -> Option<String> {
    let state = match &request.state {
        State::Pending => None,
        State::Approved { at } => Some(format!(
            ":white_check_mark: *Approved* {}: every requirement is met.",
            date(*at)
        )),
        State::Denied { at, by } => Some(format!(
            ":x: *Denied* by *{}* {}. The action will not run.",
            escape(by),
            date(*at)
        )),
        State::Expired { at } => Some(format!(
            ":hourglass: *Expired* {}: nobody approved in time. It was not denied; the action did not run.",
            date(*at)
        )),
        State::Cancelled { at, by } => Some(format!(
            ":heavy_multiplication_x: *Cancelled* by *{}* {}. The action will not run.",
            escape(by),
            date(*at)
        )),
    }?;
    let outcome = context.outcome.as_ref().map(|o| {
        let exit = o
            .exit_code
            .map(|c| format!(" with exit status {c}"))
            .unwrap_or_default();
        let verb = if o.status == "ran" { "ran" } else { "failed" };
        format!("\n*Outcome*: the action {verb}{exit} {}.", date(o.at))
    });
    Some(state + &outcome.unwrap_or_default())
}

/// How the command differs from the requester's last request for the same program, under
/// Countersign's caption: literal rich text, as the sentences quote paths and variable names
/// the agent chose.
fn unusual(request: &Request, context: &Context) -> Option<Value> {
    if context.unusual.is_empty() {
        return None;
    }
    let caption = countersign_model::usual::caption(&request.action.principal.id);
    let mut elements = vec![json!({
        "type": "rich_text_section",
        "elements": [literal(&format!("{caption}:"), true)]
    })];
    elements.push(json!({
        "type": "rich_text_list",
        "style": "bullet",
        "elements": context.unusual.iter().map(|sentence| json!({
            "type": "rich_text_section",
            "elements": [literal(&truncate(&clean(sentence), MAX_TEXT), false)]
        })).collect::<Vec<_>>()
    }));
    Some(json!({ "type": "rich_text", "elements": elements }))
}

/// The agent's claims, on their own marked line, and a warning for each one that contradicts a
/// label: literal rich text, like the justification, so a claim can neither mention, link nor
/// pass for the message's own fields.
fn claims(action: &Action) -> Option<Value> {
    let says = claims::says(&action.claims)?;
    let mut elements = vec![
        json!({
            "type": "rich_text_section",
            "elements": [{ "type": "text", "text": format!("{CLAIMS_CAPTION}:"), "style": { "italic": true } }]
        }),
        json!({
            "type": "rich_text_quote",
            "elements": [literal(&truncate(&clean(&says), MAX_TEXT), false)]
        }),
    ];
    for disagreement in claims::disagreements(&action.labels, &action.claims) {
        elements.push(json!({
            "type": "rich_text_section",
            "elements": [
                literal("Warning: ", true),
                literal(&truncate(&clean(&disagreement.warning()), MAX_TEXT), false)
            ]
        }));
    }
    Some(json!({ "type": "rich_text", "elements": elements }))
}

/// The message's blocks.
pub fn blocks(request: &Request, context: &Context) -> Value {
    let action = &request.action;
    let mut blocks = vec![
        json!({ "type": "header", "text": plain(&title(request)) }),
        json!({
            "type": "rich_text",
            "elements": [
                who_asks(request),
                {
                    "type": "rich_text_preformatted",
                    "elements": [{ "type": "text", "text": action_text(request) }]
                }
            ]
        }),
    ];
    let mut fields = vec![mrkdwn("*Resource*"), plain(&inert(&action.resource, 1_000))];
    if !action.labels.is_empty() {
        fields.push(mrkdwn("*Labels*"));
        fields.push(plain(&inert(&action.labels_line(), 1_000)));
    }
    blocks.push(json!({ "type": "section", "fields": fields }));
    blocks.extend(claims(action));
    blocks.push(json!({
        "type": "context",
        "elements": [mrkdwn(
            "The labels are what Countersign vouches for; the action and resource are as the enforcement point sent them; an approval binds to exactly this action (its digest is below)."
        )]
    }));
    if let Some(justification) = &action.justification {
        blocks.push(json!({
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [{
                        "type": "text",
                        "text": "The agent's justification (its own words, not verified by Countersign):",
                        "style": { "italic": true }
                    }]
                },
                {
                    "type": "rich_text_quote",
                    "elements": [{ "type": "text", "text": truncate(&clean(justification), MAX_TEXT) }]
                }
            ]
        }));
    }
    blocks.extend(unusual(request, context));
    let rules: Vec<String> = context
        .rules
        .iter()
        .map(|(id, reason)| format!("*Rule* `{}`: {}", escape(id), escape(reason)))
        .collect();
    if !rules.is_empty() {
        blocks.push(
            json!({ "type": "section", "text": mrkdwn(&truncate(&rules.join("\n"), MAX_TEXT)) }),
        );
    }
    blocks.push(
        json!({ "type": "section", "text": mrkdwn(&format!("*Approvals*\n{}", quorum(request))) }),
    );
    blocks.extend(reviews(request));
    match ending(request, context) {
        Some(end) => blocks.push(json!({ "type": "section", "text": mrkdwn(&end) })),
        None => blocks.push(json!({
            "type": "actions",
            "block_id": "countersign_review",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "style": "primary",
                    "text": plain("Approve"),
                    "value": request.id.to_string(),
                    "confirm": {
                        "title": plain("Approve this request?"),
                        "text": plain(&format!(
                            "You approve request {} exactly as shown: {}",
                            request.id,
                            escape(&truncate(&action_text(request), 250))
                        )),
                        "confirm": plain("Approve"),
                        "deny": plain("Back")
                    }
                },
                {
                    "type": "button",
                    "action_id": DENY,
                    "style": "danger",
                    "text": plain("Deny…"),
                    "value": request.id.to_string()
                }
            ]
        })),
    }
    if request.state.is_pending() {
        blocks.push(json!({ "type": "context", "elements": [chain_note(request)] }));
    }
    let expiry = if request.state.is_pending() {
        format!("Expires {} · ", date(request.expires_at))
    } else {
        String::new()
    };
    blocks.push(json!({
        "type": "context",
        "elements": [mrkdwn(&format!(
            "{expiry}<{}|Request {}> · digest `{}`",
            context.link.replace(['<', '>', '|'], ""),
            request.id,
            request.digest
        ))]
    }));
    Value::Array(blocks)
}

/// The modal that asks a reviewer why they deny; `private_metadata` carries what the submission
/// needs to act (the request, and where to answer).
pub fn deny_modal(request: &Request, private_metadata: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": private_metadata,
        "title": plain("Deny request"),
        "submit": plain("Deny"),
        "close": plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": plain(&format!(
                    "You deny request {}: {}",
                    request.id,
                    escape(&truncate(&action_text(request), 500))
                ))
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": plain("Why? The requester sees this."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": true,
                    "min_length": 3,
                    "max_length": 2000
                }
            }
        ]
    })
}
