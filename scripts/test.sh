#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the Redis and
# memcached servers, and redis-cli (redis-tools), when they are missing
# (Debian/Ubuntu packages); starts one Redis, one memcached, one Redis Cluster
# (three masters) and one Sentinel setup for every test binary to share, and
# stops them on exit; then runs every test with every feature, then the
# memory-only build's tests (--no-default-features).
#
#   scripts/test.sh                            # everything
#   scripts/test.sh --test behaviour redis::   # extra arguments go to cargo test
#
# Set STAMPEDE_REDIS_URL / STAMPEDE_MEMCACHED_URL / STAMPEDE_REDIS_CLUSTER_URL
# / STAMPEDE_REDIS_SENTINEL_URL to test against servers you run yourself;
# nothing is started for those. Tests that kill or disturb servers (outages,
# failovers) always start their own.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if [ -z "${STAMPEDE_REDIS_URL:-}" ] || [ -z "${STAMPEDE_REDIS_CLUSTER_URL:-}" ] \
  || [ -z "${STAMPEDE_REDIS_SENTINEL_URL:-}" ]; then
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
fi
if [ -z "${STAMPEDE_MEMCACHED_URL:-}" ] && ! command -v memcached >/dev/null 2>&1; then
  missing+=(memcached)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: ${missing[*]} not installed and apt-get is not available." >&2
    echo "Install them with your package manager, or set STAMPEDE_REDIS_URL /" \
      "STAMPEDE_MEMCACHED_URL / STAMPEDE_REDIS_CLUSTER_URL / STAMPEDE_REDIS_SENTINEL_URL." >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "installing ${missing[*]} (apt-get)" >&2
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- The shared servers -----------------------------------------------------

state="$(mktemp -d "${TMPDIR:-/tmp}/stampede-test-servers.XXXXXX")"
pids=()
stop_servers() {
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$state"
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "error: $*" >&2
  echo "Set STAMPEDE_REDIS_URL / STAMPEDE_MEMCACHED_URL / STAMPEDE_REDIS_CLUSTER_URL /" \
    "STAMPEDE_REDIS_SENTINEL_URL to servers you run yourself instead." >&2
  exit 1
}

# Ports are reserved as the tests reserve theirs (tests/common/servers.rs):
# below the ephemeral range, each locked with flock(1) on a file in the same
# directory for as long as this script runs, so no test process (or another
# run of this script) takes one.
port_locks="${TMPDIR:-/tmp}/stampede-test-ports"
mkdir -p "$port_locks"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
lock_port() {
  local fd
  exec {fd}>"$port_locks/$1"
  if flock -n "$fd" && ! listening "$1"; then return 0; fi
  exec {fd}>&-
  return 1
}
# reserve LOW HIGH [BUS_OFFSET]: sets $port.
reserve() {
  local tries
  for tries in $(seq 1 1000); do
    port="$(shuf -i "$1-$2" -n 1)"
    if lock_port "$port"; then
      if [ -z "${3:-}" ] || lock_port "$((port + $3))"; then return 0; fi
    fi
  done
  fail "no free port in $1-$2"
}
# until_up WHAT SECONDS COMMAND...: runs COMMAND until it succeeds.
until_up() {
  local what="$1" deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then fail "$what did not come up"; fi
    sleep 0.1
  done
}
redis_args=(--bind 127.0.0.1 --save "" --appendonly no --protected-mode no --loglevel warning)

start_redis() { # PORT [ARGS...]
  local port="$1"
  shift
  redis-server --port "$port" "${redis_args[@]}" "$@" >"$state/redis-$port.log" 2>&1 &
  pids+=($!)
  until_up "redis-server on port $port" 30 redis-cli -p "$port" ping
}

if [ -z "${STAMPEDE_REDIS_URL:-}" ]; then
  reserve 20000 31999
  start_redis "$port"
  export STAMPEDE_REDIS_URL="redis://127.0.0.1:$port"
fi

if [ -z "${STAMPEDE_MEMCACHED_URL:-}" ]; then
  reserve 20000 31999
  memcached -p "$port" -l 127.0.0.1 -U 0 -m 64 -t 2 -u root >"$state/memcached.log" 2>&1 &
  pids+=($!)
  until_up "memcached on port $port" 30 listening "$port"
  export STAMPEDE_MEMCACHED_URL="memcached://127.0.0.1:$port"
fi

if [ -z "${STAMPEDE_REDIS_CLUSTER_URL:-}" ]; then
  nodes=()
  for _ in 1 2 3; do
    reserve 10000 19999 10000
    mkdir -p "$state/node-$port"
    # A long node timeout: nobody kills these nodes, and a node starved of
    # CPU must not be voted out.
    start_redis "$port" --cluster-enabled yes --dir "$state/node-$port" \
      --cluster-config-file nodes.conf --cluster-node-timeout 15000
    nodes+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-yes >"$state/cluster-create.log" 2>&1 \
    || fail "redis-cli --cluster create failed: $(cat "$state/cluster-create.log")"
  cluster_ok() {
    local node
    for node in "${nodes[@]}"; do
      redis-cli -p "${node#*:}" cluster info | grep -q '^cluster_state:ok' || return 1
    done
  }
  until_up "the Redis Cluster" 60 cluster_ok
  export STAMPEDE_REDIS_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${nodes[*]}")"
fi

if [ -z "${STAMPEDE_REDIS_SENTINEL_URL:-}" ]; then
  reserve 20000 31999
  master="$port"
  start_redis "$master"
  reserve 20000 31999
  mkdir -p "$state/sentinel-$port"
  cat >"$state/sentinel-$port/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
dir "$state/sentinel-$port"
protected-mode no
loglevel warning
sentinel resolve-hostnames no
sentinel monitor mymaster 127.0.0.1 $master 1
sentinel down-after-milliseconds mymaster 15000
CONF
  redis-server "$state/sentinel-$port/sentinel.conf" --sentinel >"$state/sentinel.log" 2>&1 &
  pids+=($!)
  sentinel_ok() {
    redis-cli -p "$port" sentinel get-master-addr-by-name mymaster | grep -qx "$master"
  }
  until_up "the Redis Sentinel" 30 sentinel_ok
  export STAMPEDE_REDIS_SENTINEL_URL="redis+sentinel://127.0.0.1:$port/mymaster"
fi

# --- The tests ---------------------------------------------------------------

if [ "$#" -gt 0 ]; then
  cargo test --all-features "$@"
  exit
fi
cargo test --all-features
# The memory-only build the README offers (`default-features = false`) must
# build and pass on its own too.
echo "testing the memory-only build (--no-default-features)" >&2
cargo test --no-default-features
