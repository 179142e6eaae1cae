//! The live status line on stderr while a request waits for approval: rewritten in place on a
//! terminal (with the time left ticking), one line per change otherwise (logs, CI).

use std::time::Duration;

use countersign_client::RequestView;
use countersign_model::format_duration;

use crate::describe::waiting_for;

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
