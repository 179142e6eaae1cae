//! What an action's facts may come from (DESIGN.md, invariant 9): the labels rules match on are
//! the principal's configured labels, and those a service principal (an enforcement point the
//! agent cannot configure) vouches for within its `vouches_for`; the resource stays inside the
//! principal's bindings. What the agent's own tools say travels as claims and never becomes a
//! label.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{HeaderMap, StatusCode};
use countersign_api::{AGENT_TOKEN_HEADER, ErrorCode};
use countersign_model::PrincipalKind;
use countersign_model::action::{is_valid_label_name, is_valid_label_value};
use countersign_policy::glob::Glob;

use crate::config::{Principal, VouchesFor};
use crate::error::ApiError;
use crate::state::State;

/// A principal's labels and bindings, checked at configuration time.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    pub labels: BTreeMap<String, String>,
    pub resources: Vec<Glob>,
    pub vouches_for: Option<VouchesFor>,
}

/// Checks `labels`, `resources` and `vouches_for` of one `[[principals]]` entry (`at` names it).
pub(crate) fn bindings(
    kind: PrincipalKind,
    labels: &BTreeMap<String, String>,
    resources: &[String],
    vouches_for: Option<(&[String], &[String])>,
    at: &str,
    errors: &mut Vec<String>,
) -> Bindings {
    let globs = |key: &str, patterns: &[String], errors: &mut Vec<String>| -> Vec<Glob> {
        patterns
            .iter()
            .filter_map(|p| match Glob::new(p) {
                Ok(glob) => Some(glob),
                Err(e) => {
                    errors.push(format!("{at}: {key}: {e}"));
                    None
                }
            })
            .collect()
    };
    let mut bindings = Bindings::default();
    if kind == PrincipalKind::Human && (!labels.is_empty() || !resources.is_empty()) {
        errors.push(format!(
            "{at}: labels and resources are only for agents; a human's actions carry no \
             configured facts"
        ));
    }
    if kind == PrincipalKind::Service && (!labels.is_empty() || !resources.is_empty()) {
        errors.push(format!(
            "{at}: a service has no labels or resources of its own; list what it may vouch for \
             in vouches_for = {{ resources = [...], labels = [...] }}"
        ));
    }
    for (name, value) in labels {
        if !is_valid_label_name(name) {
            errors.push(format!(
                "{at}: labels: '{}' is not a label name (1 to 128 letters, digits, _ - . /)",
                countersign_model::text::clean(name)
            ));
        } else if !is_valid_label_value(value) {
            errors.push(format!(
                "{at}: labels.{name}: the value is longer than 1024 characters or has control \
                 characters"
            ));
        }
    }
    bindings.labels = labels.clone();
    bindings.resources = globs("resources", resources, errors);
    match (kind, vouches_for) {
        (PrincipalKind::Service, Some((resources, labels))) => {
            if resources.is_empty() {
                errors.push(format!(
                    "{at}: vouches_for.resources is empty: name the resources this service \
                     enforces (e.g. [\"db:prod/*\"]); it can submit nothing else"
                ));
            }
            for name in labels.iter().filter(|n| !is_valid_label_name(n)) {
                errors.push(format!(
                    "{at}: vouches_for.labels: '{}' is not a label name",
                    countersign_model::text::clean(name)
                ));
            }
            bindings.vouches_for = Some(VouchesFor {
                resources: globs("vouches_for.resources", resources, errors),
                labels: labels.iter().cloned().collect::<BTreeSet<_>>(),
            });
        }
        (PrincipalKind::Service, None) => errors.push(format!(
            "{at}: a service needs vouches_for = {{ resources = [...], labels = [...] }}: what \
             it enforces and which labels it may set"
        )),
        (_, Some(_)) => errors.push(format!(
            "{at}: vouches_for is only for kind = \"service\" (an enforcement point that submits \
             on behalf of agents)"
        )),
        (_, None) => {}
    }
    bindings
}

fn patterns(globs: &[Glob]) -> String {
    let quoted: Vec<String> = globs.iter().map(|g| format!("'{}'", g.as_str())).collect();
    quoted.join(", ")
}

/// Who submits an action: the requester, whose chain, labels and bindings apply, and the service
/// it came through, if any.
#[derive(Debug)]
pub(crate) struct Submitter {
    pub requester: std::sync::Arc<Principal>,
    pub via: Option<std::sync::Arc<Principal>>,
}

/// Who a call is made by: the token's principal, or, when a service passes an agent's token in
/// `Countersign-Agent-Token`, that agent through the service (on every call: the service waits
/// for, uses and reports on the agent's requests as the agent).
pub(crate) fn on_behalf(
    state: &State,
    caller: std::sync::Arc<Principal>,
    headers: &HeaderMap,
) -> Result<Submitter, ApiError> {
    let header = headers.get(AGENT_TOKEN_HEADER);
    match (caller.kind, header) {
        (_, None) => Ok(Submitter {
            requester: caller,
            via: None,
        }),
        (PrincipalKind::Service, Some(value)) => {
            let unknown = || {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    "the Countersign-Agent-Token header names no principal this broker knows",
                )
            };
            let token = value.to_str().map_err(|_| unknown())?;
            let agent = state.principal_by_token(token.trim()).ok_or_else(unknown)?;
            if agent.kind == PrincipalKind::Service {
                return Err(ApiError::forbidden(format!(
                    "the Countersign-Agent-Token header names {}, a service: a service submits \
                     on behalf of an agent, never of another service",
                    agent.id
                )));
            }
            Ok(Submitter {
                requester: agent,
                via: Some(caller),
            })
        }
        (_, Some(_)) => Err(ApiError::forbidden(format!(
            "{} is not a service: only a service principal may submit on behalf of an agent \
             (Countersign-Agent-Token); send the action with your own token only",
            caller.id
        ))),
    }
}

