//! memcached backend over the meta protocol (lands with issue 4).
