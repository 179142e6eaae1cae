//! The live status line on stderr while a request waits for approval: rewritten in place on a
//! terminal (with the time left ticking), one line per change otherwise (logs, CI).

use std::time::Duration;

use countersign_client::{RequestView, ReviewView, Verdict};
use countersign_model::format_duration;

use crate::describe::{clean, waiting_for};

/// One review as it arrives, in words: who, which way, and what is still needed.
/// "dana approved (via slack); still needed: 1 more approval from members of dba or sre,
/// covering 1 more group".
pub fn review_line(view: &RequestView, review: &ReviewView) -> String {
    let who = clean(&review.reviewer);
    let via = clean(&review.channel);
    let mut line = match (&review.verdict, review.comment.as_deref()) {
        (Verdict::Approve, None) => format!("{who} approved (via {via})"),
        (Verdict::Approve, Some(comment)) => {
            format!("{who} approved (via {via}): {}", clean(comment))
        }
        (Verdict::Deny, None) => format!("{who} denied (via {via})"),
        (Verdict::Deny, Some(comment)) => format!("{who} denied (via {via}): {}", clean(comment)),
    };
    let mut needed = Vec::new();
    for p in view.progress.iter().filter(|p| !p.satisfied) {
        let who = view
            .requirement(&p.rule)
            .map_or_else(|| format!("rule {}", p.rule), |r| r.who());
        let more = p.needed.saturating_sub(p.approved_by.len() as u32);
        let mut part = format!(
            "{more} more approval{} from {}",
            if more == 1 { "" } else { "s" },
            clean(&who)
        );
        let groups = p.groups_needed.saturating_sub(p.groups_covered);
        if groups > 0 {
            part.push_str(&format!(
                ", covering {groups} more group{}",
                if groups == 1 { "" } else { "s" }
            ));
        }
        if !p.denied_by.is_empty() {
            let denials = p.denials_needed.saturating_sub(p.denied_by.len() as u32);
            part.push_str(&format!(
                " ({denials} more denial{} would end the request)",
                if denials == 1 { "" } else { "s" }
            ));
        }
        needed.push(part);
    }
    if needed.is_empty() {
        line.push_str("; no more approvals are needed");
    } else {
        line.push_str("; still needed: ");
        line.push_str(&needed.join("; and "));
    }
    line
}

/// "waiting for members of dba or sre: 1/2 approvals (dana), 1/2 groups; 29m12s left; request
/// r_…". Without `left`, the time left is left out (to tell whether anything else changed).
pub fn render(view: &RequestView, left: Option<Duration>) -> String {
    let mut line = format!("waiting for {}", waiting_for(view));
    if let Some(left) = left {
        let left = format_duration(Duration::from_secs(left.as_secs()));
        line.push_str(&format!("; {left} left"));
    }
    line.push_str(&format!("; request {}", view.id));
    line
}

#[derive(Debug)]
pub struct StatusLine {
    /// Rewrite the line in place (stderr is a terminal) rather than print one per change.
    live: bool,
    /// What was last printed, without the time left.
    last: Option<String>,
    /// A live line is on screen and needs a newline before anything else is printed.
    drawn: bool,
}

impl StatusLine {
    pub fn new(live: bool) -> StatusLine {
        StatusLine {
            live,
            last: None,
            drawn: false,
        }
    }

    /// Shows the request as it now stands.
    pub fn show(&mut self, view: &RequestView, left: Duration) {
        if self.live {
            self.draw(view, left);
            return;
        }
        let key = render(view, None);
        if self.last.as_ref() != Some(&key) {
            eprintln!("countersign: {}", render(view, Some(left)));
            self.last = Some(key);
        }
    }

    /// Called every second: on a terminal, the time left counts down.
    pub fn tick(&mut self, view: &RequestView, left: Duration) {
        if self.live {
            self.draw(view, left);
        }
    }

    /// Prints a line of its own below the status line.
    pub fn note(&mut self, text: &str) {
        self.finish();
        eprintln!("countersign: {text}");
    }

    /// Ends the live line, so what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    fn draw(&mut self, view: &RequestView, left: Duration) {
        // \r back to the start of the line, ESC [K clears what a longer previous line left.
        eprint!("\r\x1b[Kcountersign: {}", render(view, Some(left)));
        self.drawn = true;
    }
}
