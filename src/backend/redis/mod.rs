//! Redis backend over deadpool-redis (lands with issue 3).
