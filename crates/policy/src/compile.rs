//! From the policy file to a compiled policy: every check a policy must pass before it is used,
//! with errors that name the line, the rule and the fix.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use cel::Env;
use countersign_model::action::{is_valid_kind, is_valid_principal_id};
use countersign_model::text::{clean, is_hidden};
use countersign_model::{Action, Digest, parse_duration};

use crate::condition::Condition;
use crate::decision::{Outcome, Requirement};
use crate::glob::Glob;
use crate::index::{IndexEntry, RuleIndex};
use crate::program::CommandPattern;
use crate::source::{ApproversSource, Lines, MatchSource, Patterns, PolicySource, RuleSource};

/// How long a request stays open when neither its rule nor the policy says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long an approval can be used, from the moment it is given, when its rule does not say:
/// long enough for the requester to pick it up and run, too short to hoard.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest `approval_ttl` a rule may set: an approval lets one action run now, it is not a
/// standing permission.
pub const MAX_APPROVAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The rule (or test) it concerns, when it concerns one: "rule 'prod-db-export'".
    pub subject: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// The errors as a compiler would print them: `policy.toml:42: rule 'x': …`, one per line.
    pub fn render(&self, file: &str) -> String {
        self.0
            .iter()
            .map(|e| match e.line {
                Some(line) => format!(
                    "{file}:{line}: {}",
                    PolicyError {
                        line: None,
                        ..e.clone()
                    }
                ),
                None => format!("{file}: {e}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub outcome: Outcome,
    pub reason: String,
    pub line: usize,
    pub(crate) matchers: Matchers,
    pub(crate) condition: Option<Condition>,
    pub requirement: Option<Requirement>,
    pub timeout: Option<Duration>,
    /// How long an approval of its requests can be used (`approval_ttl`).
    pub approval_ttl: Option<Duration>,
    /// Where requests this rule opens are announced (`notify`), in the order written.
    pub notify: Vec<NotifyTarget>,
}

/// A place a pending request is announced, as `service:address`: `slack:#dba-approvals` is the
/// address `#dba-approvals` of the channel that provides `slack`. The policy reads the shape
/// only; what an address may look like is the business of that channel, which checks the
/// policy's addresses when the broker starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// The channel's service: a lowercase word (`slack`, `teams`).
    pub service: String,
    /// Where in that service, as the channel reads it.
    pub address: String,
}

impl NotifyTarget {
    /// Reads `service:address`; the error says how to write it.
    pub fn parse(text: &str) -> Result<NotifyTarget, String> {
        let fix = "write it as service:address, like slack:#dba-approvals";
        let Some((service, address)) = text.split_once(':') else {
            return Err(format!(
                "notify target '{}' names no service: {fix}",
                clean(text)
            ));
        };
        if service.is_empty() || !service.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(format!(
                "notify target '{}': the service '{}' is not a lowercase word; {fix}",
                clean(text),
                clean(service)
            ));
        }
        if address.is_empty() {
            return Err(format!(
                "notify target '{}' names no address after '{service}:'; {fix}",
                clean(text)
            ));
        }
        if address.chars().any(is_hidden) {
            return Err(format!(
                "notify target '{}' has a hidden character in its address (shown escaped); \
                 write the address with visible characters only",
                clean(text)
            ));
        }
        Ok(NotifyTarget {
            service: service.to_owned(),
            address: address.to_owned(),
        })
    }
}

impl fmt::Display for NotifyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.address)
    }
}

/// A rule's `match`, compiled: every list given must match; an empty list (other than kinds)
/// places no constraint.
#[derive(Debug)]
pub(crate) struct Matchers {
    pub kinds: Vec<Glob>,
    pub resources: Vec<Glob>,
    pub labels: Vec<(String, Vec<Glob>)>,
    pub claims: Vec<(String, Vec<Glob>)>,
    pub commands: Vec<CommandPattern>,
    pub sql: Vec<Glob>,
}

