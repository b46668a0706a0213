//! Label and field selectors (`labelSelector=` / `fieldSelector=` query parameters).
//!
//! Label selectors support `=`, `==`, `!=`, `in (..)`, `notin (..)`, `key` (exists) and
//! `!key`. Field selectors support `=`, `==` and `!=` on the per-resource field labels the
//! real apiserver exposes (unknown fields are rejected like the apiserver does).

use serde_json::Value;

use crate::error::SimError;
use crate::resource::Resource;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (all requirements must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

impl LabelSelector {
    /// Parse the `labelSelector` syntax.
    pub fn parse(s: &str) -> Result<LabelSelector, SimError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_label_req(part)?);
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether `obj`'s `metadata.labels` satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }

    /// True if the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad_label(s: &str) -> SimError {
    SimError::BadRequest(format!(
        "unable to parse requirement: found '{s}', expected: valid label selector"
    ))
}

fn parse_label_req(part: &str) -> Result<LabelReq, SimError> {
    if let Some(k) = part.strip_prefix('!') {
        let k = k.trim();
        return valid_key(k).map(|k| LabelReq::NotExists(k.to_string()));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelReq::NotEq(
            valid_key(k.trim())?.to_string(),
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = part.split_once("==") {
        return Ok(LabelReq::Eq(
            valid_key(k.trim())?.to_string(),
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = part.split_once('=') {
        return Ok(LabelReq::Eq(
            valid_key(k.trim())?.to_string(),
            v.trim().to_string(),
        ));
    }
    // set-based: key in (a,b) / key notin (a,b)
    if let Some(open) = part.find('(') {
        let close = part.rfind(')').ok_or_else(|| bad_label(part))?;
        if close < open {
            return Err(bad_label(part));
        }
        let head: Vec<&str> = part[..open].split_whitespace().collect();
        let values: Vec<String> = part[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        return match head.as_slice() {
            [k, "in"] => Ok(LabelReq::In(valid_key(k)?.to_string(), values)),
            [k, "notin"] => Ok(LabelReq::NotIn(valid_key(k)?.to_string(), values)),
            _ => Err(bad_label(part)),
        };
    }
    valid_key(part).map(|k| LabelReq::Exists(k.to_string()))
}

fn valid_key(k: &str) -> Result<&str, SimError> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok { Ok(k) } else { Err(bad_label(k)) }
}

/// One field requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    path: String,
    value: String,
    negate: bool,
}

/// A parsed field selector (all requirements must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<FieldReq>,
}

/// Field labels supported for `resource` besides `metadata.name` / `metadata.namespace`.
fn supported_fields(resource: Resource) -> &'static [&'static str] {
    match resource {
        Resource::Pods => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Resource::Nodes => &["spec.unschedulable"],
        Resource::Events => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    }
}

impl FieldSelector {
    /// Parse the `fieldSelector` syntax, validating field labels for `resource`.
    /// Fields are always evaluated against the core/v1 shape of the object; the
    /// events.k8s.io names (`regarding.*`, `note`, `reportingController`) are mapped.
    pub fn parse(s: &str, resource: Resource) -> Result<FieldSelector, SimError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (path, value, negate) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                return Err(SimError::BadRequest(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let path = normalize_field(path.trim());
            let known = path == "metadata.name"
                || (path == "metadata.namespace" && resource.namespaced())
                || supported_fields(resource).contains(&path.as_str());
            if !known {
                return Err(SimError::BadRequest(format!(
                    "field label not supported: {}",
                    path
                )));
            }
            reqs.push(FieldReq {
                path,
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether `obj` (core/v1 shape) satisfies the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| {
            let actual = field_value(obj, &r.path);
            (actual == r.value) != r.negate
        })
    }

    /// True if the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// Map events.k8s.io field names onto the core/v1 names used for evaluation.
fn normalize_field(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match path {
        "reportingController" => "reportingComponent".to_string(),
        "deprecatedSource" => "source".to_string(),
        other => other.to_string(),
    }
}

/// String value of a field label on an object ("" when absent, like the apiserver).
fn field_value(obj: &Value, path: &str) -> String {
    let path = if path == "source" {
        "source.component"
    } else {
        path
    };
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Label + field selector pair applied to LIST and WATCH.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Label part.
    pub labels: LabelSelector,
    /// Field part.
    pub fields: FieldSelector,
}

impl Selector {
    /// Parse both selectors from optional query values.
    pub fn parse(
        label: Option<&str>,
        field: Option<&str>,
        resource: Resource,
    ) -> Result<Selector, SimError> {
        Ok(Selector {
            labels: LabelSelector::parse(label.unwrap_or(""))?,
            fields: FieldSelector::parse(field.unwrap_or(""), resource)?,
        })
    }

    /// Whether the (core/v1 shaped) object matches both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "p1", "namespace": "shop", "labels": {"app": "cart", "tier": "backend"}},
            "spec": {"nodeName": "node-a", "hostNetwork": false},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn label_equality_and_inequality() {
        let o = obj();
        assert!(LabelSelector::parse("app=cart").unwrap().matches(&o));
        assert!(LabelSelector::parse("app==cart").unwrap().matches(&o));
        assert!(!LabelSelector::parse("app!=cart").unwrap().matches(&o));
        assert!(LabelSelector::parse("app!=web").unwrap().matches(&o));
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&o));
        assert!(
            LabelSelector::parse("app=cart,tier=backend")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !LabelSelector::parse("app=cart,tier=frontend")
                .unwrap()
                .matches(&o)
        );
    }

    #[test]
    fn label_set_based() {
        let o = obj();
        assert!(
            LabelSelector::parse("app in (web, cart)")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !LabelSelector::parse("app notin (web,cart)")
                .unwrap()
                .matches(&o)
        );
        assert!(
            LabelSelector::parse("missing notin (a)")
                .unwrap()
                .matches(&o)
        );
        assert!(
            LabelSelector::parse("app in (cart),tier")
                .unwrap()
                .matches(&o)
        );
        assert!(LabelSelector::parse("tier").unwrap().matches(&o));
        assert!(!LabelSelector::parse("!tier").unwrap().matches(&o));
        assert!(LabelSelector::parse("!gone").unwrap().matches(&o));
        assert!(LabelSelector::parse("").unwrap().matches(&o));
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj();
        let f = |s: &str| FieldSelector::parse(s, Resource::Pods).unwrap();
        assert!(f("spec.nodeName=node-a").matches(&o));
        assert!(f("spec.nodeName==node-a,status.phase=Running").matches(&o));
        assert!(!f("status.phase!=Running").matches(&o));
        assert!(f("metadata.name=p1,metadata.namespace=shop").matches(&o));
        assert!(f("spec.hostNetwork=false").matches(&o));
        assert!(FieldSelector::parse("spec.bogus=x", Resource::Pods).is_err());
        assert!(FieldSelector::parse("metadata.namespace=x", Resource::Nodes).is_err());
    }

    #[test]
    fn event_field_selectors_and_events_v1_names() {
        let ev = json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "node-b", "uid": "u1"},
            "source": {"component": "node-controller"}, "type": "Normal"});
        let f = |s: &str| FieldSelector::parse(s, Resource::Events).unwrap();
        assert!(f("involvedObject.kind=Node,involvedObject.name=node-b").matches(&ev));
        assert!(f("regarding.uid=u1").matches(&ev));
        assert!(f("source=node-controller").matches(&ev));
        assert!(!f("type=Warning").matches(&ev));
        assert!(f("involvedObject.namespace=").matches(&ev));
    }
}
