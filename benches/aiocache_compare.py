"""aiocache's own RedLock and OptimisticLock on the workloads of stampede's
comparison (`cargo bench -p stampede-benches --bench compare`), against the
same servers. Prints one JSON object on stdout; the Rust side parses it.

    python aiocache_compare.py --redis 127.0.0.1:6379 --memcached 127.0.0.1:11211 \
        --backends memory,redis,memcached --pairs 2000 --concurrency 64 \
        --callers 1000 --procs 4 --fill-ms 50 --lease-s 5 --cas-tasks 64 --cas-each 50

Every workload is written the way aiocache documents it:

- pairs: `RedLock(cache, key, lease)` entered and left (add + release), and
  `OptimisticLock(cache, key)` entered and `cas` called (gets + cas);
- stampede: the body of aiocache's own `cached_stampede` decorator (get;
  on a miss, `async with RedLock`: get again, fill, set);
- CAS increments: `OptimisticLock` + `cas`, retried on `OptimisticLockError`;
- fills (`aiocache_fills.py`): the round trips of one cold fill and one hit
  through the `cached_stampede` body, counted, and a delete landing inside
  the fill, raced many times (`--race-trials`, `--race-in-flight`).

With `--child stampede` it runs one process's share of a stampede that is
spread over several processes (started by the parent run of this script).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import aiocache
import redis.asyncio as redis_asyncio
from aiocache import RedisCache, MemcachedCache, SimpleMemoryCache
from aiocache.lock import OptimisticLock, OptimisticLockError, RedLock

import aiocache_fills


def make_cache(backend, args, namespace, pool=None):
    if backend == "memory":
        return SimpleMemoryCache(namespace=namespace)
    if backend == "redis":
        host, port = args.redis.rsplit(":", 1)
        # redis-py opens one connection per command in flight and its
        # default pool refuses past its limit; a blocking pool of 64
        # connections queues instead, as a service would configure it.
        return RedisCache(
            endpoint=host, port=int(port), namespace=namespace,
            pool_max_size=64,
            connection_pool_class=redis_asyncio.BlockingConnectionPool,
        )
    if backend == "memcached":
        host, port = args.memcached.rsplit(":", 1)
        # aiocache's default pool is 2 connections; give concurrent runs
        # as many as they have tasks so the pool is not what limits them.
        return MemcachedCache(
            endpoint=host, port=int(port), namespace=namespace, pool_size=min(pool or 2, 64)
        )
    raise ValueError(backend)


def lease_for(backend, seconds):
    # memcached counts whole seconds; aiocache passes the lease as exptime.
    return max(1, int(round(seconds))) if backend == "memcached" else seconds


def fresh_namespace(what):
    return "aio-{}-{}".format(what, uuid.uuid4().hex[:12])


async def timed_pairs(op, tasks, per_task):
    """Runs `op(task, i)` per_task times in each of `tasks` tasks; wall seconds."""

    async def worker(task):
        for i in range(per_task):
            await op(task, i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return time.perf_counter() - started


async def pairs(backend, args):
    out = {}
    for name, tasks in (("seq", 1), ("conc", args.concurrency)):
        per_task = max(1, args.pairs // tasks)
        cache = make_cache(backend, args, fresh_namespace("pairs"), pool=tasks)
        lease = lease_for(backend, args.lease_s)

        async def redlock(task, i):
            async with RedLock(cache, "k{}".format(task), lease):
                pass

        async def optimistic(task, i):
            async with OptimisticLock(cache, "v{}".format(task)) as lock:
                await lock.cas(i)

        for t in range(tasks):
            await cache.set("v{}".format(t), 0)
        # One warm-up round: connections opened, scripts cached.
        await timed_pairs(redlock, tasks, 1)
        await timed_pairs(optimistic, tasks, 1)
        secs = await timed_pairs(redlock, tasks, per_task)
        out["redlock_" + name] = {"ops": tasks * per_task, "secs": secs}
        secs = await timed_pairs(optimistic, tasks, per_task)
        out["optimistic_" + name] = {"ops": tasks * per_task, "secs": secs}
        await cache.close()
    return out


async def stampede_share(backend, args, namespace, callers, start_at):
    """One process's callers of a stampede on one key; latencies from start_at."""
    cache = make_cache(backend, args, namespace, pool=callers)
    lease = lease_for(backend, args.lease_s)
    await cache.get("warm-up")  # connect before the clock starts
    fills = []
    starts = []
    errors = []

    async def fill():
        began = time.time()
        await asyncio.sleep(args.fill_ms / 1000.0)
        fills.append(time.time() - began)
        starts.append(began - start_at)
        return "quarterly report: 42"

    async def caller():
        try:
            await aiocache_fills.stampede_body(cache, "report", lease, fill)
        except KeyError as error:
            # aiocache's RedLock._release pops its class-wide event map
            # after an await: when a release lands and another caller
            # takes the lock before the pop, the pop takes the new
            # holder's event, and the new holder's own release then
            # raises KeyError. The value is stored by then; count it.
            errors.append(repr(error))
        return time.time()

    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    ends = await asyncio.gather(*(caller() for _ in range(callers)))
    await cache.close()
    return {
        "errors": len(errors),
        "fills": len(fills),
        "fill_ms": [f * 1000.0 for f in fills],
        "fill_start_ms": [s * 1000.0 for s in starts],
        "latencies_ms": [(end - start_at) * 1000.0 for end in ends],
    }


