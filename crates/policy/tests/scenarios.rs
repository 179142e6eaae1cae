//! Runs the data-driven scenarios: every policy under `scenarios/` (and the example policy) must
//! pass its own `[[tests]]`, and every policy under `invalid/` must be refused with exactly the
//! errors its `# expect:` lines list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::fs;
use std::path::{Path, PathBuf};

use countersign_policy::Policy;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    files
}

#[test]
fn scenario_policies_pass_their_own_tests() {
    let mut paths = files("tests/scenarios");
    paths.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml"));
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in paths {
        let text = fs::read_to_string(&path).unwrap();
        let policy = Policy::parse(&text).unwrap_or_else(|e| {
            panic!("{} does not load:\n{}", path.display(), e.render("policy"))
        });
        let reports = policy.run_tests();
        assert!(!reports.is_empty(), "{} has no tests", path.display());
        cases += reports.len();
        for report in reports.iter().filter(|r| !r.passed()) {
            failures.push(format!(
                "{}: {}: {}\n  explanation: {}",
                path.display(),
                report.test.name,
                report.failure.as_deref().unwrap_or_default(),
                report.decision.explanation
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases > 40, "only {cases} scenario cases ran");
}

#[test]
fn invalid_policies_are_refused_with_the_documented_errors() {
    for path in files("tests/invalid") {
        let text = fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} lists no # expect: lines",
            path.display()
        );
        let errors = match Policy::parse(&text) {
            Ok(_) => panic!("{} loaded, but should have been refused", path.display()),
            Err(errors) => errors,
        };
        let actual: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(actual, expected, "{}", path.display());
    }
}