/// A policy test case, checked and ready to run.
#[derive(Debug, Clone)]
pub struct PolicyTest {
    pub name: String,
    pub line: usize,
    pub expect: Outcome,
    pub rules: Option<Vec<String>>,
    pub action: Action,
}

/// A policy, validated and compiled: ready to decide.
pub struct Policy {
    pub(crate) source: PolicySource,
    pub(crate) text: String,
    pub(crate) hash: Digest,
    pub(crate) default: Outcome,
    pub(crate) default_timeout: Duration,
    pub(crate) rules: Vec<Rule>,
    pub(crate) index: RuleIndex,
    pub(crate) env: Arc<Env>,
    pub(crate) tests: Vec<PolicyTest>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("hash", &self.hash)
            .field("default", &self.default)
            .field("rules", &self.rules.len())
            .field("tests", &self.tests.len())
            .finish()
    }
}

impl Policy {
    /// Reads, validates and compiles a policy file's text, without running its `[[tests]]`:
    /// for `countersign policy test`, which reports every case. Anything that puts a policy in
    /// force uses [`Policy::parse`].
    pub fn parse_untested(text: &str) -> Result<Policy, PolicyErrors> {
        let source = PolicySource::parse(text).map_err(|e| {
            PolicyErrors(vec![PolicyError {
                line: e.line,
                subject: e.subject,
                message: e.message,
            }])
        })?;
        Compiler::new(text).compile(source)
    }

    /// The document as written (after parsing).
    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    /// The file's text exactly as loaded.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the file's text: names this version of the policy in the audit log.
    pub fn hash(&self) -> Digest {
        self.hash
    }

    pub fn default_outcome(&self) -> Outcome {
        self.default
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn tests(&self) -> &[PolicyTest] {
        &self.tests
    }
}

struct Compiler<'t> {
    text: &'t str,
    lines: Lines,
    errors: Vec<PolicyError>,
    env: Arc<Env>,
}

impl<'t> Compiler<'t> {
    fn new(text: &'t str) -> Self {
        Compiler {
            text,
            lines: Lines::new(text),
            errors: Vec::new(),
            env: Arc::new(Env::stdlib()),
        }
    }

    fn line(&self, span: Range<usize>) -> usize {
        self.lines.line_of(span.start)
    }

    fn error(&mut self, line: usize, subject: Option<String>, message: impl Into<String>) {
        self.errors.push(PolicyError {
            line: Some(line),
            subject,
            message: message.into(),
        });
    }

