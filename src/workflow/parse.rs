//! Strict parsing that reports every structural error, not only serde's first one.
//!
//! serde stops at the first unknown field or bad type. So the text is read into a YAML tree,
//! and deserialized again and again: each error is recorded and the offending key removed,
//! until the rest deserializes. Removed sequence items are tracked so that every reported
//! path still names the item as it is in the file.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::validate::FieldError;

/// The most errors gathered from one file; past this, the file is probably not a workflow.
const MAX_ERRORS: usize = 50;

/// What survived the repairs (if anything deserialized) and every error met on the way.
pub struct Parsed<T> {
    pub value: Option<T>,
    pub errors: Vec<FieldError>,
    /// Removed sequence items, so paths into the repaired value can be mapped back.
    removed_items: Vec<(String, usize)>,
}

impl<T> Parsed<T> {
    /// The path in the original file of a path into the repaired value.
    pub fn original_path(&self, path: &str) -> String {
        original_path(path, &self.removed_items)
    }
}

pub fn parse_all<T: DeserializeOwned>(mut tree: Value) -> Parsed<T> {
    let mut errors = Vec::new();
    let mut removed_items: Vec<(String, usize)> = Vec::new();
    // Keys removed as repairs: their absence is not a second error.
    let mut removed_keys: Vec<String> = Vec::new();
    while errors.len() < MAX_ERRORS {
        // Through JSON: serde_yaml's Value reads enums only as YAML tags, not `{lua: ...}`.
        let json = match serde_json::to_value(&tree) {
            Ok(j) => j,
            Err(e) => {
                errors.push(FieldError::new("", format!("not a workflow document: {e}")));
                break;
            }
        };
        let error = match serde_path_to_error::deserialize::<_, T>(json) {
            Ok(value) => {
                return Parsed {
                    value: Some(value),
                    errors,
                    removed_items,
                }
            }
            Err(e) => e,
        };
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = with_hint(&error.inner().to_string());
        let original = original_path(&path, &removed_items);
        // A missing field's path is the object that lacks it.
        let missing = missing_field(&message).map(|f| join_path(&original, f));
        let repaired = if missing.is_some() {
            remove(&mut tree, &path, &mut removed_items)
        } else {
            removed_keys.push(original.clone());
            remove(&mut tree, &path, &mut removed_items)
                || remove(&mut tree, parent_of(&path), &mut removed_items)
        };
        if !missing.is_some_and(|m| removed_keys.contains(&m)) {
            errors.push(FieldError::new(original, message));
        }
        if !repaired {
            break;
        }
    }
    Parsed {
        value: None,
        errors,
        removed_items,
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn parent_of(path: &str) -> &str {
    path.rfind(['.', '[']).map_or("", |i| &path[..i])
}

/// Splits `a.b[2].c` into segments: Key("a"), Key("b"), Index(2), Key("c").
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((n, after)) = rest.split_once(']') {
            if let Ok(i) = n.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.trim_start_matches('[');
        }
    }
    out
}

/// Removes the node at `path`; false when there is nothing there to remove (the root).
fn remove(tree: &mut Value, path: &str, removed_items: &mut Vec<(String, usize)>) -> bool {
    let segs = segments(path);
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut node = tree;
    for s in parents {
        let next = match s {
            Segment::Key(k) => node.get_mut(*k),
            Segment::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Key(k), Value::Mapping(m)) => m.remove(*k).is_some(),
        (Segment::Index(i), Value::Sequence(items)) if *i < items.len() => {
            items.remove(*i);
            let seq_path = parent_of(path).to_string();
            let original = original_path(&format!("{seq_path}[{i}]"), removed_items);
            let original_index = last_index(&original).unwrap_or(*i);
            removed_items.push((original_path(&seq_path, removed_items), original_index));
            true
        }
        _ => false,
    }
}

fn last_index(path: &str) -> Option<usize> {
    let open = path.rfind('[')?;
    path[open + 1..path.len() - 1].parse().ok()
}

/// Maps `profiles[1]` in the repaired tree back to `profiles[2]` if item 1 was removed before.
fn original_path(path: &str, removed_items: &[(String, usize)]) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let seq = out.clone();
        let mut index: usize = rest[open + 1..close].parse().unwrap_or(0);
        let mut gone: Vec<usize> = removed_items
            .iter()
            .filter(|(p, _)| *p == seq)
            .map(|(_, i)| *i)
            .collect();
        gone.sort_unstable();
        for g in gone {
            if g <= index {
                index += 1;
            }
        }
        out.push_str(&format!("[{index}]"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Adds "did you mean `x`?" to serde's unknown field and unknown variant messages.
pub fn with_hint(message: &str) -> String {
    let Some((given, expected)) = unknown_and_expected(message) else {
        return message.to_string();
    };
    let best = expected
        .iter()
        .map(|e| (strsim::jaro_winkler(given, e), e))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, e)) => format!("{message}; did you mean `{e}`?"),
        None => message.to_string(),
    }
}

/// From "unknown field `chunkin`, expected one of `a`, `b`" → ("chunkin", ["a", "b"]).
fn unknown_and_expected(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let (_, list) = rest.split_once("expected ")?;
    let expected = list.split('`').skip(1).step_by(2).collect();
    Some((given, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_the_nearest_name() {
        let m = with_hint("unknown field `chunkin`, expected one of `version`, `chunking`");
        assert!(m.ends_with("did you mean `chunking`?"), "{m}");
        let m = with_hint("unknown variant `h256`, expected one of `h264`, `h265`, `vp9`");
        assert!(m.ends_with("did you mean `h265`?") || m.ends_with("did you mean `h264`?"));
        let m = with_hint("unknown field `zzzz`, expected `name`");
        assert!(!m.contains("did you mean"), "{m}");
    }

    #[test]
    fn removed_items_keep_original_indices() {
        let removed = vec![("profiles".to_string(), 1), ("profiles".to_string(), 3)];
        assert_eq!(
            original_path("profiles[1].crf", &removed),
            "profiles[2].crf"
        );
        assert_eq!(original_path("profiles[2]", &removed), "profiles[4]");
        assert_eq!(original_path("profiles[0]", &removed), "profiles[0]");
    }
}
