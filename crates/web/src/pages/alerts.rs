//! Alerts on the inbox: the latest reported decisions the broker decided otherwise
//! (`action.report_mismatch`), so a tampered or stale gate on an agent's machine is seen by the
//! people who review that agent. Each alert's words come from the broker, but they quote the
//! agent's command, so they are escaped and their hidden characters shown.

use std::fmt::Write as _;

use countersign_audit::AuditEvent;

use crate::html::{escape, time, untrusted};
use crate::{App, PageError};

/// How many alerts the inbox lists.
const SHOWN: usize = 10;

/// The alerts section, or nothing when no reported decision disagreed with the policy lately.
pub async fn section(app: &App) -> Result<String, PageError> {
    let alerts = app.broker.report_mismatches(SHOWN).await?;
    if alerts.is_empty() {
        return Ok(String::new());
    }
    let mut out = format!(
        "<section class=\"alerts\" aria-labelledby=\"alerts\">\
         <h2 id=\"alerts\">Alerts <span class=\"count\">{}</span></h2>\
         <p class=\"hint\">An enforcement point that runs as the agent reported a decision that \
         the policy it named does not make, or that cannot be checked: its local gate may have \
         been changed or be out of date. The action already ran or was refused there.</p>\
         <ul class=\"alerts\" aria-labelledby=\"alerts\">",
        alerts.len()
    );
    for alert in &alerts {
        let _ = write!(out, "{}", item(alert));
    }
    out.push_str("</ul></section>");
    Ok(out)
}

fn item(alert: &AuditEvent) -> String {
    let enforced_by = alert
        .data
        .get("enforced_by")
        .and_then(|v| v.as_str())
        .map(|by| format!(" · <span>through <code>{}</code></span>", untrusted(by)))
        .unwrap_or_default();
    format!(
        "<li class=\"notice error\" data-audit-seq=\"{seq}\"><div class=\"meta\">{at} · \
         <strong>{who}</strong>{enforced_by} · <a href=\"/audit?through={seq}\">event {seq}</a>\
         </div><div>{explanation}</div></li>",
        seq = alert.seq,
        at = time(alert.time),
        who = escape(alert.principal.as_deref().unwrap_or("")),
        explanation = untrusted(&alert.explanation),
    )
}
