//! Bounded template evaluation (docs/rules.md §5.3). Each template field of a document (one
//! string, or one JSON field such as `emit.data` with every string in it) is evaluated on a budget
//! of `limits.template_fuel` instructions and `limits.template_bytes` bytes, so that no template
//! holds up the engine or exhausts its memory: the field fails with [`Exhausted`]'s message instead.
//!
//! Fuel is minijinja's own: one unit per instruction. It bounds loops, but one instruction can cost
//! as much as its operands are large (`"x" * 100000000`, `s ~ s ~ s`, `big == big`), so bytes are
//! metered here. Templates are compiled with minijinja's machinery, and the instructions whose cost
//! grows with their operands (`~`, `+`, `*`, comparisons, `in`, indexing, slicing, list literals)
//! are replaced by calls of metered functions. Each charges the bytes it will read or build
//! *before* doing the work, then hands the operation to minijinja unchanged. Filters are metered
//! the same way, and so is every value a template writes. Reading a value costs its size: a
//! string's length, and for a list or an object 16 bytes per item plus what the items hold.
//! Building one costs what it copies: a new string its length, a new list 16 bytes per item (the
//! items are shared, and paid for when read).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use minijinja::machinery::{
    ast, make_string_output, parse, parse_expr, CodeGenerator, Instruction, Instructions, Vm,
    WhitespaceConfig,
};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, ValueKind};
use minijinja::{
    escape_formatter, filters, AutoEscape, Environment, Error, ErrorKind, Expression, State,
    UndefinedBehavior, Value,
};

/// The budget of one template field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// minijinja instructions (`limits.template_fuel`).
    pub fuel: u64,
    /// Bytes read and built (`limits.template_bytes`).
    pub bytes: usize,
}

/// `limits.template_fuel` by default: the worst template found takes about 20 ms with it on a
/// small machine (docs/limits.md).
pub const DEFAULT_FUEL: u64 = 50_000;

/// `limits.template_bytes` by default: a 1 MiB event (the largest frame a face takes) can still be
/// written out whole as JSON.
pub const DEFAULT_BYTES: usize = 4 * 1024 * 1024;

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits {
            fuel: DEFAULT_FUEL,
            bytes: DEFAULT_BYTES,
        }
    }
}

static LIMITS: OnceLock<TemplateLimits> = OnceLock::new();

/// Sets the budget of every template evaluation in this process. Called once at start, before the
/// first evaluation; later calls change nothing.
pub fn configure(limits: TemplateLimits) {
    if LIMITS.set(limits).is_err() {
        log::debug!("templates: the limits were already set");
    }
}

fn limits() -> TemplateLimits {
    *LIMITS.get_or_init(TemplateLimits::default)
}

/// Why a template field was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    #[error(
        "the template ran out of fuel: it needs more than {0} instructions (limits.template_fuel)"
    )]
    Fuel(u64),
    #[error("the template reads or builds more than {0} bytes (limits.template_bytes)")]
    Bytes(usize),
}

/// What is left of the budget of the field being evaluated on this thread.
#[derive(Debug, Clone, Copy)]
struct Budget {
    fuel: u64,
    bytes: usize,
    exhausted: Option<Exhausted>,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Ends the budget when the outermost [`metered`] returns (or unwinds).
struct Armed;

impl Drop for Armed {
    fn drop(&mut self) {
        BUDGET.set(None);
    }
}

/// Runs `evaluate`, the evaluation of one template field, on one budget: the evaluations inside it
/// ([`render`], [`evaluate`]) share it. Nested calls join the budget of the outermost one.
pub fn metered<T>(evaluate: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    if BUDGET.get().is_some() {
        return evaluate();
    }
    let limits = limits();
    BUDGET.set(Some(Budget {
        fuel: limits.fuel,
        bytes: limits.bytes,
        exhausted: None,
    }));
    let _armed = Armed;
    evaluate()
}

fn update(change: impl FnOnce(&mut Budget)) {
    if let Some(mut budget) = BUDGET.get() {
        change(&mut budget);
        BUDGET.set(Some(budget));
    }
}

fn bytes_left() -> usize {
    BUDGET.get().map_or(usize::MAX, |budget| budget.bytes)
}

/// Takes `bytes` from the budget, or fails the evaluation when there are not that many left.
fn charge(bytes: usize) -> Result<(), Error> {
    let Some(mut budget) = BUDGET.get() else {
        return Ok(());
    };
    if bytes > budget.bytes {
        let exhausted = Exhausted::Bytes(limits().bytes);
        budget.bytes = 0;
        budget.exhausted = Some(exhausted);
        BUDGET.set(Some(budget));
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            exhausted.to_string(),
        ));
    }
    budget.bytes -= bytes;
    BUDGET.set(Some(budget));
    Ok(())
}

/// How deep [`weight`] looks into nested lists and objects; anything deeper counts as too large.
const MAX_DEPTH: usize = 256;

