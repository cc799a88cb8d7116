//! The public surface that needs no server: the attribute macros (and their
//! compile errors), what is `Send`, the tracing spans, and the memory
//! backend's own configuration.

mod common;

#[path = "macros.rs"]
mod macros;
#[path = "memory.rs"]
mod memory;
#[path = "spans.rs"]
mod spans;
#[path = "static_asserts.rs"]
mod static_asserts;
#[path = "ui.rs"]
mod ui;
