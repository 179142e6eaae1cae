//! The dashboard: requests of the last two weeks by outcome, day by day, and how long approvals
//! take (the median from request to approval).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use countersign_approval::{Request, State as RequestState};
use countersign_broker::RequestFilter;
use countersign_model::{Timestamp, format_duration};

use crate::charts::{Series, bars};
use crate::html::{Nav, escape, page as layout};
use crate::{App, PageError, Reviewer};

const DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;
/// The dashboard reads at most this many of the newest requests.
const READ: u32 = 10_000;
const OUTCOMES: [(&str, &str); 5] = [
    ("approved", "s-approved"),
    ("denied", "s-denied"),
    ("expired", "s-expired"),
    ("cancelled", "s-cancelled"),
    ("pending", "s-pending"),
];

fn median(mut values: Vec<Duration>) -> Option<Duration> {
    values.sort();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2),
    }
}

fn approval_time(request: &Request) -> Option<Duration> {
    match request.state {
        RequestState::Approved { at } => Some(request.created_at.until(at)),
        _ => None,
    }
}

fn short(d: Duration) -> String {
    if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format_duration(Duration::from_secs(d.as_secs()))
    }
}

pub async fn page(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
) -> Result<Html<String>, PageError> {
    let now = countersign_broker::now().unix_millis();
    let first_day = now.div_euclid(DAY_MS) - (DAYS - 1);
    let since = Timestamp::from_unix_millis(first_day * DAY_MS);
    let requests: Vec<Request> = app
        .broker
        .requests(&RequestFilter {
            created_from: Some(since),
            limit: READ,
            ..Default::default()
        })
        .await?;
    let labels: Vec<String> = (0..DAYS)
        .map(|d| {
            Timestamp::from_unix_millis((first_day + d) * DAY_MS).to_string()[5..10].to_owned()
        })
        .collect();
    let day_of = |r: &Request| {
        usize::try_from(r.created_at.unix_millis().div_euclid(DAY_MS) - first_day).unwrap_or(0)
    };
    let mut counts = vec![vec![0.0; DAYS as usize]; OUTCOMES.len()];
    let mut waits: Vec<Vec<Duration>> = vec![Vec::new(); DAYS as usize];
    for r in &requests {
        let day = day_of(r).min(DAYS as usize - 1);
        if let Some(k) = OUTCOMES
            .iter()
            .position(|(name, _)| *name == r.state.name())
        {
            counts[k][day] += 1.0;
        }
        if let Some(wait) = approval_time(r) {
            waits[day].push(wait);
        }
    }
    let series: Vec<Series<'_>> = OUTCOMES
        .iter()
        .zip(counts.iter())
        .map(|((name, class), values)| Series {
            name,
            class,
            values: values.clone(),
        })
        .collect();
    let medians: Vec<Option<Duration>> = waits.iter().map(|w| median(w.clone())).collect();
    let overall = median(waits.concat());
    let median_series = [Series {
        name: "median time to approval",
        class: "s-approved",
        values: medians
            .iter()
            .map(|m| m.map_or(0.0, |d| d.as_secs_f64()))
            .collect(),
    }];
    let total = requests.len();
    let approved = counts[0].iter().sum::<f64>() as usize;
    let mut body = format!(
        "<h1>Dashboard</h1><p>The last {DAYS} days (UTC), by the day each request was made.</p>\
         <ul class=\"figures\"><li><strong>{total}</strong> requests</li>\
         <li><strong>{approved}</strong> approved</li>\
         <li><strong>{}</strong> median time to approval</li></ul>\
         <section aria-labelledby=\"by-outcome\"><h2 id=\"by-outcome\">Requests by outcome</h2>{}</section>\
         <section aria-labelledby=\"to-approval\"><h2 id=\"to-approval\">Median time to approval</h2>{}</section>",
        escape(&overall.map_or_else(|| "no approvals yet".into(), short)),
        bars(
            "Requests by outcome, per day",
            &labels,
            &series,
            &|v| format!("{v:.0}")
        ),
        bars(
            "Median time to approval, per day",
            &labels,
            &median_series,
            &|v| short(Duration::from_secs_f64(v.max(0.0)))
        ),
    );
    body.push_str(
        "<details><summary>The same figures as a table</summary><div class=\"table\"><table><thead><tr><th scope=\"col\">Day</th>",
    );
    for (name, _) in OUTCOMES {
        let _ = write!(body, "<th scope=\"col\">{name}</th>");
    }
    body.push_str("<th scope=\"col\">median to approval</th></tr></thead><tbody>");
    for (d, label) in labels.iter().enumerate() {
        let _ = write!(body, "<tr><th scope=\"row\">{}</th>", escape(label));
        for row in &counts {
            let _ = write!(body, "<td>{}</td>", row[d]);
        }
        let _ = write!(
            body,
            "<td>{}</td></tr>",
            escape(&medians[d].map_or_else(|| "—".into(), short))
        );
    }
    body.push_str("</tbody></table></div></details>");
    Ok(Html(layout(
        "Dashboard",
        Some(reviewer.viewer()),
        Nav::Dashboard,
        &body,
    )))
}