async def stampede_one(backend, args):
    namespace = fresh_namespace("stampede")
    return await stampede_share(backend, args, namespace, args.callers, time.time() + 0.2)


def stampede_procs(backend, args):
    namespace = fresh_namespace("stampede")
    share = args.callers // args.procs
    start_at = time.time() + 1.5  # time for every interpreter to start
    children = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", "stampede",
             "--backend", backend, "--namespace", namespace,
             "--callers", str(share), "--start-at", repr(start_at)]
            + passthrough(args),
            stdout=subprocess.PIPE,
        )
        for _ in range(args.procs)
    ]
    merged = {"errors": 0, "fills": 0, "fill_ms": [], "fill_start_ms": [], "latencies_ms": [], "late_start": False}
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError("stampede child failed")
        part = json.loads(out)
        merged["fills"] += part["fills"]
        merged["errors"] += part["errors"]
        merged["fill_ms"] += part["fill_ms"]
        merged["fill_start_ms"] += part["fill_start_ms"]
        merged["latencies_ms"] += part["latencies_ms"]
        merged["late_start"] |= part.get("late_start", False)
    return merged


async def cas_increments(backend, args):
    cache = make_cache(backend, args, fresh_namespace("cas"), pool=args.cas_tasks)
    await cache.set("counter", 0)
    retries = 0

    async def worker():
        nonlocal retries
        for _ in range(args.cas_each):
            while True:
                try:
                    async with OptimisticLock(cache, "counter") as lock:
                        current = await cache.get("counter")
                        await lock.cas(int(current) + 1)
                    break
                except OptimisticLockError:
                    retries += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.cas_tasks)))
    secs = time.perf_counter() - started
    final = int(await cache.get("counter"))
    await cache.close()
    expected = args.cas_tasks * args.cas_each
    return {
        "increments": expected,
        "secs": secs,
        "retries": retries,
        "lost": expected - final,
    }


def passthrough(args):
    return [
        "--redis", args.redis, "--memcached", args.memcached,
        "--fill-ms", str(args.fill_ms), "--lease-s", str(args.lease_s),
    ]


async def main_async(args):
    backends = [b for b in args.backends.split(",") if b]
    result = {
        "versions": {
            "python": sys.version.split()[0],
            "aiocache": aiocache.__version__,
        },
        "pairs": {},
        "stampede": {},
        "stampede_procs": {},
        "cas": {},
        "round_trips": {},
        "race": {},
    }
    phases = result["phase_secs"] = {}

    async def phase(name, section, backend, run):
        began = time.perf_counter()
        result[section][backend] = await run
        phases["{} {}".format(name, backend)] = time.perf_counter() - began

    for backend in backends:
        await phase("pairs", "pairs", backend, pairs(backend, args))
        await phase("stampede", "stampede", backend, stampede_one(backend, args))
        if backend != "memory" and args.procs > 1:
            await phase("stampede_procs", "stampede_procs", backend,
                        asyncio.to_thread(stampede_procs, backend, args))
        if args.cas_tasks > 0:
            await phase("cas", "cas", backend, cas_increments(backend, args))
    # After every timed workload above, so that they run as they always did.
    for backend in backends:
        lease = lease_for(backend, args.lease_s)
        await phase("round_trips", "round_trips", backend, aiocache_fills.round_trips(
            backend, args, make_cache, lease, fresh_namespace("trips")))
        if args.race_trials > 0:
            cache = make_cache(backend, args, fresh_namespace("race"), pool=args.race_in_flight)
            await phase("race", "race", backend, aiocache_fills.race(
                cache, lease, args.race_trials, args.race_in_flight))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--memcached", default="127.0.0.1:11211")
    parser.add_argument("--backends", default="memory,redis,memcached")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--fill-ms", type=float, default=50.0)
    parser.add_argument("--lease-s", type=float, default=5.0)
    parser.add_argument("--cas-tasks", type=int, default=64)
    parser.add_argument("--cas-each", type=int, default=50)
    parser.add_argument("--race-trials", type=int, default=10000)
    parser.add_argument("--race-in-flight", type=int, default=32)
    parser.add_argument("--child", choices=["stampede"])
    parser.add_argument("--backend")
    parser.add_argument("--namespace")
    parser.add_argument("--start-at", type=float)
    args = parser.parse_args()

    if args.child == "stampede":
        late = time.time() > args.start_at
        part = asyncio.run(
            stampede_share(args.backend, args, args.namespace, args.callers, args.start_at)
        )
        part["late_start"] = late
        print(json.dumps(part))
        return
    versions_extra = {}
    try:
        import redis as redis_py
        versions_extra["redis-py"] = redis_py.__version__
    except Exception:  # noqa: BLE001 - only for the report
        pass
    try:
        import aiomcache
        versions_extra["aiomcache"] = aiomcache.__version__
    except Exception:  # noqa: BLE001
        pass
    result = asyncio.run(main_async(args))
    result["versions"].update(versions_extra)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
