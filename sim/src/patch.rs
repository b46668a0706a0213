//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902) application.
//!
//! Strategic merge patches are applied as plain merge patches (lists are replaced
//! wholesale, no `$patch` directives) — good enough for the clients the sim serves.

use serde_json::Value;

use crate::error::SimError;

/// Apply an RFC 7386 merge patch to `target` in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        let slot = t.entry(k.clone()).or_insert(Value::Null);
                        merge_patch(slot, v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// List merge keys the apiserver's strategic merge patch uses for the fields the sim serves.
pub fn apiserver_merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "containers" | "initContainers" | "volumes" | "volumeMounts" | "env" => Some("name"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Strategic merge patch: like [`merge_patch`], but lists whose field has a merge key
/// (per `merge_key`) are merged element-wise by that key, elements carrying
/// `"$patch": "delete"` are removed, and other `$`-directives are ignored.
pub fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    merge_key: &dyn Fn(&str) -> Option<&'static str>,
) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v) {
            (Some(mk), Value::Array(items)) => {
                let slot = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if !slot.is_array() {
                    *slot = Value::Array(vec![]);
                }
                let Value::Array(existing) = slot else {
                    continue;
                };
                for item in items {
                    let id = item.get(mk).cloned();
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let pos = id
                        .as_ref()
                        .and_then(|id| existing.iter().position(|e| e.get(mk) == Some(id)));
                    match (pos, delete) {
                        (Some(i), true) => {
                            existing.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic_merge(&mut existing[i], item, merge_key),
                        (None, false) => {
                            let mut fresh = Value::Object(serde_json::Map::new());
                            strategic_merge(&mut fresh, item, merge_key);
                            existing.push(fresh);
                        }
                    }
                }
            }
            _ => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                if v.is_object() {
                    strategic_merge(slot, v, merge_key);
                } else {
                    *slot = v.clone();
                }
            }
        }
    }
}

/// Apply an RFC 6902 JSON patch (`add`, `remove`, `replace`, `test`, `copy`, `move`).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), SimError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| SimError::BadRequest("json patch must be an array".into()))?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        match kind {
            "add" => add(target, path, value_of(op)?)?,
            "replace" => {
                remove(target, path)?;
                add(target, path, value_of(op)?)?;
            }
            "remove" => {
                remove(target, path)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value_of(op)?) {
                    return Err(SimError::Invalid(format!("testing value {path} failed")));
                }
            }
            "copy" | "move" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or("");
                let v = if kind == "move" {
                    remove(target, from)?
                } else {
                    target.pointer(from).cloned().ok_or_else(|| missing(from))?
                };
                add(target, path, v)?;
            }
            other => {
                return Err(SimError::BadRequest(format!(
                    "unexpected json patch operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn value_of(op: &Value) -> Result<Value, SimError> {
    op.get("value")
        .cloned()
        .ok_or_else(|| SimError::BadRequest("json patch operation is missing value".into()))
}

fn missing(path: &str) -> SimError {
    SimError::Invalid(format!("json patch path {path:?} does not exist"))
}

fn split(path: &str) -> Result<(String, String), SimError> {
    let idx = path.rfind('/').ok_or_else(|| missing(path))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..idx].to_string(), last))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<(), SimError> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let p = target.pointer_mut(&parent).ok_or_else(|| missing(path))?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last.parse().map_err(|_| missing(path))?;
                if i > a.len() {
                    return Err(missing(path));
                }
                a.insert(i, v);
            }
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, SimError> {
    let (parent, last) = split(path)?;
    let p = target.pointer_mut(&parent).ok_or_else(|| missing(path))?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i >= a.len() {
                return Err(missing(path));
            }
            Ok(a.remove(i))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));

        let mut t = json!({"a": [{"b": "c"}]});
        merge_patch(&mut t, &json!({"a": [1]}));
        assert_eq!(t, json!({"a": [1]}));

        let mut t = json!({"a": "foo"});
        merge_patch(&mut t, &json!("bar"));
        assert_eq!(t, json!("bar"));

        let mut t = json!({"e": null});
        merge_patch(&mut t, &json!({"a": 1}));
        assert_eq!(t, json!({"e": null, "a": 1}));

        let mut t = json!([1, 2]);
        merge_patch(&mut t, &json!({"a": {"bb": {"ccc": null}}}));
        assert_eq!(t, json!({"a": {"bb": {}}}));
    }

    #[test]
    fn strategic_merge_by_key() {
        let mut t = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "MemoryPressure", "status": "False"}
        ]}, "spec": {"taints": [{"key": "a"}]}});
        strategic_merge(
            &mut t,
            &json!({"status": {"conditions": [
                {"type": "Ready", "status": "Unknown"},
                {"type": "MemoryPressure", "$patch": "delete"},
                {"type": "NetworkUnavailable", "status": "False"}
            ]}, "spec": {"taints": [{"key": "b"}]}, "$setElementOrder/x": []}),
            &apiserver_merge_key,
        );
        assert_eq!(
            t,
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "Unknown", "reason": "KubeletReady"},
                {"type": "NetworkUnavailable", "status": "False"}
            ]}, "spec": {"taints": [{"key": "b"}]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
                {"op": "remove", "path": "/list/0"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "test", "path": "/list", "value": [2, 3]}
            ]),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"a": "x", "b": "2"}}, "list": [2, 3]})
        );
        assert!(json_patch(&mut t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
