//! View Difference: the before and after JSON of an event as one tree of
//! changed, added, removed and unchanged fields; long texts diffed by line.

use crate::models::{Change, DiffBody, DiffLine, DiffNode};
use serde_json::Value;

/// Texts this long, or with several lines, are compared line by line.
const LONG_TEXT: usize = 80;

/// The tree of differences between two JSON documents (either may be absent).
pub fn diff_json(before: Option<&Value>, after: Option<&Value>) -> DiffNode {
    node(String::new(), before, after)
}

fn node(key: String, before: Option<&Value>, after: Option<&Value>) -> DiffNode {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().collect();
            keys.extend(a.keys().filter(|k| !b.contains_key(*k)));
            branch(
                key,
                false,
                keys.into_iter()
                    .map(|k| node(k.clone(), b.get(k), a.get(k)))
                    .collect(),
            )
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) => branch(
            key,
            true,
            (0..b.len().max(a.len()))
                .map(|i| node(format!("[{i}]"), b.get(i), a.get(i)))
                .collect(),
        ),
        // A whole object or array appeared or went: still shown as a tree.
        (Some(v @ (Value::Object(_) | Value::Array(_))), None) => one_sided(key, v, false),
        (None, Some(v @ (Value::Object(_) | Value::Array(_)))) => one_sided(key, v, true),
        _ => leaf(key, before, after),
    }
}

fn branch(key: String, array: bool, children: Vec<DiffNode>) -> DiffNode {
    let change = if children.iter().all(|c| c.change == Change::Same) {
        Change::Same
    } else {
        Change::Changed
    };
    DiffNode {
        key,
        change,
        body: DiffBody::Branch { array, children },
    }
}

fn one_sided(key: String, value: &Value, added: bool) -> DiffNode {
    let side = |v| {
        if added {
            (None, Some(v))
        } else {
            (Some(v), None)
        }
    };
    let (array, children) = match value {
        Value::Object(map) => (
            false,
            map.iter()
                .map(|(k, v)| {
                    let (b, a) = side(v);
                    node(k.clone(), b, a)
                })
                .collect(),
        ),
        Value::Array(items) => (
            true,
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let (b, a) = side(v);
                    node(format!("[{i}]"), b, a)
                })
                .collect(),
        ),
        _ => (false, Vec::new()),
    };
    DiffNode {
        key,
        change: if added {
            Change::Added
        } else {
            Change::Removed
        },
        body: DiffBody::Branch { array, children },
    }
}

/// A scalar as shown: strings as they are, anything else as JSON.
fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn leaf(key: String, before: Option<&Value>, after: Option<&Value>) -> DiffNode {
    let change = match (before, after) {
        (None, None) => Change::Same,
        (None, Some(_)) => Change::Added,
        (Some(_), None) => Change::Removed,
        (Some(b), Some(a)) if b == a => Change::Same,
        _ => Change::Changed,
    };
    let lines = match (before, after) {
        (Some(Value::String(b)), Some(Value::String(a)))
            if b != a && (is_long(b) || is_long(a)) =>
        {
            line_diff(b, a)
        }
        _ => Vec::new(),
    };
    DiffNode {
        key,
        change,
        body: DiffBody::Leaf {
            before: before.map(display),
            after: after.map(display),
            lines,
        },
    }
}

fn is_long(text: &str) -> bool {
    text.len() > LONG_TEXT || text.contains('\n')
}

/// Line-by-line diff of two texts.
pub fn line_diff(before: &str, after: &str) -> Vec<DiffLine> {
    similar::TextDiff::from_lines(before, after)
        .iter_all_changes()
        .map(|c| DiffLine {
            change: match c.tag() {
                similar::ChangeTag::Equal => Change::Same,
                similar::ChangeTag::Delete => Change::Removed,
                similar::ChangeTag::Insert => Change::Added,
            },
            text: c.value().trim_end_matches(['\n', '\r']).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn child<'a>(node: &'a DiffNode, key: &str) -> &'a DiffNode {
        match &node.body {
            DiffBody::Branch { children, .. } => children
                .iter()
                .find(|c| c.key == key)
                .unwrap_or_else(|| panic!("no child {key}")),
            DiffBody::Leaf { .. } => panic!("{} is a leaf", node.key),
        }
    }

    #[test]
    fn fields_are_marked_changed_added_removed_or_same() {
        let before = json!({"status": "draft", "total": 10, "gone": true, "same": [1, 2]});
        let after = json!({"status": "sent", "total": 10, "new": null, "same": [1, 2]});
        let root = diff_json(Some(&before), Some(&after));
        assert_eq!(root.change, Change::Changed);
        assert_eq!(child(&root, "status").change, Change::Changed);
        assert_eq!(child(&root, "total").change, Change::Same);
        assert_eq!(child(&root, "gone").change, Change::Removed);
        assert_eq!(child(&root, "new").change, Change::Added);
        assert_eq!(child(&root, "same").change, Change::Same);
        match &child(&root, "status").body {
            DiffBody::Leaf { before, after, .. } => {
                assert_eq!(before.as_deref(), Some("draft"));
                assert_eq!(after.as_deref(), Some("sent"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nested_objects_and_arrays_are_trees() {
        let before = json!({"customer": {"address": {"city": "Oslo", "zip": "0150"}}, "lines": [{"qty": 1}]});
        let after = json!({"customer": {"address": {"city": "Bergen", "zip": "0150"}}, "lines": [{"qty": 1}, {"qty": 2}]});
        let root = diff_json(Some(&before), Some(&after));
        let address = child(child(&root, "customer"), "address");
        assert_eq!(address.change, Change::Changed);
        assert_eq!(child(address, "city").change, Change::Changed);
        assert_eq!(child(address, "zip").change, Change::Same);
        let lines = child(&root, "lines");
        assert!(matches!(lines.body, DiffBody::Branch { array: true, .. }));
        assert_eq!(child(lines, "[0]").change, Change::Same);
        let added = child(lines, "[1]");
        assert_eq!(added.change, Change::Added);
        assert_eq!(child(added, "qty").change, Change::Added);
    }

    #[test]
    fn a_creation_has_only_an_after_side() {
        let after = json!({"name": "Ann", "tags": ["a"]});
        let root = diff_json(None, Some(&after));
        assert_eq!(root.change, Change::Added);
        assert_eq!(child(&root, "name").change, Change::Added);
        assert_eq!(child(child(&root, "tags"), "[0]").change, Change::Added);
        let gone = diff_json(Some(&after), None);
        assert_eq!(child(&gone, "name").change, Change::Removed);
    }

    #[test]
    fn long_texts_are_diffed_line_by_line() {
        let before = json!({"notes": "line one\nline two\nline three\n"});
        let after = json!({"notes": "line one\nline 2\nline three\nline four\n"});
        let root = diff_json(Some(&before), Some(&after));
        let DiffBody::Leaf { lines, .. } = &child(&root, "notes").body else {
            panic!("notes is a leaf")
        };
        let tagged: Vec<(Change, &str)> =
            lines.iter().map(|l| (l.change, l.text.as_str())).collect();
        assert_eq!(
            tagged,
            vec![
                (Change::Same, "line one"),
                (Change::Removed, "line two"),
                (Change::Added, "line 2"),
                (Change::Same, "line three"),
                (Change::Added, "line four"),
            ]
        );
        // Short values are compared whole.
        let short = diff_json(Some(&json!({"a": "x"})), Some(&json!({"a": "y"})));
        assert!(
            matches!(&child(&short, "a").body, DiffBody::Leaf { lines, .. } if lines.is_empty())
        );
    }
}