/// What an item of a list, or an entry of an object, costs besides what it holds: about what it
/// takes in memory. It keeps a list of a million empty strings from looking small.
const ITEM_BYTES: usize = 16;

/// Adds up a value's size, stopping once it passes `limit` (so that measuring costs no more than
/// what is then charged, even for a lazy sequence of a trillion items).
struct Measure {
    size: usize,
    limit: usize,
}

impl Measure {
    fn full(&self) -> bool {
        self.size > self.limit
    }

    fn add(&mut self, bytes: usize) {
        self.size = self.size.saturating_add(bytes);
    }

    fn value(&mut self, value: &Value, depth: usize) {
        if self.full() {
            return;
        }
        if depth > MAX_DEPTH {
            self.size = self.limit.saturating_add(1);
            return;
        }
        match value.kind() {
            ValueKind::String => self.add(value.as_str().map_or(0, str::len)),
            ValueKind::Bytes => self.add(value.as_bytes().map_or(0, <[u8]>::len)),
            ValueKind::Seq | ValueKind::Iterable => {
                for item in value.try_iter().into_iter().flatten() {
                    self.add(ITEM_BYTES);
                    self.value(&item, depth + 1);
                    if self.full() {
                        return;
                    }
                }
            }
            ValueKind::Map => {
                for key in value.try_iter().into_iter().flatten() {
                    self.add(2 * ITEM_BYTES);
                    self.value(&key, depth + 1);
                    if let Ok(item) = value.get_item(&key) {
                        self.value(&item, depth + 1);
                    }
                    if self.full() {
                        return;
                    }
                }
            }
            // Numbers, booleans and none live in their item; objects such as `loop` are small.
            _ => {}
        }
    }
}

/// A value's size, measured up to one byte past `limit`: a string's length; for a list or an
/// object, [`ITEM_BYTES`] per item plus what the items hold; nothing for a number, a boolean or
/// none.
fn weight_within(value: &Value, limit: usize) -> usize {
    let mut measure = Measure { size: 0, limit };
    measure.value(value, 0);
    measure.size
}

/// [`weight_within`] what the budget has left: what reading `value` costs.
fn weight(value: &Value) -> usize {
    weight_within(value, bytes_left())
}

/// What a new value built of `value`'s parts costs: a string is copied, a list or an object of
/// known length only refers to its items (minijinja shares them), anything else is read.
fn shallow(value: &Value) -> usize {
    match value.kind() {
        ValueKind::String | ValueKind::Bytes => weight(value),
        ValueKind::Seq | ValueKind::Iterable => value
            .len()
            .map_or_else(|| weight(value), |len| len.saturating_mul(ITEM_BYTES)),
        ValueKind::Map => value
            .len()
            .map_or_else(|| weight(value), |len| len.saturating_mul(2 * ITEM_BYTES)),
        _ => 0,
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::Undefined | ValueKind::None | ValueKind::Bool | ValueKind::Number
    )
}

/// A whole non-negative number, as a count or width.
fn count(value: &Value) -> Option<usize> {
    usize::try_from(value.clone()).ok()
}

/// The compiled expressions that carry out an operation once it is paid for, in an environment
/// without metering (the operands are `a`, `b`, `c`, `d`).
fn unmetered() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Chainable);
        environment
    })
}

thread_local! {
    static OPERATIONS: RefCell<HashMap<&'static str, Arc<Expression<'static, 'static>>>> =
        RefCell::new(HashMap::new());
}

/// Carries out `operation` (an expression over `a` … `d`) with minijinja's own semantics.
fn perform(operation: &'static str, operands: &[Value]) -> Result<Value, Error> {
    let expression = OPERATIONS.with(|operations| {
        if let Some(expression) = operations.borrow().get(operation) {
            return Ok(expression.clone());
        }
        let expression = Arc::new(unmetered().compile_expression(operation)?);
        operations
            .borrow_mut()
            .insert(operation, expression.clone());
        Ok::<_, Error>(expression)
    })?;
    let context: Value = ["a", "b", "c", "d"]
        .into_iter()
        .zip(operands.iter().cloned())
        .collect();
    // Report the operation's own error, without the location of the helper expression.
    expression
        .eval(context)
        .map_err(|error| match error.detail() {
            Some(detail) => Error::new(error.kind(), detail.to_owned()),
            None => Error::from(error.kind()),
        })
}

/// `a ~ b`: both printed one after the other.
fn concat(a: Value, b: Value) -> Result<Value, Error> {
    charge(weight(&a).saturating_add(weight(&b)))?;
    perform("a ~ b", &[a, b])
}

/// `a + b`: numbers, or two strings or two lists joined.
fn add(a: Value, b: Value) -> Result<Value, Error> {
    if !is_scalar(&a) && !is_scalar(&b) {
        charge(shallow(&a).saturating_add(shallow(&b)))?;
    }
    perform("a + b", &[a, b])
}

