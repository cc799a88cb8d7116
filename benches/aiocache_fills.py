"""aiocache's fills, counted and raced; used by aiocache_compare.py.

- `stampede_body`: the body of aiocache's own `cached_stampede` decorator
  (get; on a miss `async with RedLock`: get again, fill, set).
- `round_trips`: what one cold fill and one hit through that body send, by
  command: Redis through MONITOR (commands run by scripts left out),
  memcached through a counting proxy on loopback, memory by counting calls
  of the cache's backend methods.
- `race`: a delete of the key while the fill runs, after the fill read its
  "database", many times; how often the old value ends up stored.
"""

import argparse
import asyncio
import time
import uuid

from aiocache.lock import RedLock

OLD, NEW = "old", "new"


async def stampede_body(cache, key, lease, fill):
    """aiocache's `cached_stampede` decorator body, with `fill()` for the function."""
    value = await cache.get(key)
    if value is not None:
        return value
    async with RedLock(cache, key, lease):
        value = await cache.get(key)
        if value is not None:
            return value
        value = await fill()
        await cache.set(key, value)
    return value


class RedisMonitor:
    """A MONITOR connection, and a connection of its own to mark where a
    measured stretch ends."""

    async def start(self, addr):
        host, port = addr.rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.writer.write(b"MONITOR\r\n")
        await self.writer.drain()
        await self.reader.readline()  # +OK
        self.admin_reader, self.admin_writer = await asyncio.open_connection(host, int(port))
        await self.commands()
        return self

    async def commands(self):
        """Command names every client sent since the last call, upper case."""
        marker = "end-of-count-" + uuid.uuid4().hex
        self.admin_writer.write("ECHO {}\r\n".format(marker).encode())
        await self.admin_writer.drain()
        await self.admin_reader.readline()  # $<len>
        await self.admin_reader.readline()  # the marker
        out = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 5)).decode()
            if marker in line:
                return out
            # `+<time> [<db> <client>] "CMD" "arg" …`; scripts show as `[0 lua]`.
            client, sep, rest = line.partition("] ")
            if not sep or client.endswith(" lua"):
                continue
            out.append(rest.split('"')[1].upper())

    async def close(self):
        for writer in (self.writer, self.admin_writer):
            writer.close()


def data_len(words):
    """The data block (and CRLF) after a memcached storage request, if any."""
    if not words:
        return None
    at = {b"ms": 2, b"set": 4, b"add": 4, b"replace": 4, b"append": 4,
          b"prepend": 4, b"cas": 4}.get(words[0])
    if at is None or len(words) <= at:
        return None
    return int(words[at]) + 2


class CountingProxy:
    """A TCP proxy in front of memcached that logs every request's first word."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.requests = []

    async def start(self):
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        self.addr = "{}:{}".format(host, port)
        return self

    async def commands(self):
        out, self.requests = self.requests, []
        return out

    async def _relay(self, client_reader, client_writer):
        host, port = self.upstream.rsplit(":", 1)
        server_reader, server_writer = await asyncio.open_connection(host, int(port))

        async def answers():
            while True:
                chunk = await server_reader.read(65536)
                if not chunk:
                    return
                client_writer.write(chunk)
                await client_writer.drain()

        copying = asyncio.create_task(answers())
        try:
            while True:
                line = await client_reader.readline()
                if not line:
                    return
                words = line.split()
                length = data_len(words)
                data = await client_reader.readexactly(length) if length else b""
                if words:
                    self.requests.append(words[0].decode())
                server_writer.write(line + data)
                await server_writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            copying.cancel()
            server_writer.close()
            client_writer.close()

    async def close(self):
        self.server.close()


class CallCounter:
    """Counts calls of a cache's backend methods (the outermost only: the
    memory backend's `_add` calls `_set`)."""

    METHODS = ("_get", "_gets", "_multi_get", "_set", "_multi_set", "_add", "_exists",
               "_increment", "_expire", "_delete", "_clear", "_raw", "_redlock_release")

    def __init__(self, cache):
        self.calls = []
        self.depth = 0
        for name in self.METHODS:
            if hasattr(cache, name):
                setattr(cache, name, self._wrap(name, getattr(cache, name)))

    def _wrap(self, name, method):
        async def counted(*args, **kwargs):
            if self.depth == 0:
                self.calls.append(name.lstrip("_"))
            self.depth += 1
            try:
                return await method(*args, **kwargs)
            finally:
                self.depth -= 1
        return counted

    async def commands(self):
        out, self.calls = self.calls, []
        return out

    async def close(self):
        pass


async def round_trips(backend, args, make_cache, lease, namespace):
    """One cold fill and one hit through `stampede_body`, after a warm-up."""
    if backend == "redis":
        counter = await RedisMonitor().start(args.redis)
        cache = make_cache(backend, args, namespace)
        counted_by = "MONITOR"
    elif backend == "memcached":
        counter = await CountingProxy(args.memcached).start()
        through = argparse.Namespace(**{**vars(args), "memcached": counter.addr})
        cache = make_cache(backend, through, namespace, pool=1)
        counted_by = "counting proxy"
    else:
        cache = make_cache(backend, args, namespace)
        counter = CallCounter(cache)
        counted_by = "backend calls"

    async def fill():
        return "quarterly report: 42"

    async def no_fill():
        raise AssertionError("a hit does not fill")

    # Connected (and redis-py's CLIENT SETINFO sent) before counting.
    await stampede_body(cache, "warm", lease, fill)
    await stampede_body(cache, "warm", lease, no_fill)
    await counter.commands()
    await stampede_body(cache, "report", lease, fill)
    cold = await counter.commands()
    await stampede_body(cache, "report", lease, no_fill)
    hit = await counter.commands()
    await cache.close()
    await counter.close()
    return {"counted_by": counted_by, "cold": cold, "hit": hit}


async def race(cache, lease, trials, in_flight):
    """`trials` delete-during-fill races on fresh keys, `in_flight` at once."""
    found = {"stale": 0, "empty": 0, "fresh": 0}
    prefix = "race-" + uuid.uuid4().hex[:8]

    async def trial(i):
        key = "{}-{}".format(prefix, i)
        database = {"version": OLD}
        read, go = asyncio.Event(), asyncio.Event()

        async def fill():
            version = database["version"]
            read.set()  # the fill has read the database
            await go.wait()  # the writer has updated it and deleted the key
            return version

        async def writer():
            await read.wait()
            database["version"] = NEW
            await cache.delete(key)
            go.set()

        returned, _ = await asyncio.gather(stampede_body(cache, key, lease, fill), writer())
        assert returned == OLD, returned
        stored = await cache.get(key)
        found["empty" if stored is None else "stale" if stored == OLD else "fresh"] += 1

    numbers = iter(range(trials))

    async def worker():
        for i in numbers:
            await trial(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    found["secs"] = time.perf_counter() - started
    found["trials"] = trials
    await cache.close()
    return found
