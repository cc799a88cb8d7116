#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the Redis and
# memcached servers the tests start, and redis-cli (redis-tools) to set up the
# Redis Cluster and Sentinel ones (Debian/Ubuntu packages), when they are
# missing; then runs every test with every feature, then the memory-only
# build's tests (--no-default-features).
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --test behaviour redis::   # extra arguments go to cargo test
#
# Set STAMPEDE_REDIS_URL / STAMPEDE_MEMCACHED_URL (and STAMPEDE_REDIS_CLUSTER_URL
# / STAMPEDE_REDIS_SENTINEL_URL) to test against servers you run yourself; then
# nothing is installed for that backend.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if [ -z "${STAMPEDE_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  missing+=(redis-server)
fi
if [ -z "${STAMPEDE_MEMCACHED_URL:-}" ] && ! command -v memcached >/dev/null 2>&1; then
  missing+=(memcached)
fi
# redis-cli sets up the Redis Cluster and Sentinel servers the tests start.
if { [ -z "${STAMPEDE_REDIS_CLUSTER_URL:-}" ] || [ -z "${STAMPEDE_REDIS_SENTINEL_URL:-}" ]; } \
  && ! command -v redis-cli >/dev/null 2>&1; then
  missing+=(redis-tools)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: ${missing[*]} not installed and apt-get is not available." >&2
    echo "Install them with your package manager, or set STAMPEDE_REDIS_URL / STAMPEDE_MEMCACHED_URL." >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "installing ${missing[*]} (apt-get)" >&2
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "$#" -gt 0 ]; then
  exec cargo test --all-features "$@"
fi
cargo test --all-features
# The memory-only build the README offers (`default-features = false`) must
# build and pass on its own too.
echo "testing the memory-only build (--no-default-features)" >&2
exec cargo test --no-default-features