/// `a * b`: numbers, or a string or list repeated.
fn mul(a: Value, b: Value) -> Result<Value, Error> {
    let repeated = match (is_scalar(&a), is_scalar(&b)) {
        (false, true) => Some((&a, &b)),
        (true, false) => Some((&b, &a)),
        _ => None,
    };
    if let Some((value, times)) = repeated {
        let times = count(times).unwrap_or(0);
        charge(shallow(value).saturating_mul(times))?;
    }
    perform("a * b", &[a, b])
}

/// Comparisons: strings cost what their common length is, lists and objects what they print.
fn compared(a: &Value, b: &Value) -> Result<(), Error> {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => charge(a.len().min(b.len())),
        _ if is_scalar(a) || is_scalar(b) => Ok(()),
        _ => charge(weight(a).saturating_add(weight(b))),
    }
}

fn compare(operation: &'static str) -> impl Fn(Value, Value) -> Result<Value, Error> {
    move |a, b| {
        compared(&a, &b)?;
        perform(operation, &[a, b])
    }
}

/// `a in b`: a search through a string or a list (an object's keys are looked up).
fn contains(a: Value, b: Value) -> Result<Value, Error> {
    if b.kind() != ValueKind::Map {
        charge(weight(&a).saturating_add(weight(&b)))?;
    }
    perform("a in b", &[a, b])
}

/// `a[b]`: a string is indexed by walking its characters.
fn item(a: Value, b: Value) -> Result<Value, Error> {
    if a.kind() == ValueKind::String {
        charge(weight(&a))?;
    }
    perform("a[b]", &[a, b])
}

/// `a[b:c:d]`: a copy of part of a string or list.
fn slice(a: Value, b: Value, c: Value, d: Value) -> Result<Value, Error> {
    charge(weight(&a))?;
    perform("a[b:c:d]", &[a, b, c, d])
}

/// `[a, b, …]`: a list literal (also built for calls that spread arguments).
fn list(items: Rest<Value>) -> Result<Value, Error> {
    charge(items.len().saturating_mul(ITEM_BYTES))?;
    Ok(Value::from(items.0))
}

/// Every built-in filter of minijinja 2.24, metered.
fn builtin_filters() -> Vec<(&'static str, Value)> {
    vec![
        ("safe", Value::from_function(filters::safe)),
        ("escape", Value::from_function(filters::escape)),
        ("e", Value::from_function(filters::escape)),
        ("lower", Value::from_function(filters::lower)),
        ("upper", Value::from_function(filters::upper)),
        ("title", Value::from_function(filters::title)),
        ("capitalize", Value::from_function(filters::capitalize)),
        ("replace", Value::from_function(filters::replace)),
        ("length", Value::from_function(filters::length)),
        ("count", Value::from_function(filters::length)),
        ("dictsort", Value::from_function(filters::dictsort)),
        ("items", Value::from_function(filters::items)),
        ("reverse", Value::from_function(filters::reverse)),
        ("trim", Value::from_function(filters::trim)),
        ("join", Value::from_function(filters::join)),
        ("split", Value::from_function(filters::split)),
        ("lines", Value::from_function(filters::lines)),
        ("default", Value::from_function(filters::default)),
        ("d", Value::from_function(filters::default)),
        ("round", Value::from_function(filters::round)),
        ("abs", Value::from_function(filters::abs)),
        ("int", Value::from_function(filters::int)),
        ("float", Value::from_function(filters::float)),
        ("attr", Value::from_function(filters::attr)),
        ("first", Value::from_function(filters::first)),
        ("last", Value::from_function(filters::last)),
        ("min", Value::from_function(filters::min)),
        ("max", Value::from_function(filters::max)),
        ("sort", Value::from_function(filters::sort)),
        ("list", Value::from_function(filters::list)),
        ("string", Value::from_function(filters::string)),
        ("bool", Value::from_function(filters::bool)),
        ("batch", Value::from_function(filters::batch)),
        ("slice", Value::from_function(filters::slice)),
        ("sum", Value::from_function(filters::sum)),
        ("indent", Value::from_function(filters::indent)),
        ("select", Value::from_function(filters::select)),
        ("reject", Value::from_function(filters::reject)),
        ("selectattr", Value::from_function(filters::selectattr)),
        ("rejectattr", Value::from_function(filters::rejectattr)),
        ("map", Value::from_function(filters::map)),
        ("groupby", Value::from_function(filters::groupby)),
        ("unique", Value::from_function(filters::unique)),
        ("chain", Value::from_function(filters::chain)),
        ("zip", Value::from_function(filters::zip)),
        ("pprint", Value::from_function(filters::pprint)),
        ("format", Value::from_function(filters::format)),
        ("tojson", Value::from_function(filters::tojson)),
    ]
}

/// Filters whose result can be much larger than what they are given: a count, a width or a
/// second string multiplies the first (`batch(n)`, `indent(w)`, `replace(a, b)`, `join(sep)`).
const AMPLIFIERS: [&str; 7] = [
    "replace", "join", "indent", "batch", "slice", "tojson", "format",
];