    fn compile(mut self, source: PolicySource) -> Result<Policy, PolicyErrors> {
        if source.version != 1 {
            self.error(
                1,
                None,
                format!(
                    "unsupported policy version {} (this Countersign reads version 1)",
                    source.version
                ),
            );
        }
        let default_line = self.line(source.default.span());
        let default = match source.default.get_ref().parse::<Outcome>() {
            Ok(Outcome::RequireApproval) => {
                self.error(
                    default_line,
                    None,
                    "the default decision must be allow or deny; to require approval for \
                     everything, add a require_approval rule with match.kind = \"*\"",
                );
                Outcome::Deny
            }
            Ok(outcome) => outcome,
            Err(e) => {
                self.error(default_line, None, format!("default: {e}"));
                Outcome::Deny
            }
        };
        let default_timeout = match &source.default_timeout {
            Some(t) => self.duration(t.get_ref(), self.line(t.span()), None, "default_timeout"),
            None => Some(DEFAULT_TIMEOUT),
        };

        let mut rules = Vec::with_capacity(source.rules.len());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for spanned in &source.rules {
            let line = self.line(spanned.span());
            let rule = spanned.get_ref();
            if let Some(first) = seen.insert(&rule.id, line) {
                self.error(
                    line,
                    None,
                    format!(
                        "rule id '{}' is used twice (first on line {first}); rule ids must be unique",
                        rule.id
                    ),
                );
            }
            if let Some(compiled) = self.rule(rule, line) {
                rules.push(compiled);
            }
        }

        let tests = self.tests(&source);
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| e.line);
            return Err(PolicyErrors(self.errors));
        }
        let index = RuleIndex::build(&rules.iter().map(index_entry).collect::<Vec<_>>());
        Ok(Policy {
            hash: Digest::of(self.text.as_bytes()),
            text: self.text.to_owned(),
            source,
            default,
            default_timeout: default_timeout.unwrap_or(DEFAULT_TIMEOUT),
            rules,
            index,
            env: self.env,
            tests,
        })
    }

    fn duration(
        &mut self,
        text: &str,
        line: usize,
        subject: Option<String>,
        field: &str,
    ) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(line, subject, format!("{field}: {e}"));
                None
            }
        }
    }

    fn rule(&mut self, rule: &RuleSource, line: usize) -> Option<Rule> {
        let before = self.errors.len();
        let subject = Some(format!("rule '{}'", rule.id));
        for problem in crate::invisible::in_rule(rule) {
            self.error(line, subject.clone(), problem);
        }
        if !is_valid_rule_id(&rule.id) {
            self.error(
                line,
                subject.clone(),
                "a rule id must be 1 to 64 lowercase letters, digits, '-' or '_', starting with a \
                 letter or digit",
            );
        }
        let decision_line = self.line(rule.decision.span());
        let outcome = match rule.decision.get_ref().parse::<Outcome>() {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                self.error(decision_line, subject.clone(), e.to_string());
                None
            }
        };
        if rule.reason.trim().is_empty() {
            self.error(
                line,
                subject.clone(),
                "reason is empty; say in plain words why the rule exists: reviewers and auditors read it",
            );
        }
        let matcher = match &rule.matcher {
            Some(m) => {
                let line = self.line(m.span());
                self.matcher(m.get_ref(), line, &subject)
            }
            None => {
                self.error(
                    line,
                    subject.clone(),
                    "match is missing: add match.kind = \"...\" (or \"*\" for every kind) and any other matchers",
                );
                None
            }
        };
        let condition = rule.condition.as_ref().and_then(|c| {
            match Condition::compile(&self.env, c.get_ref()) {
                Ok(condition) => Some(condition),
                Err(e) => {
                    let line = self.line(c.span());
                    self.error(line, subject.clone(), e);
                    None
                }
            }
        });
        let requirement = match (outcome, &rule.approvers) {
            (Some(Outcome::RequireApproval), Some(approvers)) => {
                let line = self.line(approvers.span());
                self.requirement(&rule.id, approvers.get_ref(), line, &subject)
            }
            (Some(Outcome::RequireApproval), None) => {
                self.error(
                    line,
                    subject.clone(),
                    "decision require_approval needs approvers, e.g. approvers = { groups = [\"sre\"], count = 1 }",
                );
                None
            }
            (Some(_), Some(approvers)) => {
                let line = self.line(approvers.span());
                self.error(
                    line,
                    subject.clone(),
                    "approvers only apply to decision = \"require_approval\"; remove them or change the decision",
                );
                None
            }
            _ => None,
        };
        let timeout = match &rule.timeout {
            Some(t) if outcome.is_some_and(|o| o != Outcome::RequireApproval) => {
                let line = self.line(t.span());
                self.error(
                    line,
                    subject.clone(),
                    "timeout only applies to decision = \"require_approval\"",
                );
                None
            }
            Some(t) => {
                let line = self.line(t.span());
                self.duration(t.get_ref(), line, subject.clone(), "timeout")
            }
            None => None,
        };
        let approval_ttl = match &rule.approval_ttl {
            Some(t) if outcome.is_some_and(|o| o != Outcome::RequireApproval) => {
                let line = self.line(t.span());
                self.error(
                    line,
                    subject.clone(),
                    "approval_ttl only applies to decision = \"require_approval\"",
                );
                None
            }
            Some(t) => {
                let line = self.line(t.span());
                match self.duration(t.get_ref(), line, subject.clone(), "approval_ttl") {
                    Some(d) if d > MAX_APPROVAL_TTL => {
                        self.error(
                            line,
                            subject.clone(),
                            "approval_ttl must be at most 24h: an approval lets the action run \
                             soon after it is given, it is not a standing permission",
                        );
                        None
                    }
                    d => d,
                }
            }
            None => None,
        };
        let mut notify = Vec::new();
        if let Some(targets) = &rule.notify {
            let line = self.line(targets.span());
            if outcome.is_some_and(|o| o != Outcome::RequireApproval) {
                self.error(
                    line,
                    subject.clone(),
                    "notify only applies to decision = \"require_approval\": only requests are announced",
                );
            }
            for target in targets.get_ref() {
                match NotifyTarget::parse(target) {
                    Ok(target) => notify.push(target),
                    Err(message) => self.error(line, subject.clone(), &message),
                }
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Rule {
            id: rule.id.clone(),
            outcome: outcome?,
            reason: rule.reason.trim().to_owned(),
            line,
            matchers: matcher?,
            condition,
            requirement,
            timeout,
            approval_ttl,
            notify,
        })
    }

    fn matcher(
        &mut self,
        m: &MatchSource,
        line: usize,
        subject: &Option<String>,
    ) -> Option<Matchers> {
        let before = self.errors.len();
        let kinds = match &m.kind {
            Some(kinds) => {
                for kind in kinds.as_slice() {
                    if kind != "*" && !is_valid_kind(&kind.replace(['*', '?'], "x")) {
                        self.error(
                            line,
                            subject.clone(),
                            format!(
                                "match.kind '{kind}' is not an action kind (expected a dotted name such as shell.exec, or a pattern such as mcp.*)"
                            ),
                        );
                    }
                }
                self.globs(kinds, false, line, subject, "match.kind")
            }
            None => {
                self.error(
                    line,
                    subject.clone(),
                    "match.kind is missing: name the action kinds the rule applies to, or \"*\" for every kind",
                );
                Vec::new()
            }
        };
        let resources = m
            .resource
            .as_ref()
            .map(|p| self.globs(p, false, line, subject, "match.resource"))
            .unwrap_or_default();
        let labels = self.pairs("labels", &m.labels, line, subject);
        let claims = self.pairs("claims", &m.claims, line, subject);
        let commands = m
            .command
            .as_ref()
            .map(|p| self.globs(p, false, line, subject, "match.command"))
            .unwrap_or_default()
            .into_iter()
            .map(CommandPattern::new)
            .collect();
        let sql = m
            .sql
            .as_ref()
            .map(|p| self.globs(p, true, line, subject, "match.sql"))
            .unwrap_or_default();
        (self.errors.len() == before).then_some(Matchers {
            kinds,
            resources,
            labels,
            claims,
            commands,
            sql,
        })
    }

    /// `match.labels` or `match.claims` (`what`): each name checked, each pattern compiled.
    fn pairs(
        &mut self,
        what: &str,
        pairs: &std::collections::BTreeMap<String, Patterns>,
        line: usize,
        subject: &Option<String>,
    ) -> Vec<(String, Vec<Glob>)> {
        let singular = what.trim_end_matches('s');
        let mut compiled = Vec::new();
        for (name, patterns) in pairs {
            if !countersign_model::action::is_valid_label_name(name) {
                self.error(
                    line,
                    subject.clone(),
                    format!("match.{what}: '{name}' is not a valid {singular} name"),
                );
            }
            let field = format!("match.{what}.{name}");
            compiled.push((
                name.to_owned(),
                self.globs(patterns, false, line, subject, &field),
            ));
        }
        compiled
    }

    fn globs(
        &mut self,
        patterns: &Patterns,
        lowercase: bool,
        line: usize,
        subject: &Option<String>,
        field: &str,
    ) -> Vec<Glob> {
        if patterns.as_slice().is_empty() {
            self.error(line, subject.clone(), format!("{field} is an empty list, so the rule could never match; remove it or add a pattern"));
        }
        let mut globs = Vec::new();
        for pattern in patterns.as_slice() {
            let glob = if lowercase {
                Glob::new_lowercase(&normalize_sql(pattern))
            } else {
                Glob::new(pattern)
            };
            match glob {
                Ok(g) => globs.push(g),
                Err(e) => self.error(line, subject.clone(), format!("{field}: {e}")),
            }
        }
        globs
    }

    fn requirement(
        &mut self,
        rule: &str,
        a: &ApproversSource,
        line: usize,
        subject: &Option<String>,
    ) -> Option<Requirement> {
        let before = self.errors.len();
        let count = a.count.unwrap_or(1);
        let distinct_groups = a.distinct_groups.unwrap_or(0);
        let denials = a.denials.unwrap_or(1);
        let mut fail = |msg: String| {
            self.errors.push(PolicyError {
                line: Some(line),
                subject: subject.clone(),
                message: msg,
            })
        };
        if a.groups.is_empty() && a.principals.is_empty() {
            fail("approvers name no groups and no principals, so nobody could approve".into());
        }
        for name in a.groups.iter().chain(&a.principals) {
            if !is_valid_principal_id(name) {
                fail(format!(
                    "approvers: '{name}' is not a valid group or principal name"
                ));
            }
        }
        if count == 0 {
            fail("approvers.count must be at least 1".into());
        }
        if a.groups.is_empty() && count as usize > a.principals.len() {
            fail(format!(
                "approvers.count is {count} but only {} principal(s) are named, so the request could never be approved",
                a.principals.len()
            ));
        }
        if distinct_groups as usize > a.groups.len() {
            fail(format!(
                "approvers.distinct_groups is {distinct_groups} but only {} group(s) are named",
                a.groups.len()
            ));
        }
        if distinct_groups > count {
            fail(format!(
                "approvers.distinct_groups ({distinct_groups}) exceeds approvers.count ({count}); each approver covers one group, so raise count"
            ));
        }
        if denials == 0 {
            fail("approvers.denials must be at least 1".into());
        }
        (self.errors.len() == before).then(|| Requirement {
            rule: rule.to_owned(),
            groups: a.groups.clone(),
            principals: a.principals.clone(),
            count,
            distinct_groups,
            denials,
        })
    }

    fn tests(&mut self, source: &PolicySource) -> Vec<PolicyTest> {
        let mut tests = Vec::new();
        for spanned in &source.tests {
            let test = spanned.get_ref();
            let line = self.line(spanned.span());
            let subject = Some(format!("test '{}'", test.name));
            let expect = match test.expect.get_ref().parse::<Outcome>() {
                Ok(o) => Some(o),
                Err(e) => {
                    let line = self.line(test.expect.span());
                    self.error(line, subject.clone(), format!("expect: {e}"));
                    None
                }
            };
            for id in test.rules.iter().flatten() {
                if !source.rules.iter().any(|r| &r.get_ref().id == id) {
                    self.error(
                        line,
                        subject.clone(),
                        format!("rule '{id}' does not exist in this policy"),
                    );
                }
            }
            if let Err(e) = test.action.validate() {
                self.error(line, subject.clone(), format!("action: {e}"));
                continue;
            }
            if let Some(expect) = expect {
                tests.push(PolicyTest {
                    name: test.name.clone(),
                    line,
                    expect,
                    rules: test.rules.clone(),
                    action: test.action.clone(),
                });
            }
        }
        tests
    }
}

fn is_valid_rule_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// SQL as `match.sql` sees it: whitespace runs collapsed to one space, trimmed, lowercased by the
/// caller where needed, trailing semicolons dropped.
pub fn normalize_sql(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.trim_end_matches([';', ' ']).to_owned()
}

fn index_entry(rule: &Rule) -> IndexEntry {
    IndexEntry {
        kinds: rule
            .matchers
            .kinds
            .iter()
            .map(|g| (g.literal_prefix(), g.is_exact()))
            .collect(),
        resources: rule
            .matchers
            .resources
            .iter()
            .map(Glob::literal_prefix)
            .collect(),
        commands: rule
            .matchers
            .commands
            .iter()
            .map(|c| c.glob.literal_prefix())
            .collect(),
    }
}
