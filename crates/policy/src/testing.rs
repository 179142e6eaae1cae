//! Running the `[[tests]]` a policy file carries.

use crate::compile::{Policy, PolicyError, PolicyErrors, PolicyTest};
use crate::decision::Decision;

/// One test case's result.
#[derive(Debug, Clone)]
pub struct TestReport<'p> {
    pub test: &'p PolicyTest,
    pub decision: Decision,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

impl TestReport<'_> {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

impl Policy {
    /// Reads, validates and compiles a policy file's text, and runs its `[[tests]]`: a policy
    /// that fails its own tests is refused, each failing case named with what it got.
    pub fn parse(text: &str) -> Result<Policy, PolicyErrors> {
        let policy = Policy::parse_untested(text)?;
        let failures: Vec<PolicyError> = policy
            .run_tests()
            .iter()
            .filter_map(|report| {
                let why = report.failure.as_ref()?;
                let decided = match report.decision.rules.as_slice() {
                    [] => "decided by the default".to_owned(),
                    [one] => format!("decided by rule '{one}'"),
                    many => format!("decided by rules '{}'", many.join("', '")),
                };
                Some(PolicyError {
                    line: Some(report.test.line),
                    subject: Some(format!("test '{}'", report.test.name)),
                    message: format!(
                        "the policy fails its own test: {why} ({decided}); fix the rules or the \
                         test (countersign policy test FILE shows every case)"
                    ),
                })
            })
            .collect();
        if failures.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyErrors(failures))
        }
    }

    /// Runs every test case in the file, in order.
    pub fn run_tests(&self) -> Vec<TestReport<'_>> {
        self.tests
            .iter()
            .map(|test| {
                let decision = self.decide(&test.action);
                let mut problems = Vec::new();
                if decision.outcome != test.expect {
                    problems.push(format!(
                        "expected {}, got {}",
                        test.expect, decision.outcome
                    ));
                }
                if let Some(expected) = &test.rules {
                    let mut want = expected.clone();
                    let mut got = decision.rules.clone();
                    want.sort();
                    got.sort();
                    if want != got {
                        problems.push(format!(
                            "expected rules [{}], got [{}]",
                            expected.join(", "),
                            decision.rules.join(", ")
                        ));
                    }
                }
                if !problems.is_empty() {
                    // A failed condition is the likeliest cause of a surprise; say so.
                    for failure in &decision.condition_failures {
                        problems.push(format!(
                            "the condition of rule {} failed: {}",
                            failure.rule, failure.error
                        ));
                    }
                }
                TestReport {
                    test,
                    failure: (!problems.is_empty()).then(|| problems.join("; ")),
                    decision,
                }
            })
            .collect()
    }
}