/// Filters that take a string as the sequence of its characters, or cut it into pieces: an item
/// each, which costs more than the character.
const EXPLODERS: [&str; 15] = [
    "list",
    "sort",
    "unique",
    "split",
    "lines",
    "batch",
    "slice",
    "map",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "groupby",
    "chain",
    "zip",
];

/// How much a filter's argument can multiply its input: a number as a count, anything else its
/// size; a keyword argument's values count alike.
fn multiplier(argument: &Value) -> usize {
    if argument.is_kwargs() {
        return argument
            .try_iter()
            .into_iter()
            .flatten()
            .filter_map(|key| argument.get_item(&key).ok())
            .map(|value| multiplier(&value))
            .max()
            .unwrap_or(0);
    }
    match argument.kind() {
        ValueKind::Number => count(argument).unwrap_or(0),
        _ => weight(argument),
    }
}

/// The largest number written in a `format` string: a width or precision (`%1000000s`).
fn widest(format: &str) -> usize {
    format
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|digits| digits.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}

/// What a filter costs before it runs.
fn filter_cost(name: &str, arguments: &[Value]) -> usize {
    let input = arguments.first();
    match name {
        // Constant time whatever the input.
        "default" | "d" | "attr" | "bool" | "abs" | "round" => 0,
        // Constant time but for strings (characters are counted) and lazy sequences.
        "length" | "count" => input
            .filter(|input| matches!(input.kind(), ValueKind::String | ValueKind::Iterable))
            .map_or(0, weight),
        _ => {
            let mut read = arguments.iter().map(weight).fold(0, usize::saturating_add);
            if let Some(text) = input.and_then(Value::as_str) {
                if EXPLODERS.contains(&name) {
                    read = read.saturating_add(text.len().saturating_mul(ITEM_BYTES));
                }
            }
            if !AMPLIFIERS.contains(&name) {
                return read;
            }
            let times = arguments
                .iter()
                .skip(1)
                .map(multiplier)
                .chain((name == "format").then(|| input.and_then(Value::as_str).map_or(0, widest)))
                .max()
                .unwrap_or(0);
            let built = input.map_or(0, weight).max(1).saturating_mul(times);
            read.saturating_add(built)
        }
    }
}

/// `filter`, charged for what it reads and may build before it runs, and for its result.
fn metered_filter(
    name: &'static str,
    filter: Value,
) -> impl Fn(&State, Rest<Value>) -> Result<Value, Error> + Send + Sync + 'static {
    move |state, arguments| {
        charge(filter_cost(name, &arguments))?;
        let result = filter.call(state, &arguments)?;
        charge(weight(&result))?;
        Ok(result)
    }
}

/// The built-in tests of minijinja 2.24 whose cost grows with their operands, and whether each is a
/// comparison (the others look at a value's kind or a number and are left as they are).
fn builtin_tests() -> Vec<(&'static str, bool, Value)> {
    let compare = [
        (
            ["eq", "equalto", "=="].as_slice(),
            Value::from_function(minijinja::tests::is_eq),
        ),
        (&["ne", "!="], Value::from_function(minijinja::tests::is_ne)),
        (
            &["lt", "lessthan", "<"],
            Value::from_function(minijinja::tests::is_lt),
        ),
        (&["le", "<="], Value::from_function(minijinja::tests::is_le)),
        (
            &["gt", "greaterthan", ">"],
            Value::from_function(minijinja::tests::is_gt),
        ),
        (&["ge", ">="], Value::from_function(minijinja::tests::is_ge)),
    ];
    let mut tests: Vec<(&'static str, bool, Value)> = compare
        .into_iter()
        .flat_map(|(names, test)| names.iter().map(move |name| (*name, true, test.clone())))
        .collect();
    tests.extend([
        (
            "startingwith",
            false,
            Value::from_function(minijinja::tests::is_startingwith),
        ),
        (
            "endingwith",
            false,
            Value::from_function(minijinja::tests::is_endingwith),
        ),
        (
            "lower",
            false,
            Value::from_function(minijinja::tests::is_lower),
        ),
        (
            "upper",
            false,
            Value::from_function(minijinja::tests::is_upper),
        ),
        ("in", false, Value::from_function(minijinja::tests::is_in)),
    ]);
    tests
}

/// `test`, charged like the comparison it stands for (`comparison`), or for what it reads.
fn metered_test(
    comparison: bool,
    test: Value,
) -> impl Fn(&State, Rest<Value>) -> Result<bool, Error> + Send + Sync + 'static {
    move |state, arguments| {
        match (comparison, arguments.first(), arguments.get(1)) {
            (true, Some(a), Some(b)) => compared(a, b)?,
            _ => charge(arguments.iter().map(weight).fold(0, usize::saturating_add))?,
        }
        Ok(test.call(state, &arguments)?.is_true())
    }
}