impl Submitter {
    /// The labels an action of this submitter carries, given the labels its body sent and the
    /// resource it names: the requester's configured labels, and those the service vouches for.
    /// Fails closed: a label or resource nobody may vouch for, or a service label that
    /// contradicts the agent's configuration, refuses the action.
    pub fn labels(
        &self,
        sent: BTreeMap<String, String>,
        resource: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let requester = &self.requester;
        if !requester.resources.is_empty()
            && !requester.resources.iter().any(|g| g.matches(resource))
        {
            return Err(ApiError::forbidden(format!(
                "{} is bound to the resources {} by the broker's configuration; '{}' is none of \
                 them",
                requester.id,
                patterns(&requester.resources),
                countersign_model::text::clean(resource)
            )));
        }
        let mut labels = requester.labels.clone();
        let Some(service) = &self.via else {
            if let Some(key) = sent.keys().next() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::LabelsFromAgent,
                    format!(
                        "label '{}' refused: labels are set by Countersign from its \
                         configuration; send them as claims",
                        countersign_model::text::clean(key)
                    ),
                ));
            }
            return Ok(labels);
        };
        let vouches = service.vouches_for.as_ref();
        let empty = VouchesFor {
            resources: Vec::new(),
            labels: BTreeSet::new(),
        };
        let vouches = vouches.unwrap_or(&empty);
        if !vouches.resources.iter().any(|g| g.matches(resource)) {
            return Err(ApiError::forbidden(format!(
                "{} may vouch only for the resources {}; '{}' is none of them",
                service.id,
                patterns(&vouches.resources),
                countersign_model::text::clean(resource)
            )));
        }
        for (key, value) in sent {
            if !vouches.labels.contains(&key) {
                return Err(ApiError::forbidden(format!(
                    "{} may not vouch for the label '{}': its configuration lists {}",
                    service.id,
                    countersign_model::text::clean(&key),
                    if vouches.labels.is_empty() {
                        "no labels".to_owned()
                    } else {
                        let keys: Vec<&str> = vouches.labels.iter().map(String::as_str).collect();
                        keys.join(", ")
                    }
                )));
            }
            match labels.get(&key) {
                Some(configured) if configured != &value => {
                    return Err(ApiError::forbidden(format!(
                        "the label {key} is '{configured}' in {}'s configuration and '{}' from \
                         {}: the two disagree, so the action is refused",
                        requester.id,
                        countersign_model::text::clean(&value),
                        service.id
                    )));
                }
                _ => {
                    labels.insert(key, value);
                }
            }
        }
        Ok(labels)
    }
}

/// Checks the action a reported event (`POST /v1/audit/events`, event `index`) carries, where it
/// carries one, by the rules for submitting it: a local gate decides with the principal's
/// configured labels and inside its resource bindings, so a reported action with other labels,
/// or outside the bindings, is refused rather than recorded as if Countersign vouched for it. A
/// service reports only labels and resources within its `vouches_for`, for itself or for the
/// agent whose token it passes (then the agent's configured labels must be there too). Refused as a malformed event (400), not
/// a forbidden call: an enforcement point retries a 403 for ever, which would hold up every event
/// spooled after this one, while a 400 has it set the event aside (`rejected.jsonl`).
pub(crate) fn check_reported(
    reporter: &std::sync::Arc<Principal>,
    via: Option<&std::sync::Arc<Principal>>,
    data: &serde_json::Value,
    index: usize,
) -> Result<(), ApiError> {
    let Some(action) = data.get("action") else {
        return Ok(());
    };
    let at = |e: ApiError| ApiError::bad_request(format!("events[{index}]: {}", e.message));
    let labels: BTreeMap<String, String> = match action.get("labels") {
        None => BTreeMap::new(),
        Some(labels) => serde_json::from_value(labels.clone()).map_err(|_| {
            ApiError::bad_request(format!(
                "events[{index}]: data.action.labels must map names to strings"
            ))
        })?,
    };
    let resource = action
        .get("resource")
        .and_then(|r| r.as_str())
        .unwrap_or("");
    if reporter.kind == PrincipalKind::Service {
        let vouches = reporter.vouches_for.as_ref();
        let allowed = |key: &String| vouches.is_some_and(|v| v.labels.contains(key));
        if let Some(key) = labels.keys().find(|k| !allowed(k)) {
            return Err(ApiError::bad_request(format!(
                "events[{index}]: {} may not vouch for the label '{}'",
                reporter.id,
                countersign_model::text::clean(key)
            )));
        }
        if !vouches.is_some_and(|v| v.resources.iter().any(|g| g.matches(resource))) {
            return Err(ApiError::bad_request(format!(
                "events[{index}]: {} may not vouch for the resource '{}'",
                reporter.id,
                countersign_model::text::clean(resource)
            )));
        }
        return Ok(());
    }
    // Through a service, the labels it added beside the agent's configured ones are checked as a
    // submission's are; without one, the agent's configured labels are all there may be.
    let added: BTreeMap<String, String> = match via {
        Some(_) => labels
            .iter()
            .filter(|(key, value)| reporter.labels.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        None => BTreeMap::new(),
    };
    let submitter = Submitter {
        requester: std::sync::Arc::clone(reporter),
        via: via.cloned(),
    };
    // The resource bindings and what a service may vouch for, as for a submitted action.
    let expected = submitter.labels(added, resource).map_err(at)?;
    if labels != expected {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!(
                "events[{index}]: the reported action's labels are not {}'s configured labels: \
                 labels are set by Countersign from its configuration; send the agent's own \
                 words as claims",
                reporter.id
            ),
        ));
    }
    Ok(())
}
