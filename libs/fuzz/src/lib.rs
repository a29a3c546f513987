//! Fuzzing every Rapport RPC through the real server: bytes → decode → guard → handler. [`Schema`] reads the RPCs
//! and their messages from the descriptor set; [`generate`] writes random messages of a type straight in the wire
//! format (plausible ones that pass validation and reach the store, hostile ones with edge values, huge repeats,
//! deep nesting, unknown fields and wrong wire types); [`mutate`] damages bytes the way a coverage-guided fuzzer
//! does; [`call`] sends any bytes to a method with a raw codec; [`verdict`] says whether the answer is one a
//! hostile caller may get (an OK or a refusal with a stable reason) or a finding (an internal error, an unknown
//! code, a hang, a refusal without `ErrorInfo`); [`corpus`] reads and writes the checked-in seeds. The same code
//! drives the ordinary test over the corpus and the `cargo fuzz` targets under `fuzz/`.
pub mod call;
pub mod corpus;
pub mod generate;
pub mod mutate;
mod schema;

pub use call::{Harness, call, verdict, watch_panics};
pub use generate::{Case, Mode, case, generate};
pub use mutate::mutate;
pub use schema::{Rpc, Schema};
