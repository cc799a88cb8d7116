//! Redis backend over deadpool-redis (lands with issue 3).

// Used by the backend in the next commit.
#![allow(dead_code)]

mod envelope;
mod naming;
