//! JSONPath expressions, compiled once and refused when jsonpath_lib cannot run them (it panics
//! on some instead of returning an error). Rule facts and outbound mappings compile through here
//! when their document or connection is loaded; nothing evaluates a path that was not accepted.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::json;

/// Compiles a JSONPath, refusing one that jsonpath_lib rejects or panics on.
pub fn compile_json_path(path: &str) -> Result<jsonpath_lib::Compiled, String> {
    // jsonpath_lib 0.3.0 panics when a filter refers to the root (`$.a[?(@.b == $.c)]`).
    if path.strip_prefix('$').unwrap_or(path).contains('$') {
        return Err(format!(
            "JSONPath {path:?}: a `$` inside a filter is not supported"
        ));
    }
    let compiled = catch_unwind(|| jsonpath_lib::Compiled::compile(path))
        .map_err(|_| format!("JSONPath {path:?} is not supported"))??;
    // Some expressions only fail when evaluated: try once on an empty event.
    let probe = json!({"id": "", "source": "", "type": "", "timestamp": "", "user": null, "room": null, "data": {}});
    match catch_unwind(AssertUnwindSafe(|| compiled.select(&probe).map(|_| ()))) {
        Ok(Ok(())) => Ok(compiled),
        Ok(Err(error)) => Err(format!("JSONPath {path:?}: {error:?}")),
        Err(_) => Err(format!("JSONPath {path:?} is not supported")),
    }
}
