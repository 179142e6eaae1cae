//! CEL conditions (`if = '...'`): compiled once at load, evaluated against `action` and
//! `principal`. Anything but a boolean `true` or `false` is a failure, and failures fail closed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::{Context, Env, Program, Value as CelValue};
use countersign_model::Action;
use serde_json::Value as JsonValue;

pub struct Condition {
    source: String,
    program: Program,
}

impl Condition {
    pub fn compile(env: &Env, source: &str) -> Result<Condition, String> {
        let program = env.compile(source).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| e.msg.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(Condition {
            source: source.to_owned(),
            program,
        })
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
    let labels: HashMap<String, CelValue> = action
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), CelValue::from(v.clone())))
        .collect();
    let mut action_map: HashMap<&str, CelValue> = HashMap::from([
        ("kind", CelValue::from(action.kind.clone())),
        ("resource", CelValue::from(action.resource.clone())),
        ("labels", CelValue::from(labels)),
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
