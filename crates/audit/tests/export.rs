//! The JSON Lines export: what a line looks like, round trips, and the refusal of malformed lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod sample_log;

use countersign_audit::{
    Checkpoint, Export, ExportError, Record, parse_export, parse_line, render_checkpoint,
    render_event, render_export,
};
use proptest::prelude::*;
use sample_log::{any_log, at, audit_key, sample_log};

fn checkpoint_at(log: &[countersign_audit::AuditEvent], index: usize) -> Checkpoint {
    Checkpoint::sign(log[index].seq, log[index].hash, at(3600), &audit_key()).unwrap()
}

fn line_error(text: &str) -> String {
    parse_export(text).unwrap_err().to_string()
}

#[test]
fn an_event_line_has_a_fixed_shape() {
    let log = sample_log(1);
    assert_eq!(
        render_event(&log[0]).unwrap(),
        concat!(
            r#"{"event":{"seq":1,"time":"2026-11-21T16:08:00.000Z","type":"request.created","#,
            r#""principal":"deploy-bot","request_id":"r_8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f","#,
            r#""data":{"resource":"db:prod/customers","step":0},"#,
            r#""explanation":"deploy-bot asked to dump db:prod/customers","#,
            r#""prev_hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""hash":"sha256:fc888ff0638e58a7eab62cc3a66f35b1d34dab65eed29d5e942b39d2b4926838"}}"#,
        )
    );
    let checkpoint = checkpoint_at(&log, 0);
    let line = render_checkpoint(&checkpoint).unwrap();
    let expected = format!(
        r#"{{"checkpoint":{{"seq":1,"head_hash":"{}","time":"2026-11-21T17:08:00.000Z","key_id":"{}","signature":"{}"}}}}"#,
        log[0].hash, checkpoint.key_id, checkpoint.signature
    );
    assert_eq!(line, expected);
}

#[test]
fn checkpoints_follow_the_event_they_sign() {
    let log = sample_log(3);
    let checkpoints = [checkpoint_at(&log, 2), checkpoint_at(&log, 0)];
    let text = render_export(&log, &checkpoints).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .map(|line| {
            if line.starts_with(r#"{"event""#) {
                "e"
            } else {
                "c"
            }
        })
        .collect();
    assert_eq!(kinds, ["e", "c", "e", "e", "c"]);
    assert!(text.ends_with('\n'));
}

#[test]
fn an_export_reads_back_and_verifies() {
    let log = sample_log(5);
    let checkpoints = vec![checkpoint_at(&log, 1), checkpoint_at(&log, 4)];
    let export = parse_export(&render_export(&log, &checkpoints).unwrap()).unwrap();
    assert_eq!(
        export,
        Export {
            events: log,
            checkpoints
        }
    );
    assert_eq!(
        export.verify(&audit_key().public_key()).unwrap().last_seq(),
        5
    );

    let crlf = render_export(&export.events, &[])
        .unwrap()
        .replace('\n', "\r\n");
    assert_eq!(parse_export(&crlf).unwrap().events, export.events);
    assert_eq!(parse_export("").unwrap(), Export::default());
}

#[test]
fn a_malformed_line_is_named_by_its_number() {
    let log = sample_log(3);
    let good = render_export(&log, &[]).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();

    lines[1] = lines[1].replace(r#""explanation""#, r#""color":"red","explanation""#);
    assert_eq!(
        line_error(&lines.join("\n")),
        "line 2 of the audit export is not valid: in its event, unknown field `color`, expected \
         one of `seq`, `time`, `type`, `principal`, `request_id`, `data`, `explanation`, \
         `prev_hash`, `hash`"
    );

    let mut cut = good.lines().map(str::to_owned).collect::<Vec<_>>();
    cut[2].truncate(40);
    assert_eq!(
        line_error(&cut.join("\n")),
        "line 3 of the audit export is not valid: EOF while parsing a string (column 40)"
    );

    assert_eq!(
        line_error(&format!("{}\n\n{}", &lines[0], &lines[2])),
        "line 2 of the audit export is not valid: it is empty"
    );
}

#[test]
fn nothing_can_be_smuggled_into_a_line() {
    let refusals = [
        (
            r#"{"event":{"seq":1,"seq":2}}"#,
            r#"the key "seq" appears twice in one object (column 23)"#,
        ),
        (
            r#"{"event":{"data":{"amount":1,"amount":1000}}}"#,
            r#"the key "amount" appears twice in one object (column 37)"#,
        ),
        (
            r#"{"event":{},"checkpoint":{}}"#,
            r#"each line must be an object with a single key, "event" or "checkpoint"; this one has 2 keys"#,
        ),
        (
            r#"{"note":{}}"#,
            r#"each line must be an object with a single key, "event" or "checkpoint", not "note""#,
        ),
        (
            r#"[1]"#,
            r#"each line must be an object with a single key, "event" or "checkpoint""#,
        ),
        (
            r#"{"event":{"seq":-1}}"#,
            "in its event, invalid type: integer `-1`, expected an event number (a whole number, \
             0 or more)",
        ),
        (
            r#"{"checkpoint":{"seq":1}}"#,
            "in its checkpoint, missing field `head_hash`",
        ),
    ];
    for (line, reason) in refusals {
        assert_eq!(
            parse_line(line, 7),
            Err(ExportError::BadLine {
                line: 7,
                reason: reason.to_owned()
            }),
            "{line}"
        );
    }
}

#[test]
fn absent_principal_and_request_are_written_as_null_and_required() {
    let log = sample_log(1);
    let mut event = log[0].clone();
    event.principal = None;
    event.request_id = None;
    let line = render_event(&event).unwrap();
    assert!(
        line.contains(r#""principal":null,"request_id":null"#),
        "{line}"
    );
    assert_eq!(parse_line(&line, 1).unwrap(), Record::Event(event));

    let without = line.replace(r#""principal":null,"#, "");
    assert_eq!(
        parse_line(&without, 1).unwrap_err().to_string(),
        "line 1 of the audit export is not valid: in its event, missing field `principal`"
    );
}

proptest! {
    #[test]
    fn render_then_parse_gives_back_the_same_log(log in any_log(), signed in any::<prop::sample::Index>()) {
        let checkpoints = vec![checkpoint_at(&log, signed.index(log.len()))];
        let text = render_export(&log, &checkpoints).unwrap();
        let export = parse_export(&text).unwrap();
        prop_assert_eq!(&export.events, &log);
        prop_assert_eq!(&export.checkpoints, &checkpoints);
        prop_assert!(export.verify(&audit_key().public_key()).is_ok());
    }
}
