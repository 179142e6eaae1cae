#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The web inbox driven through the real router, in process, without a browser: sign-in and its
//! cookies, the CSRF and Origin checks, refusals in plain words, and the escaping of everything
//! an agent controls.

mod inbox;

use axum::http::StatusCode;
use inbox::{Form, start, token};
use serde_json::json;

#[tokio::test]
async fn pages_need_a_session_and_send_strangers_to_sign_in() {
    let inbox = start("http://127.0.0.1:8750").await;
    let answer = inbox.get("/inbox", None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/sign-in?next=%2Finbox");
    let answer = inbox
        .get(
            "/requests/r_00000000000000000000000000000000?x=1",
            Some("countersign_session=made-up"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(
        answer
            .location()
            .starts_with("/sign-in?next=%2Frequests%2F"),
        "{}",
        answer.location()
    );
    assert_eq!(
        inbox.get("/inbox/events", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The broker's own routes are untouched: its fallback still answers unknown paths.
    assert_eq!(
        inbox.get("/no/such/page", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_and_secure_over_https() {
    let inbox = start("http://127.0.0.1:8750").await;
    let form = inbox.get("/sign-in", None).await;
    let answer = inbox
        .post_form(
            "/sign-in/token",
            &form.cookie("countersign_form"),
            None,
            &[("token", &token("dana")), ("csrf", &form.csrf())],
        )
        .await;
    let session = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("countersign_session="))
        .unwrap();
    assert!(session.contains("; HttpOnly"), "{session}");
    assert!(session.contains("; SameSite=Lax"), "{session}");
    assert!(session.contains("; Path=/;"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain http cannot carry Secure cookies: {session}"
    );
    let page = inbox
        .get("/inbox", Some(&answer.cookie("countersign_session")))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Signed in as <strong>dana</strong>"));
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");

    let inbox = start("https://countersign.example.test").await;
    let form = inbox.get("/sign-in", None).await;
    assert!(form.set_cookies()[0].ends_with("; Secure"));
    let answer = inbox
        .post_form(
            "/sign-in/token",
            &form.cookie("countersign_form"),
            Some("https://countersign.example.test"),
            &[("token", &token("dana")), ("csrf", &form.csrf())],
        )
        .await;
    assert!(
        answer.set_cookies().iter().all(|c| c.ends_with("; Secure")),
        "{:?}",
        answer.set_cookies()
    );
}

#[tokio::test]
async fn agents_and_unknown_tokens_cannot_sign_in() {
    let inbox = start("http://127.0.0.1:8750").await;
    for (token, says) in [
        (token("deploy-bot"), "deploy-bot+is+an+agent"),
        ("nonsense".to_owned(), "that+token+is+not+known"),
    ] {
        let form = inbox.get("/sign-in", None).await;
        let answer = inbox
            .post_form(
                "/sign-in/token",
                &form.cookie("countersign_form"),
                None,
                &[("token", &token), ("csrf", &form.csrf())],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert!(answer.location().contains(says), "{}", answer.location());
        assert!(
            answer
                .set_cookies()
                .iter()
                .all(|c| !c.starts_with("countersign_session="))
        );
    }
    // The sign-in form itself is protected: a post from elsewhere signs nobody in.
    let form = inbox.get("/sign-in", None).await;
    let answer = inbox
        .post_form(
            "/sign-in/token",
            "countersign_form=attacker",
            None,
            &[("token", &token("dana")), ("csrf", &form.csrf())],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_review_without_the_sessions_token_or_from_another_site_is_refused_and_not_recorded() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_asks(&["sh", "-c", "echo hi"], "routine", json!({}))
        .await;
    let dana = inbox.sign_in("dana").await;
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    let csrf = page.csrf();
    let uri = format!("/requests/{id}/review");

    let cases: [(Form<'_>, Option<&str>); 4] = [
        (&[("verdict", "approve")], None),
        (&[("verdict", "approve"), ("csrf", "")], None),
        (&[("verdict", "approve"), ("csrf", "guessed-token")], None),
        (
            &[("verdict", "approve"), ("csrf", &csrf)],
            Some("https://evil.example"),
        ),
    ];
    for (form, origin) in cases {
        let answer = inbox.post_form(&uri, &dana, origin, form).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{form:?} {origin:?}");
        assert!(answer.body.contains("Nothing was done"), "{}", answer.body);
    }
    // Another session's token is not this session's.
    let alice = inbox.sign_in("alice").await;
    let alices = inbox
        .get(&format!("/requests/{id}"), Some(&alice))
        .await
        .csrf();
    let answer = inbox
        .post_form(
            &uri,
            &dana,
            None,
            &[("verdict", "approve"), ("csrf", &alices)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        inbox.review_events(&id).await.is_empty(),
        "a forged form must record nothing"
    );
    let stored = inbox.stored(&id).await;
    assert!(stored.reviews.is_empty() && stored.state.is_pending());

    // With its token and from this site, the same review counts.
    let answer = inbox
        .post_form(
            &uri,
            &dana,
            Some("http://127.0.0.1:8750"),
            &[("verdict", "approve"), ("csrf", &csrf), ("comment", "fine")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location(),
        format!("/requests/{id}?reviewed=approve")
    );
    assert_eq!(inbox.review_events(&id).await, ["review.approved"]);
    let page = inbox.get(answer.location(), Some(&dana)).await;
    assert!(page.body.contains("Your approval is recorded."));
    assert!(
        page.body
            .contains("<span class=\"badge approved\">approved</span>")
    );
    assert!(
        page.body
            .contains("<td>dana</td><td>approve</td><td>fine</td><td>web, API token</td>"),
        "{}",
        page.body
    );

    // Signing out needs the token too, and ends the session.
    let answer = inbox.post_form("/sign-out", &dana, None, &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = inbox
        .post_form("/sign-out", &dana, None, &[("csrf", &csrf)])
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        inbox.get("/inbox", Some(&dana)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_human_the_agent_acts_for_is_told_plainly_why_their_approval_is_refused() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_asks(&["sh", "-c", "echo hi"], "routine", json!({}))
        .await;
    let alice = inbox.sign_in("alice").await;
    let page = inbox.get(&format!("/requests/{id}"), Some(&alice)).await;
    assert!(
        page.body
            .contains("You are in this request's delegation chain")
    );
    let answer = inbox
        .post_form(
            &format!("/requests/{id}/review"),
            &alice,
            None,
            &[("verdict", "approve"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.body.contains(
            "Countersign refused your review:</strong> alice cannot review this request: alice is the person the requester acts for, and nobody approves their own request"
        ),
        "{}",
        answer.body
    );
    assert_eq!(inbox.review_events(&id).await, ["review.refused"]);
}

#[tokio::test]
async fn everything_the_agent_wrote_is_escaped_and_invisible_characters_are_shown() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_asks(
            &[
                "sh",
                "-c",
                "echo </code><script>alert(1)</script>",
                "safe\u{202E}txt.exe",
            ],
            "<img src=x onerror=alert(2)> trust me\" data-x='",
            json!({"env": "\"><script>alert(3)</script>"}),
        )
        .await;
    let dana = inbox.sign_in("dana").await;
    for uri in [
        format!("/requests/{id}"),
        "/inbox".into(),
        "/history".into(),
        "/audit".into(),
    ] {
        let page = inbox.get(&uri, Some(&dana)).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        for raw in ["<script>", "<img", "\u{202E}", "onerror=alert(2)>"] {
            assert!(!page.body.contains(raw), "{uri} shows {raw:?} unescaped");
        }
    }
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    assert!(
        page.body
            .contains("&lt;/code&gt;&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(
        page.body
            .contains("&lt;img src=x onerror=alert(2)&gt; trust me&quot; data-x=&#39;")
    );
    assert!(
        page.body
            .contains("env=&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;")
    );
    assert!(
        page.body.contains("safe\\u{202e}txt.exe"),
        "the direction override is shown, not obeyed"
    );
    assert!(
        page.body
            .contains("The agent's own words — not checked by Countersign")
    );
}

#[tokio::test]
async fn an_identity_provider_callback_must_match_the_sign_in_this_browser_started() {
    let inbox = start("http://127.0.0.1:8750").await;
    // No sign-in was started: any state is refused.
    let answer = inbox
        .get(
            "/auth/callback?code=abc&state=xyz",
            Some("countersign_login=xyz"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .body
            .contains("This sign-in was not started in this browser")
    );
    // The state in the URL is not the one this browser's cookie holds.
    let answer = inbox
        .get(
            "/auth/callback?code=abc&state=xyz",
            Some("countersign_login=other"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = inbox.get("/auth/callback?code=abc&state=xyz", None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("countersign_session="))
    );
}

#[tokio::test]
async fn history_filters_and_the_dashboard_and_audit_pages_render() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_asks(
            &["sh", "-c", "echo one"],
            "first",
            json!({"env": "production"}),
        )
        .await;
    let dana = inbox.sign_in("dana").await;
    let page = inbox
        .get(
            "/history?state=pending&agent=deploy-bot&rule=scripted-change",
            Some(&dana),
        )
        .await;
    assert!(page.body.contains(&id), "{}", page.body);
    let page = inbox.get("/history?state=approved", Some(&dana)).await;
    assert!(!page.body.contains(&id));
    let page = inbox
        .get("/history?from=2000-01-01&to=2000-01-02", Some(&dana))
        .await;
    assert!(page.body.contains("No request matches these filters."));
    let page = inbox.get("/history?from=yesterday", Some(&dana)).await;
    assert!(
        page.body
            .contains("From &#39;yesterday&#39; is not a date like 2026-05-02")
    );

    let page = inbox.get("/audit", Some(&dana)).await;
    assert!(
        page.body.contains("The audit log is intact."),
        "{}",
        page.body
    );
    assert!(page.body.contains("request.created"));
    let page = inbox.get("/dashboard", Some(&dana)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg class=\"chart\""));
    assert!(page.body.contains("<strong>1</strong> requests"));
}

#[tokio::test]
async fn titles_are_chosen_by_the_kind_so_an_argv_argument_hides_no_other() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_sends(json!({
            "kind": "mcp.tool_call", "resource": "mcp:github/delete_file",
            "details": {"argv": ["ls"], "path": "README.md"}
        }))
        .await;
    let dana = inbox.sign_in("dana").await;
    let title = "mcp.tool_call on mcp:github/delete_file \
                 {&quot;argv&quot;:[&quot;ls&quot;],&quot;path&quot;:&quot;README.md&quot;}";
    let inbox_page = inbox.get("/inbox", Some(&dana)).await;
    assert!(
        inbox_page.body.contains(&format!(
            "<a class=\"title\" href=\"/requests/{id}\"><code>{title}</code></a>"
        )),
        "{}",
        inbox_page.body
    );
    let history = inbox.get("/history", Some(&dana)).await;
    assert!(
        history
            .body
            .contains(&format!("<td><code>{title}</code></td>")),
        "{}",
        history.body
    );
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    assert!(
        page.body
            .contains(&format!("<h1><code>{title}</code></h1>")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("<pre class=\"exact\">"),
        "a tool call's argv argument is not shown as what will run: {}",
        page.body
    );

    // A command is still titled by its command line.
    let id = inbox
        .agent_asks(&["sh", "-c", "echo hi"], "routine", json!({}))
        .await;
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    assert!(
        page.body
            .contains("<h1><code>sh -c &#39;echo hi&#39;</code></h1>")
    );
}

#[tokio::test]
async fn line_separators_and_zero_width_characters_are_shown_as_in_every_channel() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_asks(
            &["sh", "-c", "echo cust\u{200b}omers"],
            "first line\u{2028}second\u{2029}third\u{feff}",
            json!({"team": "d\u{2060}ba"}),
        )
        .await;
    let dana = inbox.sign_in("dana").await;
    for uri in [
        format!("/requests/{id}"),
        "/inbox".into(),
        "/history".into(),
    ] {
        let page = inbox.get(&uri, Some(&dana)).await;
        for hidden in ['\u{200b}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{2060}'] {
            assert!(
                !page.body.contains(hidden),
                "{uri} holds {hidden:?} as itself"
            );
        }
    }
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    for shown in [
        "cust\\u{200b}omers",
        "first line\\u{2028}second\\u{2029}third\\u{feff}",
        "team=d\\u{2060}ba",
    ] {
        assert!(page.body.contains(shown), "{shown} not in {}", page.body);
    }
}

#[tokio::test]
async fn the_human_the_agent_acts_for_sees_why_they_cannot_review_instead_of_buttons() {
    let inbox = start("http://127.0.0.1:8750").await;
    let id = inbox
        .agent_asks(&["sh", "-c", "echo hi"], "routine", json!({}))
        .await;
    let alice = inbox.sign_in("alice").await;
    let page = inbox.get(&format!("/requests/{id}"), Some(&alice)).await;
    assert!(
        page.body.contains(
            "You are in this request's delegation chain (deploy-bot acts for you), so you cannot approve or deny it"
        ),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("value=\"approve\"") && !page.body.contains("value=\"deny\""),
        "no buttons that can only be refused: {}",
        page.body
    );
    let list = inbox.get("/inbox", Some(&alice)).await;
    assert!(
        list.body
            .contains("You cannot review this one: deploy-bot acts for you."),
        "{}",
        list.body
    );

    // An eligible reviewer outside the chain still has the buttons, and no such note.
    let dana = inbox.sign_in("dana").await;
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    assert!(page.body.contains("value=\"approve\"") && page.body.contains("value=\"deny\""));
    let list = inbox.get("/inbox", Some(&dana)).await;
    assert!(!list.body.contains("You cannot review this one"));
}

/// The agent's claims are its words on their own marked line, each one that contradicts a label
/// comes with a warning that the configuration wins, and a claim written as markup or with
/// characters that reorder or hide text is escaped like the justification (control characters
/// never get this far: an action carrying one is refused): on the request's page and in the inbox.
#[tokio::test]
async fn claims_are_the_agents_words_and_each_disagreement_is_a_warning() {
    let inbox = start("http://127.0.0.1:8750").await;
    let first = inbox
        .agent_asks(&["sh", "-c", "terraform apply"], "routine", json!({}))
        .await;
    let mut action = inbox.stored(&first).await.action;
    action.labels = [("env".to_owned(), "production".to_owned())].into();
    action.claims = [
        ("env".to_owned(), "staging".to_owned()),
        (
            "ticket".to_owned(),
            "</q><script>alert(4)</script>\u{200b}\u{202e}".to_owned(),
        ),
    ]
    .into();
    let id = inbox.submitted(action).await;
    let dana = inbox.sign_in("dana").await;
    let warning = "the agent says env=staging; Countersign&#39;s configuration says env=production — the configuration wins";
    for uri in [format!("/requests/{id}"), "/inbox".into()] {
        let page = inbox.get(&uri, Some(&dana)).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        for raw in ["<script>", "</q><script", "\u{200b}", "\u{202e}"] {
            assert!(!page.body.contains(raw), "{uri} shows {raw:?} unescaped");
        }
        for shown in [
            "The agent&#39;s claims (its own words, not facts Countersign vouches for; rules match labels)",
            "<q>the agent says: env=staging, ticket=&lt;/q&gt;&lt;script&gt;alert(4)&lt;/script&gt;\\u{200b}\\u{202e}</q>",
            warning,
            "<span class=\"chip\">env=production</span>",
        ] {
            assert!(
                page.body.contains(shown),
                "{uri}: {shown} not in {}",
                page.body
            );
        }
        assert_eq!(
            page.body.matches("the configuration wins").count(),
            1,
            "{uri}"
        );
    }
    // A request without claims shows neither.
    let page = inbox.get(&format!("/requests/{first}"), Some(&dana)).await;
    assert!(!page.body.contains("the agent says"), "{}", page.body);
}

/// A reported decision the policy does not make is an alert on the inbox, escaped like every
/// other text that quotes the agent.
#[tokio::test]
async fn the_inbox_shows_a_reported_decision_the_policy_does_not_make_as_an_alert() {
    use countersign_model::{Action, Chain, PrincipalKind};
    let inbox = start("http://127.0.0.1:8750").await;
    let dana = inbox.sign_in("dana").await;
    let page = inbox.get("/inbox", Some(&dana)).await;
    assert!(!page.body.contains("id=\"alerts\""), "no alert yet");

    let action = Action {
        kind: "shell.exec".into(),
        resource: "host:build-1".into(),
        labels: Default::default(),
        claims: Default::default(),
        details: json!({"argv": ["rm", "-rf", "</code><script>alert(1)</script>\u{202E}"]}),
        principal: Chain {
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
            via: None,
        },
        justification: None,
    };
    let policy = countersign_policy::Policy::parse(inbox::POLICY).unwrap();
    let report = json!({"events": [{
        "type": "action.allowed",
        "explanation": "allowed by the local gate",
        "data": {
            "event_id": "e-1",
            "digest": action.digest().unwrap(),
            "rules": ["scripted-change"],
            "policy": policy.hash(),
            "action": action,
            "enforced_by": "countersign run",
        },
    }]});
    let request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri("/v1/audit/events")
        .header("authorization", format!("Bearer {}", token("deploy-bot")))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(report.to_string()))
        .unwrap();
    let answer = inbox.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let page = inbox.get("/inbox", Some(&dana)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"alerts\""), "{}", page.body);
    assert!(
        page.body
            .contains("deploy-bot reported rule scripted-change allowed"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("under that policy it is denied by default")
    );
    assert!(page.body.contains("<code>countersign run</code>"));
    for raw in ["<script>", "\u{202E}"] {
        assert!(
            !page.body.contains(raw),
            "the inbox shows {raw:?} unescaped"
        );
    }
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

/// A command that differs from the agent's last one for the same program says so under
/// Countersign's caption, with the agent's names escaped.
#[tokio::test]
async fn a_command_unlike_the_agents_last_one_says_how_escaped() {
    let inbox = start("http://127.0.0.1:8750").await;
    let mut body = json!({
        "kind": "shell.exec", "resource": "db:prod/customers",
        "details": {"argv": ["sh", "-c", "echo hi"], "program": "/bin/sh"}
    });
    inbox.agent_sends(body.clone()).await;
    body["details"]["env"] = json!({"LD_PRELOAD": "/tmp/x.so", "<script>X": "1"});
    let id = inbox.agent_sends(body).await;
    let dana = inbox.sign_in("dana").await;
    let page = inbox.get(&format!("/requests/{id}"), Some(&dana)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(
            "Differs from deploy-bot&#39;s last request for this program (Countersign&#39;s comparison)"
        ),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<li>LD_PRELOAD is set (it was not)</li>")
    );
    assert!(
        page.body
            .contains("<li>&lt;script&gt;X is set (it was not)</li>")
    );
    assert!(!page.body.contains("<script>X"));
}
