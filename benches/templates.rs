//! How long the worst templates hold up the engine under the default budget (docs/rules.md §5.3):
//! each of these stops on `limits.template_fuel` or `limits.template_bytes`, and the table shows
//! the slowest of five evaluations. A plain timed loop (`harness = false`), run with
//! `cargo bench --bench templates`.
//!
//! The context holds the largest values a template can be given: a 1 MiB string (a face takes
//! frames of up to 1 MiB) and a list of 2,000 strings.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::engine::sandbox;

/// Each case: a name and a template that would run for seconds, or build gigabytes, unbounded.
const CASES: [(&str, &str); 20] = [
    (
        "loop 10k x 10k",
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}",
    ),
    (
        "arithmetic loop",
        "{% set ns = namespace(n=0) %}{% for i in range(100000) %}{% set ns.n = ns.n + i * 2 %}{% endfor %}",
    ),
    (
        "macro recursion 2^30",
        "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(30) }}",
    ),
    (
        "three strings joined",
        "{% set s = x * 1000000 %}{{ [s, s, s] | join }}",
    ),
    (
        "string doubling",
        "{% set ns = namespace(s=x) %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    ),
    (
        "list doubling",
        "{% set ns = namespace(l=[x]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
    ),
    (
        "nested list doubling",
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
    ),
    (
        "search 1 MiB",
        "{% for i in range(100000) %}{% if 'z' in big %}{% endif %}{% endfor %}",
    ),
    (
        "compare 1 MiB",
        "{% for i in range(100000) %}{% if big == big2 %}{% endif %}{% endfor %}",
    ),
    (
        "index 1 MiB",
        "{% for i in range(100000) %}{{ big[500000] }}{% endfor %}",
    ),
    (
        "slice 1 MiB",
        "{% for i in range(100000) %}{{ big[1:] | length }}{% endfor %}",
    ),
    (
        "upper 1 MiB",
        "{% for i in range(100000) %}{{ big | upper | length }}{% endfor %}",
    ),
    (
        "test 1 MiB",
        "{% for i in range(100000) %}{% if big is lower %}{% endif %}{% endfor %}",
    ),
    (
        "split 1 MiB",
        "{% for i in range(100000) %}{{ big | split('y') | length }}{% endfor %}",
    ),
    (
        "sort a list",
        "{% for i in range(100000) %}{{ list | sort | first }}{% endfor %}",
    ),
    (
        "search a list",
        "{% for i in range(100000) %}{{ 'item1999' in list }}{% endfor %}",
    ),
    (
        "sum a range",
        "{% for i in range(100000) %}{{ range(100000) | sum }}{% endfor %}",
    ),
    (
        "select with a test",
        "{% for i in range(100000) %}{{ list | select('lower') | list | length }}{% endfor %}",
    ),
    (
        "capture a list",
        "{% set c %}{% for i in range(100000) %}{{ list }}{% endfor %}{% endset %}{{ c | length }}",
    ),
    (
        "literal text",
        "{% for i in range(100000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}",
    ),
];

fn main() {
    let big = "y".repeat(1 << 20);
    let list: Vec<String> = (0..2000).map(|i| format!("item{i}")).collect();
    let context = json!({"x": "x", "big": big, "big2": big.clone(), "list": list});
    let mut slowest = Duration::ZERO;
    for (name, source) in CASES {
        let mut worst = Duration::ZERO;
        let mut outcome = String::new();
        for _ in 0..5 {
            let started = Instant::now();
            let result = sandbox::render(source, &context);
            worst = worst.max(started.elapsed());
            outcome = match result {
                Ok(text) => format!("completed ({} bytes)", text.len()),
                Err(error) => error,
            };
        }
        slowest = slowest.max(worst);
        println!(
            "{:>8.2} ms  {name:24} {outcome}",
            worst.as_secs_f64() * 1000.0
        );
    }
    println!(
        "slowest: {:.2} ms (budget: the defaults of limits.template_fuel and limits.template_bytes)",
        slowest.as_secs_f64() * 1000.0
    );
}
