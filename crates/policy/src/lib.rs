//! The Countersign policy language: a TOML file of rules that maps each action to allow, deny or
//! require approval, with the rule ids and a plain-language explanation behind every decision.
//!
//! Architecture invariant: no I/O. The caller reads the file and passes its text; `decide` is a
//! pure function of the compiled policy and the action.

mod compile;
mod condition;
mod condition_check;
mod decide;
mod decision;
mod explain;
pub mod glob;
mod index;
mod invisible;
mod program;
mod shape;
pub mod source;
mod sql;
mod testing;

pub use compile::{
    DEFAULT_APPROVAL_TTL, DEFAULT_TIMEOUT, MAX_APPROVAL_TTL, NotifyTarget, Policy, PolicyError,
    PolicyErrors, PolicyTest, Rule, normalize_sql,
};
pub use decision::{
    ConditionFailure, Decision, Outcome, Requirement, UnknownOutcome, decided_by_policy,
    deciding_rules,
};
pub use program::TRUSTED_DIRECTORIES;
pub use source::PolicySource;
pub use testing::TestReport;
