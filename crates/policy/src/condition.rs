//! CEL conditions (`if = '...'`): compiled once at load, evaluated against `action` and
//! `principal`. Anything but a boolean `true` or `false` is a failure, and failures fail closed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use countersign_model::Action;
use serde_json::Value as JsonValue;

use crate::condition_check::{self, Shape};

pub struct Condition {
    source: String,
    program: Program,
}

impl Condition {
    /// Compiles and checks a condition; the error is a sentence naming the problem and the fix.
    pub fn compile(env: &Arc<Env>, source: &str) -> Result<Condition, String> {
        let program = env.compile(source).map_err(|errors| {
            format!(
                "the condition does not parse: {}",
                condition_check::syntax_errors(source, &errors.errors)
            )
        })?;
        let unknown = condition_check::unknown_names(env, &program);
        if !unknown.is_empty() {
            return Err(unknown.join("; "));
        }
        let condition = Condition {
            source: source.to_owned(),
            program,
        };
        // Also try it on a sample action. An evaluation error mostly proves nothing (the sample
        // lacks the details a real action has), but a reference to something that does not
        // exist is a function that does not exist: every name was checked above.
        let tried = sample().map(|a| condition.program.execute(&context_for(env, &a)));
        if let Some(Err(ExecutionError::UndeclaredReference(name))) = &tried {
            return Err(format!(
                "the condition calls '{name}', which is not a function a condition can use (see \
                 https://cel.dev for CEL's functions, such as startsWith, contains, size)"
            ));
        }
        let gives = match condition_check::shape(condition.program.expression()) {
            Shape::Boolean => None,
            Shape::Other(what) => Some(what),
            // Only running it can tell: a value that is not a boolean shows the condition can
            // never be true.
            Shape::Unknown => match tried {
                Some(Ok(CelValue::Bool(_)) | Err(_)) | None => None,
                Some(Ok(other)) => Some(type_name(&other)),
            },
        };
        if let Some(what) = gives {
            return Err(format!(
                "the condition gives {what} instead of true or false, so it would deny every \
                 action the rule matches; compare it with something, e.g. action.kind == \"shell.exec\""
            ));
        }
        Ok(condition)
    }

    /// Evaluates the condition. `Err` carries a reason fit for the decision's record.
    pub fn evaluate(&self, context: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(context) {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition gave {} instead of true or false",
                type_name(&other)
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({:?})", self.source)
    }
}

/// An action with every field a condition can read, for trying a condition at load time.
fn sample() -> Option<Action> {
    serde_json::from_value(serde_json::json!({
        "kind": "sample.kind",
        "resource": "sample:resource",
        "details": {
            "argv": ["sample"], "sql": "select 1", "method": "GET", "path": "/",
            "server": "sample", "tool": "sample", "arguments": {}
        },
        "principal": { "id": "sample-agent", "kind": "agent" },
        "justification": "sample"
    }))
    .ok()
}

fn type_name(value: &CelValue) -> &'static str {
    match value {
        CelValue::List(_) => "a list",
        CelValue::Map(_) => "a map",
        CelValue::Int(_) | CelValue::UInt(_) | CelValue::Float(_) => "a number",
        CelValue::String(_) => "a string",
        CelValue::Bytes(_) => "bytes",
        CelValue::Null => "null",
        _ => "a value",
    }
}

/// Builds the evaluation context for one action: `action` and `principal` as CEL maps.
pub fn context_for(env: &Arc<Env>, action: &Action) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(env));
    let strings = |pairs: &std::collections::BTreeMap<String, String>| {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), CelValue::from(v.clone())))
            .collect::<HashMap<String, CelValue>>()
    };
    let labels = strings(&action.labels);
    let claims = strings(&action.claims);
    let mut action_map: HashMap<&str, CelValue> = HashMap::from([
        ("kind", CelValue::from(action.kind.clone())),
        ("resource", CelValue::from(action.resource.clone())),
        ("labels", CelValue::from(labels)),
        ("claims", CelValue::from(claims)),
        ("details", to_cel(&action.details)),
    ]);
    action_map.insert(
        "justification",
        action
            .justification
            .clone()
            .map_or(CelValue::Null, CelValue::from),
    );
    let chain = &action.principal;
    let principal: HashMap<&str, CelValue> = HashMap::from([
        ("id", CelValue::from(chain.id.clone())),
        ("kind", CelValue::from(chain.kind.to_string())),
        (
            "on_behalf_of",
            CelValue::List(Arc::new(
                chain
                    .on_behalf_of
                    .iter()
                    .cloned()
                    .map(CelValue::from)
                    .collect(),
            )),
        ),
        (
            "started_by",
            chain
                .started_by
                .clone()
                .map_or(CelValue::Null, CelValue::from),
        ),
    ]);
    context.add_variable_from_value("action", action_map);
    context.add_variable_from_value("principal", principal);
    context
}

fn to_cel(value: &JsonValue) -> CelValue {
    match value {
        JsonValue::Null => CelValue::Null,
        JsonValue::Bool(b) => CelValue::Bool(*b),
        JsonValue::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        JsonValue::String(s) => CelValue::from(s.clone()),
        JsonValue::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        JsonValue::Object(map) => {
            let map: HashMap<String, CelValue> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            CelValue::from(map)
        }
    }
}
