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
    // jsonpath_lib 0.3.0 panics on a slice whose step is 0 (`$.data[::0]`) when the value is an
    // array, which the probe below does not have.
    if zero_step(path) {
        return Err(format!(
            "JSONPath {path:?}: a slice step of 0 is not supported"
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

/// Whether `path` has a slice `[start:end:step]` whose step is 0.
fn zero_step(path: &str) -> bool {
    path.split('[').skip(1).any(|bracket| {
        let inside = bracket.split(']').next().unwrap_or_default();
        let parts: Vec<&str> = inside.split(':').collect();
        parts.len() == 3 && parts[2].trim().trim_start_matches(['+', '-']).parse() == Ok(0u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_step_of_0_is_refused_and_other_slices_are_not() {
        for path in ["$.data[::0]", "$.data[1:5:0]", "$.a[0].b[ 2 : : -0 ]"] {
            assert!(compile_json_path(path).is_err(), "{path}");
        }
        for path in ["$.data[::1]", "$.data[0:2]", "$.data[-1:]", "$.data[0]"] {
            assert!(compile_json_path(path).is_ok(), "{path}");
        }
    }
}
