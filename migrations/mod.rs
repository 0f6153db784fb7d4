//! The numbered migration steps, oldest first. Add a step as `vNNNN_<what>.rs` and list it here;
//! never change a step that has shipped.

use super::Step;

mod v0001_initial;

pub const STEPS: &[Step] = &[Step {
    version: 1,
    name: "initial",
    trees: v0001_initial::TREES,
    run: v0001_initial::run,
}];