/// The instructions replaced by metered calls, with the function and its argument count. The
/// arguments are the operands in the order the instruction pops them, last first.
fn replacement(instruction: &Instruction<'_>) -> Option<(&'static str, u16)> {
    Some(match instruction {
        Instruction::StringConcat => ("__sb_concat", 2),
        Instruction::Add => ("__sb_add", 2),
        Instruction::Mul => ("__sb_mul", 2),
        Instruction::Eq => ("__sb_eq", 2),
        Instruction::Ne => ("__sb_ne", 2),
        Instruction::Lt => ("__sb_lt", 2),
        Instruction::Lte => ("__sb_lte", 2),
        Instruction::Gt => ("__sb_gt", 2),
        Instruction::Gte => ("__sb_gte", 2),
        Instruction::In => ("__sb_in", 2),
        Instruction::GetItem => ("__sb_item", 2),
        Instruction::Slice => ("__sb_slice", 4),
        Instruction::BuildList(Some(items)) => ("__sb_list", u16::try_from(*items).ok()?),
        _ => return None,
    })
}

/// The names of the metered functions start with this; an arg with such a name is not available as
/// a bare name in templates (it would hide the function).
pub const RESERVED_PREFIX: &str = "__sb_";

fn rewrite(instructions: &mut Instructions<'_>) {
    for index in 0..instructions.len() {
        let Ok(index) = u32::try_from(index) else {
            return;
        };
        if let Some(instruction) = instructions.get_mut(index) {
            if let Some((function, arguments)) = replacement(instruction) {
                *instruction = Instruction::CallFunction(function, Some(arguments));
            }
        }
    }
}

/// Refuses, before it is compiled, a template that the budget could not hold: one whose constants
/// minijinja would build while compiling it, where no budget applies (`{{ 'x' * 100000000 }}` is
/// built by the compiler, not when it runs; the repetitions of constant strings and lists may
/// together come to at most `limits.template_bytes`), and one with a chained comparison
/// (`a < b < c`), the one comparison that cannot be metered. `expression`: the source is one
/// expression, not template text.
pub fn check(source: &str, expression: bool) -> Result<(), String> {
    if expression {
        let expression = parse_expr(source).map_err(|error| error.to_string())?;
        Check::check(|check| check.expr(&expression))
    } else {
        let template = parse_template(source)?;
        Check::check(|check| check.stmt(&template))
    }
}

/// Parses template text as minijinja does for `render_str`.
fn parse_template(source: &str) -> Result<ast::Stmt<'_>, String> {
    parse(
        source,
        "<string>",
        SyntaxConfig,
        WhitespaceConfig::default(),
    )
    .map_err(|error| error.to_string())
}

/// Adds up what compiling a template would build by repeating constants, and finds chained
/// comparisons.
struct Check {
    size: usize,
    limit: usize,
    chained: bool,
}

impl Check {
    /// Runs `visit` over a parsed template and refuses it when its constants come to too much.
    fn check(visit: impl FnOnce(&mut Check)) -> Result<(), String> {
        let limit = limits().bytes;
        let mut check = Check {
            size: 0,
            limit,
            chained: false,
        };
        visit(&mut check);
        if check.chained {
            return Err(
                "chained comparisons such as `a < b < c` are not supported: write `a < b and b < c`"
                    .into(),
            );
        }
        if check.size > limit {
            return Err(format!(
                "the template repeats constants to more than {limit} bytes (limits.template_bytes)"
            ));
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.chained || self.size > self.limit
    }

    fn stmts(&mut self, stmts: &[ast::Stmt<'_>]) {
        stmts.iter().for_each(|stmt| self.stmt(stmt));
    }

    fn stmt(&mut self, stmt: &ast::Stmt<'_>) {
        if self.full() {
            return;
        }
        match stmt {
            ast::Stmt::Template(template) => self.stmts(&template.children),
            ast::Stmt::EmitExpr(emit) => self.expr(&emit.expr),
            ast::Stmt::EmitRaw(_) => {}
            ast::Stmt::ForLoop(for_loop) => {
                self.expr(&for_loop.target);
                self.expr(&for_loop.iter);
                self.optional(&for_loop.filter_expr);
                self.stmts(&for_loop.body);
                self.stmts(&for_loop.else_body);
            }
            ast::Stmt::IfCond(cond) => {
                self.expr(&cond.expr);
                self.stmts(&cond.true_body);
                self.stmts(&cond.false_body);
            }
            ast::Stmt::WithBlock(with) => {
                for (target, value) in &with.assignments {
                    self.expr(target);
                    self.expr(value);
                }
                self.stmts(&with.body);
            }
            ast::Stmt::Set(set) => {
                self.expr(&set.target);
                self.expr(&set.expr);
            }
            ast::Stmt::SetBlock(set) => {
                self.expr(&set.target);
                self.optional(&set.filter);
                self.stmts(&set.body);
            }
            ast::Stmt::AutoEscape(block) => {
                self.expr(&block.enabled);
                self.stmts(&block.body);
            }
            ast::Stmt::FilterBlock(block) => {
                self.expr(&block.filter);
                self.stmts(&block.body);
            }
            ast::Stmt::Block(block) => self.stmts(&block.body),
            ast::Stmt::Import(import) => {
                self.expr(&import.expr);
                self.expr(&import.name);
            }
            ast::Stmt::FromImport(import) => {
                self.expr(&import.expr);
                for (name, alias) in &import.names {
                    self.expr(name);
                    self.optional(alias);
                }
            }
            ast::Stmt::Extends(extends) => self.expr(&extends.name),
            ast::Stmt::Include(include) => self.expr(&include.name),
            ast::Stmt::Macro(definition) => self.definition(definition),
            ast::Stmt::CallBlock(block) => {
                self.call(&block.call);
                self.definition(&block.macro_decl);
            }
            ast::Stmt::Do(call) => self.call(&call.call),
        }
    }

    fn definition(&mut self, definition: &ast::Macro<'_>) {
        definition.args.iter().for_each(|arg| self.expr(arg));
        definition.defaults.iter().for_each(|arg| self.expr(arg));
        self.stmts(&definition.body);
    }

    fn call(&mut self, call: &ast::Call<'_>) {
        self.expr(&call.expr);
        self.arguments(&call.args);
    }

    fn arguments(&mut self, arguments: &[ast::CallArg<'_>]) {
        for argument in arguments {
            match argument {
                ast::CallArg::Pos(expr)
                | ast::CallArg::Kwarg(_, expr)
                | ast::CallArg::PosSplat(expr)
                | ast::CallArg::KwargSplat(expr) => self.expr(expr),
            }
        }
    }

    fn optional(&mut self, expr: &Option<ast::Expr<'_>>) {
        if let Some(expr) = expr {
            self.expr(expr);
        }
    }

    fn expr(&mut self, expr: &ast::Expr<'_>) {
        if self.full() {
            return;
        }
        match expr {
            ast::Expr::Var(_) | ast::Expr::Const(_) => {}
            ast::Expr::Slice(slice) => {
                self.expr(&slice.expr);
                self.optional(&slice.start);
                self.optional(&slice.stop);
                self.optional(&slice.step);
            }
            ast::Expr::UnaryOp(op) => self.expr(&op.expr),
            ast::Expr::BinOp(op) => {
                // Inner repetitions first, so that check the operands below stays within bounds.
                self.expr(&op.left);
                self.expr(&op.right);
                if matches!(op.op, ast::BinOpKind::Mul) && !self.full() {
                    self.repetition(&op.left, &op.right);
                }
            }
            ast::Expr::Compare(compare) => {
                self.chained |= compare.ops.len() > 1;
                self.expr(&compare.expr);
                compare.ops.iter().for_each(|op| self.expr(&op.expr));
            }
            ast::Expr::IfExpr(choice) => {
                self.expr(&choice.test_expr);
                self.expr(&choice.true_expr);
                self.optional(&choice.false_expr);
            }
            ast::Expr::Filter(filter) => {
                self.optional(&filter.expr);
                self.arguments(&filter.args);
            }
            ast::Expr::Test(test) => {
                self.expr(&test.expr);
                self.arguments(&test.args);
            }
            ast::Expr::GetAttr(attribute) => self.expr(&attribute.expr),
            ast::Expr::GetItem(item) => {
                self.expr(&item.expr);
                self.expr(&item.subscript_expr);
            }
            ast::Expr::Call(call) => self.call(call),
            ast::Expr::List(list) => list.items.iter().for_each(|item| self.expr(item)),
            ast::Expr::Map(map) => {
                map.keys.iter().for_each(|key| self.expr(key));
                map.values.iter().for_each(|value| self.expr(value));
            }
        }
    }

    /// `left * right` with both constant: what the compiler builds for a string or list repeated.
    fn repetition(&mut self, left: &ast::Expr<'_>, right: &ast::Expr<'_>) {
        let (Some(left), Some(right)) = (left.as_const(), right.as_const()) else {
            return;
        };
        let (value, times) = if is_scalar(&right) {
            (left, right)
        } else {
            (right, left)
        };
        if is_scalar(&value) {
            return;
        }
        let times = count(&times).unwrap_or(0);
        let built = weight_within(&value, self.limit).saturating_mul(times);
        self.size = self.size.saturating_add(built);
    }
}

/// The environment templates run in: the one of docs/rules.md §5 (undefined values chain, nothing
/// is escaped), with every cost metered.
fn metered_environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Chainable);
    environment.set_auto_escape_callback(|_| AutoEscape::None);
    environment.set_formatter(|out, state, value| {
        charge(weight(value))?;
        escape_formatter(out, state, value)
    });
    environment.add_function("__sb_concat", concat);
    environment.add_function("__sb_add", add);
    environment.add_function("__sb_mul", mul);
    environment.add_function("__sb_eq", compare("a == b"));
    environment.add_function("__sb_ne", compare("a != b"));
    environment.add_function("__sb_lt", compare("a < b"));
    environment.add_function("__sb_lte", compare("a <= b"));
    environment.add_function("__sb_gt", compare("a > b"));
    environment.add_function("__sb_gte", compare("a >= b"));
    environment.add_function("__sb_in", contains);
    environment.add_function("__sb_item", item);
    environment.add_function("__sb_slice", slice);
    environment.add_function("__sb_list", list);
    for (name, filter) in builtin_filters() {
        environment.add_filter(name, metered_filter(name, filter));
    }
    for (name, comparison, test) in builtin_tests() {
        environment.add_test(name, metered_test(comparison, test));
    }
    environment
}

thread_local! {
    static ENVIRONMENT: RefCell<Environment<'static>> = RefCell::new(metered_environment());
}

/// Runs compiled `instructions` on the field's budget: the fuel left is the environment's fuel, and
/// what the run consumed is taken from it.
fn run(
    instructions: &Instructions<'_>,
    blocks: &BTreeMap<&str, Instructions<'_>>,
    context: &serde_json::Value,
    output: &mut String,
) -> Result<Option<Value>, String> {
    let fuel = BUDGET.get().map(|budget| budget.fuel);
    let result = ENVIRONMENT.with(|environment| {
        environment.borrow_mut().set_fuel(fuel);
        let environment = environment.borrow();
        let mut out = make_string_output(output);
        Vm::new(&environment)
            .eval(
                instructions,
                Value::from_serialize(context),
                blocks,
                &mut out,
                AutoEscape::None,
            )
            .map(|(value, state)| {
                if let Some((_, remaining)) = state.fuel_levels() {
                    update(|budget| budget.fuel = remaining);
                }
                value
            })
    });
    result.map_err(describe)
}

/// The message of a failed evaluation: the budget's when it ran out, else minijinja's.
fn describe(error: Error) -> String {
    let exhausted = BUDGET.get().and_then(|budget| budget.exhausted);
    match exhausted {
        Some(exhausted) => exhausted.to_string(),
        None if error.kind() == ErrorKind::OutOfFuel => {
            let exhausted = Exhausted::Fuel(limits().fuel);
            update(|budget| {
                budget.fuel = 0;
                budget.exhausted = Some(exhausted);
            });
            exhausted.to_string()
        }
        None => error.to_string(),
    }
}

/// Renders template text (`{{ … }}` and `{% … %}` blocks) against `context`.
pub fn render(source: &str, context: &serde_json::Value) -> Result<String, String> {
    metered(|| {
        let template = parse_template(source)?;
        Check::check(|check| check.stmt(&template))?;
        let mut generator = CodeGenerator::new("<string>", source);
        generator.compile_stmt(&template);
        let (mut instructions, mut blocks) = generator.finish();
        rewrite(&mut instructions);
        blocks.values_mut().for_each(rewrite);
        let mut output = String::new();
        run(&instructions, &blocks, context, &mut output)?;
        // Literal text is written without a charge (it is the document's own): the result as a
        // whole must still fit.
        let limit = limits().bytes;
        if output.len() > limit {
            return Err(Exhausted::Bytes(limit).to_string());
        }
        Ok(output)
    })
}

/// Evaluates one expression against `context`, giving its value as JSON (`null` when undefined).
pub fn evaluate(source: &str, context: &serde_json::Value) -> Result<serde_json::Value, String> {
    metered(|| {
        let expression = parse_expr(source).map_err(|error| error.to_string())?;
        Check::check(|check| check.expr(&expression))?;
        let mut generator = CodeGenerator::new("<expression>", source);
        generator.compile_expr(&expression);
        let (mut instructions, blocks) = generator.finish();
        rewrite(&mut instructions);
        let value = run(&instructions, &blocks, context, &mut String::new())?.unwrap_or_default();
        if value.is_undefined() || value.is_none() {
            return Ok(serde_json::Value::Null);
        }
        charge(weight(&value)).map_err(describe)?;
        serde_json::to_value(&value).map_err(|error| error.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(source: &str) -> Result<String, String> {
        render(source, &json!({"s": "x", "n": 3, "items": [1, 2, 3]}))
    }

    #[test]
    fn metered_operations_keep_minijinja_semantics() {
        assert_eq!(text("{{ s ~ n ~ items }}").unwrap(), "x3[1, 2, 3]");
        assert_eq!(
            text("{{ s + 'y' }} {{ n + 1 }} {{ items + [4] }}").unwrap(),
            "xy 4 [1, 2, 3, 4]"
        );
        assert_eq!(
            text("{{ s * 3 }} {{ n * 2 }} {{ 2 * s }}").unwrap(),
            "xxx 6 xx"
        );
        assert_eq!(
            text("{{ n == 3 }} {{ n != 3 }} {{ n < 4 }} {{ s <= 'x' }} {{ n > 4 }} {{ n >= 3 }}")
                .unwrap(),
            "True False True True False True"
        );
        assert_eq!(
            text("{{ 2 in items }} {{ 'x' in 'axe' }} {{ 5 not in items }}").unwrap(),
            "True True True"
        );
        assert_eq!(
            text("{{ items[1] }} {{ items[1:] }} {{ 'hello'[::2] }} {{ items[9] is undefined }}")
                .unwrap(),
            "2 [2, 3] hlo True"
        );
        assert_eq!(
            text("{{ [n, s] }} {{ items | join('-') }} {{ s | upper | indent(2) }}").unwrap(),
            "[3, \"x\"] 1-2-3 X"
        );
        assert_eq!(text("{{ missing.deeper ~ 'ok' }}").unwrap(), "ok");
        assert_eq!(
            evaluate("items | map('string') | list", &json!({"items": [1, 2]})).unwrap(),
            json!(["1", "2"])
        );
    }

    #[test]
    fn operation_errors_read_as_minijinja_writes_them() {
        let error = text("{{ s + 1 }}").unwrap_err();
        assert!(
            error.contains("tried to use + operator on unsupported types string and number"),
            "{error}"
        );
    }

    #[test]
    fn a_loop_runs_out_of_fuel() {
        let error =
            text("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}")
                .unwrap_err();
        assert_eq!(error, Exhausted::Fuel(DEFAULT_FUEL).to_string());
    }

    #[test]
    fn large_values_are_refused_before_they_are_built() {
        let context =
            json!({"x": "x", "one": 1, "big": 100_000_000usize, "huge": 1_000_000_000_000usize});
        for source in [
            "{{ x * big }}",
            "{% set s = x * 1000000 %}{{ s ~ s ~ s ~ s ~ s }}",
            "{% set s = x * 1000000 %}{{ [s, s, s, s, s] | join }}",
            "{% set s = x * 100 %}{{ s | replace('x', s * 10000) }}",
            "{{ x | indent(big) }}",
            "{{ [one] | batch(big) | list | length }}",
            "{{ ('%' ~ big ~ 's') | format(x) }}",
            "{% set ns = namespace(s=x) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "{% set ns = namespace(l=[one]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | sum }}",
            "{{ ([one] * huge) | sum }}",
        ] {
            assert_eq!(
                render(source, &context).unwrap_err(),
                Exhausted::Bytes(DEFAULT_BYTES).to_string(),
                "{source}"
            );
        }
    }

    #[test]
    fn large_constants_are_refused_before_they_are_compiled() {
        for source in [
            "{{ 'x' * 100000000 }}",
            "{{ ('x' * 3000000) ~ ('x' * 3000000) }}",
            "{{ [('x' * 1000000), ('x' * 1000000), ('x' * 1000000), ('x' * 1000000), ('x' * 1000000)] }}",
            "{{ (('x' * 1000) * 1000) * 1000 }}",
            "{{ [1] * 1000000000000 }}",
        ] {
            let error = check(source, false).unwrap_err();
            assert!(error.contains("limits.template_bytes"), "{source}: {error}");
            assert_eq!(render(source, &json!({})).unwrap_err(), error);
        }
        assert!(check("{{ '-' * 20 }} {{ 60 * 1000 }}", false).is_ok());
    }

    #[test]
    fn chained_comparisons_are_refused() {
        let error = check("1 < n < 10", true).unwrap_err();
        assert_eq!(
            error,
            "chained comparisons such as `a < b < c` are not supported: write `a < b and b < c`"
        );
        assert!(check("{% if 1 < n and n < 10 %}{% endif %}", false).is_ok());
    }

    #[test]
    fn tests_and_exploding_filters_are_metered() {
        let context = json!({"big": "y".repeat(1 << 20)});
        for source in [
            "{% for i in range(100000) %}{% if big is lower %}{% endif %}{% endfor %}",
            "{% for i in range(100000) %}{% if big is eq(big) %}{% endif %}{% endfor %}",
            "{{ big | split('y') | length }}",
            "{{ big | list | length }}",
        ] {
            assert_eq!(
                render(source, &context).unwrap_err(),
                Exhausted::Bytes(DEFAULT_BYTES).to_string(),
                "{source}"
            );
        }
    }

    #[test]
    fn one_json_field_shares_one_budget() {
        let context = json!({"x": "x"});
        let (first, second) = metered(|| {
            let first = render("{{ x * 1500000 }}", &context);
            let second = render("{{ x * 1500000 }}", &context);
            Ok((first, second))
        })
        .unwrap();
        assert_eq!(first.unwrap().len(), 1_500_000);
        assert_eq!(
            second.unwrap_err(),
            Exhausted::Bytes(DEFAULT_BYTES).to_string()
        );
        // The next field starts afresh.
        assert!(render("{{ x * 1500000 }}", &context).is_ok());
    }
}
