#!/usr/bin/env python3
"""YADTQ fault injection: the scenarios of scripts/chaos.

Runs each scenario against the stack scripts/chaos started (YADTQ_BROKERS, YADTQ_REDIS,
YADTQ_STACK_DIR) with the built binaries in YADTQ_BIN_DIR, each with a private namespace,
topic and consumer group, and prints one line per scenario:

    <scenario> tasks=N faults=F terminal=T wrong=W rewritten=R max_stall=S PASS|FAIL [why]

- terminal:  tasks that ended SUCCESS or FAILED (of those the scenario published)
- wrong:     tasks whose final status or result is not the expected one, or whose
             attempts exceed max_attempts
- rewritten: tasks whose terminal status (status, result, error, finished_at, worker)
             changed after a sampler first saw it terminal
- max_stall: the longest time, during the run, in which no task became terminal

Exits 1 if any scenario fails. Usage: chaos.py [--small] [--only a,b] [--artifacts DIR]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import confluent_kafka
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("YADTQ_BIN_DIR", os.path.join(ROOT, ".build", "release"))
BROKERS = os.environ["YADTQ_BROKERS"]
REDIS_URL = os.environ["YADTQ_REDIS"]
STACK_DIR = os.environ["YADTQ_STACK_DIR"]

# Test-only plugins, added to a private copy of the shipped ones.
EXTRA_PLUGINS = {
    # a + b after sleeping `seconds` (no CPU): slows a run down without loading the machine.
    # The result names the attempt that computed it, so a stale attempt's result would show.
    "nap_add": """
return function(args, task)
  if (args[3] or 0) > 0 then task.sleep(args[3]) end
  return { sum = args[1] + args[2], attempt = task.attempt }
end
""",
}

# Only the processes this script starts are ever signalled.
STARTED = []


def log(message):
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def now():
    return time.monotonic()


def stack_pid(service):
    with open(os.path.join(STACK_DIR, f"{service}.pid")) as f:
        return int(f.read().strip())


def stack_up():
    """Starts whichever of Redis and the broker is not running, on the same ports and data."""
    bport = open(os.path.join(STACK_DIR, "tansu.port")).read().strip() if os.path.exists(
        os.path.join(STACK_DIR, "tansu.port")) else BROKERS.rsplit(":", 1)[1]
    rport = REDIS_URL.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(["bash", "-c", 'set -euo pipefail; source "$0/scripts/lib.sh"; stack_up "$1" "$2" "$3"',
                    ROOT, STACK_DIR, bport, rport], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until(predicate, timeout, interval=0.1):
    deadline = now() + timeout
    while now() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def crc16(data):
    """CRC16-XMODEM, the Redis Cluster key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key):
    return crc16(key.encode()) % 16384


class Layout:
    """Where a namespace's task keys are: YADTQ's RedisKeys, seen from outside. One shard with
    plain names on a single Redis; on a cluster 16 shards, shard n tagged {t} with the smallest
    number t whose slot falls in the n-th sixteenth of the slot space."""

    CLUSTER_SHARDS = 16

    def __init__(self, prefix, cluster):
        self.prefix = prefix
        self.shards = self.CLUSTER_SHARDS if cluster else 1
        tags, candidate = {}, 0
        while cluster and len(tags) < self.shards:
            tags.setdefault(slot(str(candidate)) * self.shards // 16384, candidate)
            candidate += 1
        self.bases = [prefix + (f"{{{tags[n]}}}:" if cluster else "") for n in range(self.shards)]

    def records(self, tid):
        """The hash holding task tid's record (as the field tid)."""
        return self.shard_key(tid, "records")

    def running(self, tid):
        """The hash holding task tid's attempt in flight, if any (as the field tid)."""
        return self.shard_key(tid, "running")

    def shard_key(self, tid, name):
        shard = crc16(tid.encode()) % self.shards if self.shards > 1 else 0
        return self.bases[shard] + name

    def every(self, name):
        """A per-shard key (counts, tasks, ...) in every shard."""
        return [base + name for base in self.bases]


RECORD_HEADER = ">BBIi4dI2d"  # both versions: version, status, then RECORD_NUMBERS[:9]
RECORD_TAIL_TIMES = ">4d"  # requeued_at, due_at, released_at, republished_at
RECORD_NUMBERS = ("attempts", "partition", "started_at", "finished_at", "outcome_at", "expires_at", "max_attempts",
                  "cancel_requested", "queued_at", "requeued_at", "due_at", "released_at", "republished_at")
# Version 3 keeps the tail (four times, then RECORD_TAIL_STRINGS) only when one of them is set;
# version 2 had the four times after the header and every string in RECORD_STRINGS_2's order.
RECORD_STRINGS = ("worker", "result", "type", "args", "topic")
RECORD_TAIL_STRINGS = ("error", "errors", "logs", "progress")
RECORD_STRINGS_2 = ("worker", "result", "error", "errors", "logs", "progress", "type", "args", "topic")
RECORD_STATUSES = ("QUEUED", "PROCESSING", "SUCCESS", "FAILED", "CANCELLED", "SCHEDULED")


def decode_record(packed, entry=None):
    """A packed task record (YADTQ's TaskRecordCoding, seen from outside; version 3, or 2 as
    earlier builds wrote it) as a dict of strings, absent values left out: the fields a task
    hash used to have. `entry`: the task's attempt in flight from `running` (attempt,
    partition, started_at, then the worker), whose values stand for the record's."""
    version, code, *numbers = struct.unpack_from(RECORD_HEADER, packed)
    if version not in (2, 3):
        raise ValueError(f"task record version {version}")
    offset = struct.calcsize(RECORD_HEADER)
    strings = {}

    def read_strings(names):
        nonlocal offset
        for name in names:
            (length,) = struct.unpack_from(">I", packed, offset)
            strings[name] = packed[offset + 4:offset + 4 + length].decode("utf-8", "replace")
            offset += 4 + length

    def read_times():
        nonlocal offset
        numbers.extend(struct.unpack_from(RECORD_TAIL_TIMES, packed, offset))
        offset += struct.calcsize(RECORD_TAIL_TIMES)

    if version == 2:
        read_times()
        read_strings(RECORD_STRINGS_2)
    else:
        read_strings(RECORD_STRINGS)
        if offset < len(packed):
            read_times()
            read_strings(RECORD_TAIL_STRINGS)
    record = {"status": RECORD_STATUSES[code]}
    for name, value in zip(RECORD_NUMBERS, numbers):
        if name in ("attempts", "max_attempts") or value > 0 or (name == "partition" and value == 0):
            record[name] = str(int(value))
    record.update((name, text) for name, text in strings.items() if text)
    if entry:
        attempt, partition, started_at = struct.unpack_from(">Iid", entry)
        record.update(status="PROCESSING", attempts=str(attempt), started_at=str(int(started_at)),
                      worker=entry[16:].decode("utf-8", "replace"))
        record.pop("partition", None)
        if partition >= 0:
            record["partition"] = str(partition)
    return record


def is_cluster(url):
    return "," in url.split("//", 1)[1].split("/", 1)[0] or "cluster=yes" in url


class Redis:
    """A redis-py client that rides out a Redis restart or a cluster failover (the sampler
    must not die with it)."""

    def __init__(self, url=None):
        url = url or REDIS_URL
        if is_cluster(url):
            hosts = url.split("//", 1)[1].split("/", 1)[0].split("@")[-1].split(",")
            nodes = [redis.cluster.ClusterNode(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts]
            self.client = redis.cluster.RedisCluster(startup_nodes=nodes, decode_responses=True, socket_timeout=10)
            # Task records are packed binary: read without decoding.
            self.raw = redis.cluster.RedisCluster(startup_nodes=nodes, decode_responses=False, socket_timeout=10)
        else:
            self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
            self.raw = redis.Redis.from_url(url, decode_responses=False, socket_timeout=10)

    def call(self, fn, retry_for=120):
        deadline = now() + retry_for
        while True:
            try:
                return fn(self.client)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.BusyLoadingError, redis.exceptions.ClusterDownError,
                    redis.exceptions.ClusterError):
                if now() > deadline:
                    raise
                time.sleep(0.2)


class Context:
    """One scenario's private namespace, topic, group, plugins, processes and logs."""

    def __init__(self, name, artifacts, redis_url=None):
        self.name = name
        self.redis_url = redis_url or REDIS_URL
        suffix = uuid.uuid4().hex[:8]
        self.ns = f"chaos-{name}-{suffix}"
        self.prefix = self.ns + ":"
        self.topic = f"chaos-{name}-{suffix}"
        self.group = f"chaos-{name}-{suffix}"
        self.plugins = tempfile.mkdtemp(prefix="yadtq-chaos-plugins-")
        shutil.rmtree(self.plugins)
        shutil.copytree(os.path.join(ROOT, "plugins"), self.plugins)
        for type_, source in EXTRA_PLUGINS.items():
            with open(os.path.join(self.plugins, type_ + ".lua"), "w") as f:
                f.write(source)
        self.logs = os.path.join(artifacts, name)
        shutil.rmtree(self.logs, ignore_errors=True)
        os.makedirs(self.logs, exist_ok=True)
        self.env = dict(os.environ, YADTQ_NAMESPACE=self.ns, YADTQ_GROUP=self.group, YADTQ_TOPIC=self.topic,
                        YADTQ_PLUGINS=self.plugins, YADTQ_BROKERS=BROKERS, YADTQ_REDIS=self.redis_url)
        self.redis = Redis(self.redis_url)
        self.keys = Layout(self.prefix, is_cluster(self.redis_url))
        self.procs = []
        self.faults = 0
        self.problems = []

    def fail(self, why):
        self.problems.append(why)

    def counts(self, *statuses, retry_for=120):
        """The status counters, summed over the shards."""
        def read(c):
            return [c.hmget(key, *statuses) for key in self.keys.every("counts")]
        return [sum(int(row[i] or 0) for row in self.redis.call(read, retry_for=retry_for))
                for i in range(len(statuses))]

    def all_ids(self, retry_for=120):
        """Every kept task id: the listing buckets of every shard."""
        def read(c):
            return [i for base in self.keys.bases for second in c.zrange(base + "buckets", 0, -1)
                    for i in c.lrange(base + "bucket:" + second, 0, -1)]
        return self.redis.call(read, retry_for=retry_for)

    def records(self, ids, retry_for=120):
        """Each task's record as a dict (empty for an unknown id), one pipelined HMGET per
        shard and 2,000 ids; retry_for=0 raises while Redis is down."""
        by_key = {}
        for tid in ids:
            by_key.setdefault((self.keys.records(tid), self.keys.running(tid)), []).append(tid)

        def read(_):
            pipe = self.redis.raw.pipeline(transaction=False)
            chunks = [(keys, group[i:i + 2000]) for keys, group in by_key.items() for i in range(0, len(group), 2000)]
            for (records, running), chunk in chunks:
                pipe.hmget(records, [tid.encode() for tid in chunk])
                pipe.hmget(running, [tid.encode() for tid in chunk])
            replies = pipe.execute()
            found = {}
            for n, (_, chunk) in enumerate(chunks):
                values, entries = replies[2 * n], replies[2 * n + 1]
                found.update({tid: decode_record(v, e) if v else {} for tid, v, e in zip(chunk, values, entries)})
            return found
        found = self.redis.call(read, retry_for=retry_for)
        return [found[tid] for tid in ids]

    def start_worker(self, name, args=(), env=None, machine=None):
        """`machine`: a SeparateMachine to run it on (the worker is started inside its network
        namespace), else this one."""
        logfile = open(os.path.join(self.logs, f"worker-{name}.log"), "ab")
        wrap = machine.wrap if machine else []
        process = subprocess.Popen([*wrap, os.path.join(BIN, "yadtq-worker"), name, self.topic, *args],
                                   env=dict(self.env, **(env or {})), stdout=logfile, stderr=logfile,
                                   stdin=subprocess.DEVNULL)
        logfile.close()
        process.label = name
        STARTED.append(process)
        self.procs.append(process)
        return process

    def run_producer(self, data=None, args=(), label="run", stdin_pipe=False):
        """Starts yadtq-run; `data` (bytes) is its standard input, or a pipe when stdin_pipe."""
        out = open(os.path.join(self.logs, f"{label}.out"), "wb")
        err = open(os.path.join(self.logs, f"{label}.err"), "wb")
        if stdin_pipe:
            stdin = subprocess.PIPE
        else:
            path = os.path.join(self.logs, f"{label}.in")
            with open(path, "wb") as f:
                f.write(data or b"")
            stdin = open(path, "rb")
        process = subprocess.Popen([os.path.join(BIN, "yadtq-run"), "--topic", self.topic, *args],
                                   env=self.env, stdin=stdin, stdout=out, stderr=err)
        process.label = label
        process.out_path, process.err_path = out.name, err.name
        out.close()
        err.close()
        STARTED.append(process)
        return process

    def create_topic(self, partitions):
        p = self.run_producer(b"", ["--partitions", str(partitions)], label="create")
        if p.wait(60) != 0:
            raise RuntimeError(f"yadtq-run could not create the topic: {open(p.err_path).read()}")

    def stop_workers(self, timeout=60):
        """SIGTERM every worker still running; each must leave cleanly (exit 0)."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.fail(f"worker {p.label} did not stop within {timeout}s of SIGTERM")
                p.kill()
                p.wait()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.plugins, ignore_errors=True)

    def worker_log(self, name):
        with open(os.path.join(self.logs, f"worker-{name}.log"), errors="replace") as f:
            return f.read()



class TcpProxy:
    """scripts/tcp_proxy.py in front of `target` (host, port), listening on `listen` (host,
    port; a free loopback port by default), run with the command prefix `wrap` (a network
    namespace's): `cut()` kills it, so the client behind it loses that service while everything
    else still reaches it; `restore()` starts it again on the same port."""

    def __init__(self, target, listen=None, wrap=()):
        self.target, self.wrap = target, list(wrap)
        if listen is None:
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            listen = probe.getsockname()
            probe.close()
        self.listen_host, self.port = listen
        self.process = None
        self.restore()

    def restore(self):
        self.process = subprocess.Popen(
            [*self.wrap, sys.executable, os.path.join(ROOT, "scripts", "tcp_proxy.py"), f"{self.listen_host}:{self.port}",
             *map(str, self.target)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        STARTED.append(self.process)
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the proxy {self.listen_host}:{self.port} -> {self.target} did not start")

    def cut(self):
        self.process.kill()
        self.process.wait()


class SeparateMachine:
    """A network namespace standing for a machine of its own, linked to this one by a veth pair.
    A process started in it (`wrap`) reaches the broker and Redis at the addresses every other
    process uses (127.0.0.1:<port>: its own loopback, where a proxy forwards over the link to a
    proxy on this side, which forwards to the service), so the broker's advertised address
    works there unchanged. `split_broker()` stops this side's broker proxy (SIGSTOP): every
    connection to the broker stays open and goes silent, as when a network drops a machine's
    packets to one service, while Redis still answers; `cut()` takes the link down; `heal()`
    lets everything flow again. Needs root (ip netns)."""

    def __init__(self, label):
        if os.geteuid() != 0 or not shutil.which("ip"):
            raise Unavailable("needs root and iproute2 (ip netns) to give a worker a network of its own")
        self.name = f"yq-{label}-{uuid.uuid4().hex[:6]}"
        self.host_if, self.peer_if = "yqh" + self.name[-6:], "yqn" + self.name[-6:]
        used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
        net = next(n for n in range(1, 255) if f" 10.201.{n}." not in used)
        self.host_ip, self.peer_ip = f"10.201.{net}.1", f"10.201.{net}.2"
        self.wrap = ["ip", "netns", "exec", self.name]
        self.proxies = {}
        try:
            for command in (["ip", "netns", "add", self.name],
                            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if],
                            ["ip", "link", "set", self.peer_if, "netns", self.name],
                            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
                            ["ip", "link", "set", self.host_if, "up"],
                            [*self.wrap, "ip", "addr", "add", f"{self.peer_ip}/30", "dev", self.peer_if],
                            [*self.wrap, "ip", "link", "set", self.peer_if, "up"],
                            [*self.wrap, "ip", "link", "set", "lo", "up"]):
                subprocess.run(command, check=True, capture_output=True)
            broker_port = int(BROKERS.rsplit(":", 1)[1])
            redis_port = int(REDIS_URL.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            for service, port in (("broker", broker_port), ("redis", redis_port)):
                # This side first: the link's far end connects to it.
                self.proxies[service] = [TcpProxy(("127.0.0.1", port), listen=(self.host_ip, port))]
                self.proxies[service].append(TcpProxy((self.host_ip, port), listen=("127.0.0.1", port), wrap=self.wrap))
        except BaseException:
            self.remove()  # what was made of it, so a failed set-up leaves nothing behind
            raise

    def split_broker(self):
        os.kill(self.proxies["broker"][0].process.pid, signal.SIGSTOP)

    def cut(self):
        """The machine's link goes down: the broker and Redis both go silent for it (packets
        dropped, no connection closed), as when a machine's network fails."""
        subprocess.run(["ip", "link", "set", self.host_if, "down"], check=True, capture_output=True)

    def heal(self):
        os.kill(self.proxies["broker"][0].process.pid, signal.SIGCONT)
        subprocess.run(["ip", "link", "set", self.host_if, "up"], check=True, capture_output=True)

    def remove(self):
        for pair in self.proxies.values():
            for proxy in pair:
                if proxy.process.poll() is None:
                    os.kill(proxy.process.pid, signal.SIGCONT)
                    proxy.cut()
        # Unchecked: after a failed set-up either may not exist.
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Unavailable(Exception):
    """A scenario this machine cannot run (reported as SKIP, with the reason)."""


def mixed_tasks(ctx, count, nap=0.0):
    """Tasks of several types with the result each must end with."""
    lines, expected = [], {}
    for i in range(count):
        tid = f"{ctx.name}-{i}"
        kind = i % 3
        if nap > 0:
            lines.append(json.dumps({"id": tid, "type": "nap_add", "args": [i, 1, nap]}))
            expected[tid] = Stamped(i + 1)
        elif kind == 0:
            lines.append(json.dumps({"id": tid, "type": "add", "args": [i, 7]}))
            expected[tid] = i + 7
        elif kind == 1:
            lines.append(json.dumps({"id": tid, "type": "mul", "args": [i, 3]}))
            expected[tid] = i * 3
        else:
            lines.append(json.dumps({"id": tid, "type": "concat", "args": ["n", str(i)]}))
            expected[tid] = f"n{i}"
    return lines, expected


class Sampler(threading.Thread):
    """Watches a scenario's tasks in Redis: remembers each task's terminal record the
    first time it is seen terminal (to catch rewrites), and the longest stall."""

    FIELDS = ("status", "result", "error", "finished_at", "worker")
    PER_ROUND = 6000

    def __init__(self, ctx, total, interval=0.25):
        super().__init__(daemon=True)
        self.ctx, self.total, self.interval = ctx, total, interval
        self.first_seen = {}
        self.max_stall = 0.0
        self.done = threading.Event()
        self.stopping = threading.Event()
        self.started_at = None
        self.terminal = 0

    def run(self):
        r = self.ctx.redis
        last_progress = now()
        self.started_at = last_progress
        rotation = 0
        while not self.stopping.is_set():
            try:
                # Progress is read from the status counters; the first terminal record of each
                # task (to catch rewrites later) from the tasks not yet seen terminal, a bounded
                # number per round, in rotation so no partition's tasks wait behind another's.
                terminal = sum(self.ctx.counts("SUCCESS", "FAILED", retry_for=0))
                ids = self.ctx.all_ids(retry_for=0)
                pending = [i for i in ids if i not in self.first_seen]
                rotation = rotation % max(1, len(pending))
                new = (pending[rotation:] + pending[:rotation])[:self.PER_ROUND]
                rotation += self.PER_ROUND
                for tid, record in zip(new, self.ctx.records(new, retry_for=0)):
                    if record.get("status") in ("SUCCESS", "FAILED"):
                        self.first_seen[tid] = tuple(record.get(f) for f in self.FIELDS)
                if terminal > self.terminal:
                    self.terminal = terminal
                    last_progress = now()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.BusyLoadingError, redis.exceptions.ClusterDownError,
                    redis.exceptions.ClusterError):
                pass  # Redis is down (a scenario killed it): that counts as a stall
            t = now()
            self.max_stall = max(self.max_stall, t - last_progress)
            if self.terminal >= self.total:
                self.done.set()
            time.sleep(self.interval)

    def wait(self, timeout):
        return self.done.wait(timeout)

    def stop(self):
        self.stopping.set()
        self.join(10)


class CommitChecker(threading.Thread):
    """Reads the group's committed offsets every half second and checks the commit
    rule: every task below a committed offset is terminal in Redis. Also counts
    committed offsets that move backwards (a commit by a worker that lost the partition)."""

    def __init__(self, ctx, partitions, offsets_to_ids):
        super().__init__(daemon=True)
        self.ctx, self.partitions, self.offsets_to_ids = ctx, partitions, offsets_to_ids
        self.violations = []
        self.regressions = []
        self.stopping = threading.Event()
        self.verified = {p: 0 for p in range(partitions)}
        self.highest = {p: -1 for p in range(partitions)}

    def run(self):
        consumer = confluent_kafka.Consumer({"bootstrap.servers": BROKERS, "group.id": self.ctx.group,
                                             "enable.auto.commit": False})
        tps = [confluent_kafka.TopicPartition(self.ctx.topic, p) for p in range(self.partitions)]
        try:
            while not self.stopping.is_set():
                try:
                    committed = consumer.committed(tps, timeout=5)
                except confluent_kafka.KafkaException:
                    time.sleep(0.5)
                    continue
                for tp in committed:
                    p, offset = tp.partition, tp.offset
                    if offset < 0:
                        continue
                    if offset < self.highest[p]:
                        self.regressions.append((p, self.highest[p], offset))
                    self.highest[p] = max(self.highest[p], offset)
                    ids = [tid for off, tid in self.offsets_to_ids.get(p, [])
                           if self.verified[p] <= off < offset]
                    if not ids:
                        continue
                    try:
                        statuses = [record.get("status") for record in self.ctx.records(ids, retry_for=0)]
                    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                            redis.exceptions.ClusterDownError, redis.exceptions.ClusterError):
                        continue
                    bad = [tid for tid, s in zip(ids, statuses) if s not in ("SUCCESS", "FAILED")]
                    if bad:
                        self.violations.append((p, offset, bad[:3], len(bad)))
                    self.verified[p] = max(self.verified[p], offset)
                time.sleep(0.5)
        finally:
            consumer.close()

    def stop(self):
        self.stopping.set()
        self.join(15)


def topic_offsets(topic, partitions, expect, timeout=60):
    """partition -> [(offset, task id)] for every task message on the topic, read with the
    Python client (not with YADTQ's own code)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": BROKERS, "group.id": "reader-" + uuid.uuid4().hex,
                                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                     for p in range(partitions)])
    result, seen, deadline = {}, 0, now() + timeout
    while seen < expect and now() < deadline:
        for m in consumer.consume(1000, 0.5):
            if m.error():
                continue
            try:
                tid = json.loads(m.value()).get("id")
            except (ValueError, AttributeError):
                tid = None
            if tid:
                result.setdefault(m.partition(), []).append((m.offset(), tid))
                seen += 1
    consumer.close()
    return result


def verify(ctx, expected, sampler, failed_ok=None):
    """Final checks: every task terminal with its expected outcome, attempts within
    max_attempts, nothing QUEUED/PROCESSING, no terminal record rewritten.
    expected: id -> result (or FAILED for a task that must fail). Returns the counts."""
    ids = list(expected)
    records = dict(zip(ids, ctx.records(ids)))
    terminal = wrong = over_attempts = 0
    examples = []
    for tid, want in expected.items():
        rec = records[tid]
        status = rec.get("status")
        if status in ("SUCCESS", "FAILED"):
            terminal += 1
        ok = True
        if want is FAILED:
            ok = status == "FAILED" and bool(rec.get("error"))
        elif isinstance(want, Stamped):
            # right sum, computed by the task's last attempt (a stale attempt's result would differ)
            try:
                result = json.loads(rec.get("result", "null")) or {}
                ok = status == "SUCCESS" and result.get("sum") == want.sum and \
                    result.get("attempt") == int(rec.get("attempts", 0))
            except (ValueError, AttributeError):
                ok = False
        else:
            try:
                ok = status == "SUCCESS" and json.loads(rec.get("result", "null")) == want
            except ValueError:
                ok = False
        attempts, max_attempts = int(rec.get("attempts", 0)), int(rec.get("max_attempts", 3))
        if attempts > max_attempts:
            over_attempts += 1
            ok = False
        if not ok:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"{tid}: {status} attempts={attempts}/{max_attempts} "
                                f"result={rec.get('result')} error={(rec.get('error') or '')[:120]}")
    rewritten = 0
    for tid, first in sampler.first_seen.items():
        rec = records.get(tid)
        if rec is not None and tuple(rec.get(f) for f in Sampler.FIELDS) != first:
            rewritten += 1
            if len(examples) < 6:
                examples.append(f"{tid} rewritten: first {first} now {tuple(rec.get(f) for f in Sampler.FIELDS)}")
    leftover = tuple(ctx.counts("QUEUED", "PROCESSING"))
    if terminal < len(expected):
        ctx.fail(f"{len(expected) - terminal} tasks not terminal")
    if wrong:
        ctx.fail(f"{wrong} wrong ({over_attempts} over max_attempts): " + "; ".join(examples[:3]))
    if rewritten:
        ctx.fail(f"{rewritten} terminal statuses rewritten: " + "; ".join(examples[-3:]))
    if leftover != (0, 0):
        ctx.fail(f"left QUEUED/PROCESSING in the counters: {leftover}")
    return terminal, wrong, rewritten


class Stamped:
    def __init__(self, value):
        self.sum = value


class _Failed:
    def __repr__(self):
        return "FAILED"


FAILED = _Failed()


def feed(process, lines, seconds):
    """Writes lines to a producer's stdin spread over `seconds`, then closes it."""
    chunks = max(1, int(seconds * 10))
    per = max(1, len(lines) // chunks + 1)
    try:
        for start in range(0, len(lines), per):
            process.stdin.write(("\n".join(lines[start:start + per]) + "\n").encode())
            process.stdin.flush()
            time.sleep(seconds / chunks)
        process.stdin.close()
    except BrokenPipeError:
        pass


def report(ctx, tasks, terminal, wrong, rewritten, stall, extra=""):
    ok = not ctx.problems
    line = (f"{ctx.name:<14} tasks={tasks:<6} faults={ctx.faults:<4} terminal={terminal:<6} wrong={wrong:<3} "
            f"rewritten={rewritten:<3} max_stall={stall:5.1f}s {'PASS' if ok else 'FAIL'}")
    if extra:
        line += f"  ({extra})"
    if not ok:
        line += "  -- " + " | ".join(ctx.problems)
    print(line, flush=True)
    return ok


# ----------------------------------------------------------------------- scenarios

def scenario_worker_kills(ctx, size):
    """Three workers; one is killed with -9 every few seconds and restarted until done.

    Each kill lands 2-4 s after the restarted victim has taken partitions, so it always
    dies with tasks in flight. Killing it sooner (before its group join completes, which
    takes longer than the session timeout while the last victim is still a member)
    would only leave its partitions with a member that never consumes: a limit of every
    Kafka consumer group, not a test of what a crash loses."""
    count = size["kills"]
    partitions = 6
    # Tasks of a few milliseconds each, so the run lasts long enough for a kill storm.
    lines, expected = mixed_tasks(ctx, count, nap=size["kill_nap"])
    ctx.create_topic(partitions)
    args = ["--batch-size", "200"]
    stable = [ctx.start_worker(n, args) for n in ("w1", "w2")]
    victim = ctx.start_worker("victim", args)
    sampler = Sampler(ctx, count)
    sampler.start()
    producer = ctx.run_producer(("\n".join(lines) + "\n").encode(), label="run")
    checker = None
    deadline = now() + size["timeout"]
    generation = 0
    kills = []
    assignments = 0
    while not sampler.wait(0) and now() < deadline:
        while ctx.worker_log("victim").count("assigned partitions") <= assignments and not sampler.wait(0.1):
            if now() > deadline:
                break
        assignments = ctx.worker_log("victim").count("assigned partitions")
        time.sleep(random.uniform(2.0, 4.0))
        if sampler.done.is_set():
            break
        victim.kill()
        victim.wait()
        ctx.faults += 1
        kills.append(now())
        if checker is None and producer.poll() is not None:
            offsets = topic_offsets(ctx.topic, partitions, count)
            checker = CommitChecker(ctx, partitions, offsets)
            checker.start()
        time.sleep(random.uniform(0.2, 1.0))
        generation += 1
        victim = ctx.start_worker("victim", args)
    done = sampler.wait(max(0, deadline - now()))
    if not done:
        ctx.fail(f"not every task terminal within {size['timeout']}s")
    if producer.wait(60) != 0:
        ctx.fail(f"yadtq-run exited {producer.returncode}")
    for w in stable:
        if w.poll() is not None:
            ctx.fail(f"worker {w.label} exited {w.returncode} during the run")
    sampler.stop()
    if checker:
        time.sleep(1)
        checker.stop()
        if checker.violations:
            ctx.fail(f"offsets committed past unfinished tasks: {checker.violations[:2]}")
    ctx.stop_workers()
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  "kill -9 of a worker 2-4 s after each restart took partitions")


def scenario_frozen_worker(ctx, size):
    """kill -STOP a worker mid-batch for longer than the session timeout, then -CONT."""
    count = size["frozen"]
    partitions = 4
    lines, expected = mixed_tasks(ctx, count, nap=0.01)
    ctx.create_topic(partitions)
    args = ["--batch-size", "50"]
    frozen = ctx.start_worker("frozen", args)
    other = ctx.start_worker("other", args)
    sampler = Sampler(ctx, count)
    sampler.start()
    # Freeze while it is running tasks (busy in its heartbeat) and holds partitions.
    checker = publish_checked(ctx, lines, partitions, sampler)
    freeze = size["freeze"]
    os.kill(frozen.pid, signal.SIGSTOP)
    stopped_ms = int(time.time() * 1000)
    ctx.faults += 1
    frozen_at = sampler.terminal
    time.sleep(freeze)
    moved_on = sampler.terminal - frozen_at
    os.kill(frozen.pid, signal.SIGCONT)
    woken_ms = int(time.time() * 1000)
    if moved_on == 0:
        ctx.fail("no task finished while the worker was frozen: its partitions did not move on")
    if not sampler.wait(size["timeout"]):
        ctx.fail("not every task terminal")
    terminal, wrong, rewritten, held, taken, _ = end_takeover(ctx, sampler, checker, expected, frozen, other,
                                                              stopped_ms, woken_ms)
    takeover = f"{(min(taken) - stopped_ms) / 1000:.1f}s after the freeze" if taken else "not during the freeze"
    if not taken:
        ctx.fail(f"the frozen worker's partitions {sorted(held)} did not move on while it was frozen")
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  f"SIGSTOP {freeze:.0f}s > session.timeout 6s; its partitions {sorted(held)} taken over {takeover}; "
                  f"{len(taken)} of their tasks finished by the other worker meanwhile")


def publish_checked(ctx, lines, partitions, sampler):
    """Publishes `lines` with yadtq-run, starts a CommitChecker over their offsets, and returns
    it once a fifth of them are terminal: the moment for a fault."""
    producer = ctx.run_producer(("\n".join(lines) + "\n").encode(), label="run")
    if producer.wait(120) != 0:
        ctx.fail(f"yadtq-run exited {producer.returncode}")
    checker = CommitChecker(ctx, partitions, topic_offsets(ctx.topic, partitions, len(lines)))
    checker.start()
    wait_until(lambda: sampler.terminal >= len(lines) // 5, 120)
    return checker


def end_takeover(ctx, sampler, checker, expected, gone, taker, gone_ms, back_ms):
    """The end of a run in which worker `gone` was out of its group from gone_ms to back_ms
    (epoch ms) while `taker` went on: lets `gone` commit whatever it would commit, stops the
    sampler, the commit checker and both workers (neither may have exited), checks the commit
    rule and every task. Returns terminal, wrong, rewritten (see verify), the partitions `gone`
    had finished tasks of before it went, the finish times of their tasks `taker` finished while
    it was gone, and every task's record."""
    time.sleep(2)
    sampler.stop()
    checker.stop()
    for w in (gone, taker):
        if w.poll() is not None:
            ctx.fail(f"worker {w.label} exited {w.returncode}")
    ctx.stop_workers()
    if checker.violations:
        ctx.fail(f"offsets committed past unfinished tasks: {checker.violations[:2]}")
    if checker.regressions:
        ctx.fail(f"committed offsets moved backwards (a commit by a worker that lost the partition): "
                 f"{checker.regressions[:3]}")
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    records = ctx.records(list(expected))
    fields = [(r.get("worker"), r.get("partition"), r.get("finished_at")) for r in records]
    held = {p for w, p, f in fields if w == gone.label and f and int(f) < gone_ms}
    taken = [int(f) for w, p, f in fields if w == taker.label and p in held and f and gone_ms <= int(f) <= back_ms]
    return terminal, wrong, rewritten, held, taken, records


MACHINE_RUN_PARTITIONS = 4


def machine_run(ctx, count):
    """What the scenarios with a worker on a machine of its own start with: `count` tasks (and
    their expected results), the topic (MACHINE_RUN_PARTITIONS partitions), and the
    SeparateMachine, or None (SKIP printed, with why) where this machine cannot make one."""
    lines, expected = mixed_tasks(ctx, count, nap=0.01)
    ctx.create_topic(MACHINE_RUN_PARTITIONS)
    try:
        return lines, expected, SeparateMachine(ctx.name)
    except Unavailable as why:
        print(f"{ctx.name:<14} SKIP  -- {why}", flush=True)
        return lines, expected, None


def scenario_network_cut(ctx, size):
    """Two workers on 4 partitions, one on a machine of its own (SeparateMachine) whose link
    goes down a fifth of the way into the run for size["cut_for"] s: the broker and Redis both
    go silent for it (packets dropped, no connection closed), past the session timeout and the
    Redis outage limit. The other worker must take its partitions over; the cut-off worker must
    not hang on a connection that never answers, write nothing stale, commit nothing past what
    is terminal, take partitions again once the link is back, and stop on SIGTERM."""
    count, partitions = size["cut_tasks"], MACHINE_RUN_PARTITIONS
    lines, expected, machine = machine_run(ctx, count)
    if machine is None:
        return True
    try:
        args = ["--batch-size", "50"]
        cut = ctx.start_worker("cut", args, machine=machine)
        other = ctx.start_worker("other", args)
        if not wait_until(lambda: "assigned partitions" in ctx.worker_log("cut"), 60):
            raise RuntimeError("the worker on its own machine took no partitions within 60 s")
        sampler = Sampler(ctx, count)
        sampler.start()
        checker = publish_checked(ctx, lines, partitions, sampler)
        assigned_before = ctx.worker_log("cut").count("assigned partitions")
        machine.cut()
        cut_ms = int(time.time() * 1000)
        ctx.faults += 1
        log(f"network-cut: the link of worker 'cut' is down ({sampler.terminal} of {count} terminal)")
        time.sleep(size["cut_for"])
        machine.heal()
        back_ms = int(time.time() * 1000)
        log("network-cut: the link is back")
        if not sampler.wait(size["timeout"]):
            ctx.fail(f"not every task terminal ({sampler.terminal} of {count})")
        rejoined = wait_until(lambda: ctx.worker_log("cut").count("assigned partitions") > assigned_before, 120)
        if not rejoined:
            ctx.fail("the cut-off worker did not take partitions again within 120 s of the link's return")
        said = [what for what, text in (("Redis out of reach", "retrying with backoff"),
                                        ("gave its partitions up", "giving partitions"))
                if text in ctx.worker_log("cut")]
        terminal, wrong, rewritten, held, taken, _ = end_takeover(ctx, sampler, checker, expected, cut, other,
                                                                  cut_ms, back_ms)
        if held and not taken:
            ctx.fail(f"the cut-off worker's partitions {sorted(held)} did not move on during the cut")
        takeover = f"{(min(taken) - cut_ms) / 1000:.1f}s after the cut" if taken else "not during the cut"
        return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                      f"a worker's link down {size['cut_for']:.0f}s (broker and Redis silent); its partitions "
                      f"{sorted(held)} taken over {takeover}; it said: {', '.join(said) or 'nothing'}; "
                      f"rejoined: {'yes' if rejoined else 'no'}")
    finally:
        machine.remove()


def scenario_broker_split(ctx, size):
    """Two workers on 4 partitions, one on a machine of its own (SeparateMachine) and holding
    the topic's scheduler lease. A fifth of the way into the run that machine's link to the
    broker goes silent for size["split"] s (past the session timeout, and past the 15 s its
    publishes wait for the broker) while Redis still answers it; delayed tasks come due in the
    middle of it. The other worker must take the split one's partitions over; the split worker,
    still writing to Redis, must write nothing stale and commit nothing past what is terminal;
    the delayed tasks must run although the scheduler's worker cannot reach the broker; and
    once the link is back the split worker takes partitions again."""
    count, delayed, delay = size["split_tasks"], size["split_delayed"], 5
    partitions = MACHINE_RUN_PARTITIONS
    lines, expected, machine = machine_run(ctx, count)
    if machine is None:
        return True
    try:
        args = ["--batch-size", "50"]
        # A delivery timeout shorter than the 30 s after which the other worker's scheduler
        # takes a QUEUED task as lost, so a task the split worker gives up on is still QUEUED
        # then (with librdkafka's 30 s, the two race).
        split = ctx.start_worker("split", args, env={"YADTQ_KAFKA_DELIVERY_TIMEOUT_MS": "15000"}, machine=machine)
        if not wait_until(lambda: "active on this worker" in ctx.worker_log("split"), 60):
            raise RuntimeError("the worker on its own machine did not take the scheduler lease within 60 s")
        other = ctx.start_worker("other", args)
        total = count + 10 + delayed
        sampler = Sampler(ctx, total)
        sampler.start()
        # A few delayed tasks first, due at once: the scheduler publishes them, so it knows the
        # topic's partitions when the split comes (a count it must read from the broker first
        # makes the publish fail as a whole, leaving the tasks QUEUED whatever the rule for a
        # broker that does not answer).
        warm = [json.dumps({"id": f"{ctx.name}-warm-{i}", "type": "add", "args": [i, 2], "delay": "1s"})
                for i in range(10)]
        warm_ids = [f"{ctx.name}-warm-{i}" for i in range(10)]
        expected.update({tid: i + 2 for i, tid in enumerate(warm_ids)})
        if ctx.run_producer(("\n".join(warm) + "\n").encode(), label="warm").wait(60) != 0:
            ctx.fail("yadtq-run of the first delayed tasks failed")
        if not wait_until(lambda: all(r.get("status") == "SUCCESS" for r in ctx.records(warm_ids)), 60):
            ctx.fail("the first delayed tasks did not run within 60 s")
        checker = publish_checked(ctx, lines, partitions, sampler)
        later = [json.dumps({"id": f"{ctx.name}-later-{i}", "type": "add", "args": [i, 1], "delay": f"{delay}s"})
                 for i in range(delayed)]
        expected.update({f"{ctx.name}-later-{i}": i + 1 for i in range(delayed)})
        assigned_before = ctx.worker_log("split").count("assigned partitions")
        machine.split_broker()
        split_ms = int(time.time() * 1000)
        ctx.faults += 1
        log(f"broker-split: the broker cut off from worker 'split' ({sampler.terminal} of {count} terminal)")
        scheduled = ctx.run_producer(("\n".join(later) + "\n").encode(), label="later")
        due_ms = int(time.time() * 1000) + delay * 1000
        if scheduled.wait(60) != 0:
            ctx.fail(f"yadtq-run of the delayed tasks exited {scheduled.returncode}")
        split_at = sampler.terminal
        time.sleep(size["split"])
        moved_on = sampler.terminal - split_at
        machine.heal()
        healed_ms = int(time.time() * 1000)
        log(f"broker-split: the link is back ({moved_on} tasks ended during the split)")
        if not sampler.wait(size["timeout"]):
            ctx.fail(f"not every task terminal ({sampler.terminal} of {total})")
        rejoined = wait_until(lambda: ctx.worker_log("split").count("assigned partitions") > assigned_before, 120)
        if not rejoined:
            ctx.fail("the split worker did not take partitions again within 120 s of the link's return")
        terminal, wrong, rewritten, held, taken, records = end_takeover(ctx, sampler, checker, expected, split, other,
                                                                        split_ms, healed_ms)
        if held and not taken:
            ctx.fail(f"the split worker's partitions {sorted(held)} did not move on during the split")
        takeover = f"{(min(taken) - split_ms) / 1000:.1f}s after the split" if taken else "not during the split"
        starts = [int(r["started_at"]) for r in records[count + len(warm_ids):] if r.get("started_at")]
        lateness = f"{(max(starts) - due_ms) / 1000:.1f}s" if starts else "never"
        lease = "active on this worker" in ctx.worker_log("other")
        return report(ctx, total, terminal, wrong, rewritten, sampler.max_stall,
                      f"the scheduler's worker cut off from the broker {size['split']:.0f}s, Redis still reached; "
                      f"its partitions {sorted(held)} taken over {takeover}; {delayed} delayed tasks due "
                      f"{delay}s into the split, the last started {lateness} after due; the scheduler's lease "
                      f"{'moved to the other worker' if lease else 'stayed'}; rejoined: {'yes' if rejoined else 'no'}")
    finally:
        machine.remove()


def streamed_run(ctx, count, size, inject, nap=0.0, check_commits=False):
    """Two workers and a producer fed `count` tasks through a pipe over size["stream"] s;
    `inject()` runs once a quarter of them are terminal. With `check_commits`, the commit rule
    is checked from the end of publishing to the end. Returns when every task is terminal and
    the workers have stopped: (expected results, sampler)."""
    lines, expected = mixed_tasks(ctx, count, nap=nap)
    ctx.create_topic(4)
    workers = [ctx.start_worker(n, ["--batch-size", "100"]) for n in ("w1", "w2")]
    sampler = Sampler(ctx, count)
    sampler.start()
    producer = ctx.run_producer(args=[], label="run", stdin_pipe=True)
    feeder = threading.Thread(target=feed, args=(producer, lines, size["stream"]), daemon=True)
    feeder.start()
    wait_until(lambda: sampler.terminal >= count // 4, 120)
    inject()
    feeder.join(300)
    if producer.wait(300) != 0:
        ctx.fail(f"yadtq-run exited {producer.returncode}: {open(producer.err_path).read()[-300:]}")
    checker = CommitChecker(ctx, 4, topic_offsets(ctx.topic, 4, count)) if check_commits else None
    if checker:
        checker.start()
    finish(ctx, sampler, workers, size["timeout"])
    if checker:
        checker.stop()
        if checker.violations:
            ctx.fail(f"offsets committed past unfinished tasks: {checker.violations[:2]}")
    return expected, sampler


def published_run(ctx, count, worker_args, nap):
    """Two workers with `worker_args` and `count` tasks published at once (yadtq-run exits
    before the fault), returned once a quarter of them are terminal: (expected results,
    workers, sampler)."""
    lines, expected = mixed_tasks(ctx, count, nap=nap)
    ctx.create_topic(4)
    workers = [ctx.start_worker(n, worker_args) for n in ("w1", "w2")]
    sampler = Sampler(ctx, count)
    sampler.start()
    producer = ctx.run_producer(("\n".join(lines) + "\n").encode(), label="run")
    if producer.wait(300) != 0:
        ctx.fail(f"yadtq-run exited {producer.returncode}: {open(producer.err_path).read()[-300:]}")
    wait_until(lambda: sampler.terminal >= count // 4, 120)
    return expected, workers, sampler


def finish(ctx, sampler, workers, timeout):
    """Waits for every task to be terminal, checks that no worker died, stops them."""
    if not sampler.wait(timeout):
        ctx.fail("not every task terminal")
    sampler.stop()
    for w in workers:
        if w.poll() is not None:
            ctx.fail(f"worker {w.label} exited {w.returncode}")
    ctx.stop_workers()


def scenario_redis_restart(ctx, size):
    """kill -9 Redis in the middle of a run (producer streaming, workers busy), restart it."""
    count = size["redis"]
    # Ballast: millions of keys in the append-only file, so the restarted Redis spends
    # seconds answering LOADING, as a production Redis does (a worker must wait that out too).
    value = "b" * 16
    pipe = ctx.redis.client.pipeline(transaction=False)
    for chunk in range(size["ballast"]):
        pipe.mset({f"{ctx.prefix}ballast:{chunk}:{k}": value for k in range(1000)})
        if chunk % 100 == 99:
            pipe.execute()
    pipe.execute()

    def restart_redis():
        os.kill(stack_pid("redis"), signal.SIGKILL)
        ctx.faults += 1
        killed = now()
        time.sleep(size["outage"])
        stack_up()
        log(f"redis restarted after {now() - killed:.1f}s")

    # Tasks that take a moment (redis_nap: 2 ms, 5 ms with --small), fed faster than two
    # workers run them: the workers must be mid-batch, with a backlog, when Redis goes, so each
    # sees the outage and its end.
    expected, sampler = streamed_run(ctx, count, size, restart_redis, nap=size["redis_nap"])
    told = sum("retrying with backoff" in ctx.worker_log(n) for n in ("w1", "w2"))
    loading = sum("LOADING" in ctx.worker_log(n) for n in ("w1", "w2"))
    # Recovery is said by the Redis client when a call it was retrying gets through, or by
    # the batch when a write it was retrying does (whichever was waiting when Redis came back).
    back = sum(any(said in ctx.worker_log(n) for said in ("reachable again", "Redis answers again")) for n in ("w1", "w2"))
    if told == 0 or back == 0:
        ctx.fail(f"workers did not report the outage ({told} warned, {back} reported recovery)")
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  f"Redis kill -9, {size['outage']:.0f}s down, restarted on the same append-only file "
                  f"(+{size['ballast']}k keys of ballast: {loading} of 2 workers waited out LOADING)")


def free_cluster_ports(count):
    """`count` distinct free ports for Redis Cluster nodes (see free_cluster_port in lib.sh)."""
    ports = set()
    while len(ports) < count:
        ports.add(int(subprocess.run(["bash", "-c", 'source "$0/scripts/lib.sh"; free_cluster_port', ROOT],
                                     check=True, capture_output=True, text=True).stdout))
    return sorted(ports)


def lib(function, *args):
    """Runs a function of scripts/lib.sh."""
    subprocess.run(["bash", "-c", f'set -euo pipefail; source "$0/scripts/lib.sh"; {function} "$@"', ROOT, *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def scenario_cluster_failover(ctx, size):
    """A Redis Cluster of 3 masters with a replica each; kill -9 one master in the middle of a
    run. Its replica takes over, and nothing a worker acted on is lost: workers wait for a
    replica (WAIT) before running an attempt and before committing offsets."""
    count = size["failover"]
    cluster_dir = tempfile.mkdtemp(prefix="yadtq-chaos-cluster-")
    ports = free_cluster_ports(3)
    lib("cluster_up", cluster_dir, "-", "1", "", *map(str, ports))
    url = "redis://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    sub = Context(ctx.name, os.path.dirname(ctx.logs), redis_url=url)
    victim = ports[0]
    takeover = None

    def kill_master():
        nonlocal takeover
        with open(os.path.join(cluster_dir, f"redis-{victim}.pid")) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
        sub.faults += 1
        killed = now()

        def promoted():
            """The cluster has marked the victim failed and serves every slot again (its replica took over)."""
            try:
                def cli(*args):
                    return subprocess.run(["redis-cli", "-p", str(ports[1]), *args], capture_output=True, text=True,
                                          timeout=5).stdout
                victim_line = [l for l in cli("cluster", "nodes").splitlines() if f":{victim}@" in l]
                return bool(victim_line) and "fail" in victim_line[0].split()[2] and \
                    "cluster_state:ok" in cli("cluster", "info")
            except subprocess.TimeoutExpired:
                return False
        if wait_until(promoted, 60, interval=0.2):
            takeover = now() - killed

    try:
        expected, sampler = streamed_run(sub, count, size, kill_master, nap=0.002, check_commits=True)
        terminal, wrong, rewritten = verify(sub, expected, sampler)
        return report(sub, count, terminal, wrong, rewritten, sampler.max_stall,
                      f"kill -9 of master :{victim} of 3 (1 replica each); cluster ok again "
                      + (f"{takeover:.1f}s later" if takeover is not None else "never"))
    finally:
        sub.cleanup()
        lib("stack_down", cluster_dir)
        shutil.rmtree(cluster_dir, ignore_errors=True)


def scenario_broker_stall(ctx, size):
    """kill -STOP the broker for 15 s in the middle of a run, then -CONT."""
    count = size["broker"]

    def stall_broker():
        broker = stack_pid("tansu")
        os.kill(broker, signal.SIGSTOP)
        ctx.faults += 1
        try:
            time.sleep(size["stall"])
        finally:
            os.kill(broker, signal.SIGCONT)

    expected, sampler = streamed_run(ctx, count, size, stall_broker)
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  f"broker SIGSTOP {size['stall']:.0f}s mid-run")


def scenario_broker_restart(ctx, size):
    """kill -9 the broker with tasks still queued and start it again empty: its memory
    storage keeps no topic, message or committed offset. The workers' scheduler sees the
    end offsets go down, creates the topic again and publishes every task still QUEUED once
    more; each must end terminal, none run twice to SUCCESS (no terminal status rewritten)."""
    count = size["restart"]
    expected, workers, sampler = published_run(ctx, count, ["--batch-size", "100"], nap=size["restart_nap"])
    queued, = ctx.counts("QUEUED")
    os.kill(stack_pid("tansu"), signal.SIGKILL)
    ctx.faults += 1
    killed = now()
    time.sleep(1)
    stack_up()
    log(f"broker restarted empty after {now() - killed:.1f}s with {queued} tasks QUEUED")
    finish(ctx, sampler, workers, size["timeout"])
    published = sum(int(m) for n in ("w1", "w2") for m in re.findall(r"published (\d+) lost tasks", ctx.worker_log(n)))
    if published == 0:
        ctx.fail("no worker published lost tasks again")
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  f"broker kill -9 with {queued} tasks QUEUED, restarted empty; {published} published again")


def scenario_poison(ctx, size):
    """Poison messages written straight to the topic, between good tasks."""
    partitions = 2
    ctx.create_topic(partitions)
    count = size["poison_good"]
    lines, expected = mixed_tasks(ctx, count)
    producer = confluent_kafka.Producer({"bootstrap.servers": BROKERS, "message.max.bytes": 16 * 1024 * 1024,
                                         "linger.ms": 5})
    big = "x" * (3 * 1024 * 1024)
    poisons = [
        b"\xff\xfe\x00 not json at all",
        b"",
        b"[1, 2, 3]",
        b'{"no": "id"}',
        json.dumps({"id": f"{ctx.name}-noargs", "type": "add", "args": "1 2"}).encode(),
        json.dumps({"id": f"{ctx.name}-unknown", "type": "no_such_type", "args": [1]}).encode(),
        json.dumps({"id": f"{ctx.name}-attempts", "type": "add", "args": [1, 2], "max_attempts": 0}).encode(),
        # oversize: 3 MiB, a task of an unknown type (its dead-letter copy is as big)
        json.dumps({"id": f"{ctx.name}-oversize", "type": "no_such_type", "args": [big]}).encode(),
        # oversize and not JSON
        b"{" + big.encode(),
    ]
    delivered = []

    def on_delivery(err, msg):
        # (not `if msg`: a Message's truth is its length, and the empty poison has none)
        delivered.append((err, msg.partition() if msg is not None else None,
                          msg.offset() if msg is not None else None))

    workers = [ctx.start_worker("w1", ["--batch-size", "50"])]
    sampler = Sampler(ctx, count + 2)
    sampler.start()
    half = count // 2
    # yadtq-run queues the good tasks; the poison goes in between, on every partition.
    first = ctx.run_producer(("\n".join(lines[:half]) + "\n").encode(), label="run1")
    first.wait(120)
    poison_where = []
    for p in range(partitions):
        for value in poisons:
            producer.produce(ctx.topic, value=value, partition=p, on_delivery=on_delivery)
        producer.flush(60)  # one partition at a time: deliveries come back in order
    poison_where = [(e, p, o) for e, p, o in delivered]
    errors = [e for e, _, _ in poison_where if e is not None]
    if errors:
        ctx.fail(f"could not write the poison: {errors[0]}")
    second = ctx.run_producer(("\n".join(lines[half:]) + "\n").encode(), label="run2")
    second.wait(120)
    ctx.faults = len(poison_where)
    # Every good task terminal, every poison message FAILED with a reason.
    expected_failed = {}
    for (_, p, o), value in zip(poison_where, poisons * partitions):
        try:
            tid = json.loads(value).get("id")
        except (ValueError, AttributeError):
            tid = None
        expected_failed[tid or f"poison-{ctx.topic}-{p}-{o}"] = FAILED
    sampler.total = count + len(set(expected_failed))
    sampler.wait(size["timeout"])
    sampler.stop()
    restarts = [w for w in workers if w.poll() is not None]
    if restarts:
        ctx.fail(f"the worker died: exit {restarts[0].returncode}")
    ctx.stop_workers()
    all_expected = dict(expected)
    all_expected.update(expected_failed)
    terminal, wrong, rewritten = verify(ctx, all_expected, sampler)
    # The dead-letter topic holds a copy of each, with the reason.
    dlq = read_all(ctx.topic + ".dlq", len(set(expected_failed)), 30)
    dlq_ids = set()
    for value in dlq:
        try:
            fields = json.loads(value)
            if fields.get("error"):
                dlq_ids.add(fields.get("id"))
        except ValueError:
            pass
    missing = set(expected_failed) - dlq_ids
    if missing:
        ctx.fail(f"{len(missing)} poison messages have no dead-letter copy with a reason, e.g. {sorted(missing)[:3]} "
                 f"({len(dlq)} copies read: {sorted(dlq_ids)})")
    return report(ctx, len(all_expected), terminal, wrong, rewritten, sampler.max_stall,
                  f"{len(poisons)} kinds of poison x {partitions} partitions (incl. 3 MiB), between {count} good tasks")


def read_all(topic, expect, timeout):
    consumer = confluent_kafka.Consumer({"bootstrap.servers": BROKERS, "group.id": "reader-" + uuid.uuid4().hex,
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                         "fetch.max.bytes": 64 * 1024 * 1024})
    # assign, not subscribe: no group join to wait for
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
    values, deadline = [], now() + timeout
    while len(values) < expect and now() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        values.append(m.value())
    consumer.close()
    return values


def scenario_bad_input(ctx, size):
    """yadtq-run fed random bytes, invalid UTF-8, a 10 MB line and 100,000 bad lines."""
    ctx.create_topic(2)
    workers = [ctx.start_worker("w1")]
    rng = random.Random(7)
    cases = {
        "random-bytes": bytes(rng.getrandbits(8) for _ in range(size["random_bytes"])),
        "invalid-utf8": b"add \xff\xfe 1\nconcat \"\xc3\x28\" x\n\xed\xa0\x80 1 2\n{\"type\": \"add\", \"args\": [\"\xff\"]}\n",
        "10MB-line": b"echo " + b"y" * (10 * 1024 * 1024) + b"\n",
        "bad-lines": b"".join(b"add 1 [unclosed\n" if i % 2 else b"{\"type\": 5}\n"
                              for i in range(size["bad_lines"])),
    }
    expected, total_bad, sampler_total = {}, 0, 0
    results = []
    for index, (label, payload) in enumerate(cases.items()):
        good = [json.dumps({"id": f"{ctx.name}-{label}-{k}", "type": "add", "args": [k, index]}) for k in range(5)]
        for k in range(5):
            expected[f"{ctx.name}-{label}-{k}"] = k + index
        # good lines before and after the bad input
        data = ("\n".join(good[:2]) + "\n").encode() + payload + b"\n" + ("\n".join(good[2:]) + "\n").encode()
        started = now()
        p = ctx.run_producer(data, label=f"run-{label}")
        try:
            status = p.wait(300)
        except subprocess.TimeoutExpired:
            p.kill()
            status = None
        ctx.faults += 1
        err = open(p.err_path, errors="replace").read()
        errors = [line for line in err.splitlines() if line.startswith("-:")]
        if status is None or status < 0 or status not in (0, 1):
            ctx.fail(f"{label}: yadtq-run crashed or hung (status {status}); stderr {err[-300:]!r}")
        elif label != "10MB-line" and status != 1:
            ctx.fail(f"{label}: exit status {status}, expected 1 for bad lines")
        if label in ("bad-lines",) and len(errors) < size["bad_lines"]:
            ctx.fail(f"{label}: {len(errors)} error lines for {size['bad_lines']} bad lines")
        if label in ("random-bytes", "invalid-utf8") and not errors:
            ctx.fail(f"{label}: no file:line error reported")
        total_bad += len(errors)
        sample = errors[0][:100] if errors else (err.strip().splitlines() or [""])[-1][:100]
        results.append(f"{label}: exit {status}, {len(errors)} errors in {now() - started:.1f}s, e.g. {sample!r}")
    for line in results:
        log(f"bad-input {line}")
    sampler = Sampler(ctx, 0)
    # Good lines next to the bad input still go through.
    records = {}
    wait_until(lambda: all(r.get("status") in ("SUCCESS", "FAILED") for r in ctx.records(list(expected))),
               size["timeout"], 0.5)
    for w in workers:
        if w.poll() is not None:
            ctx.fail(f"worker exited {w.returncode}")
    ctx.stop_workers()
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, len(expected), terminal, wrong, rewritten, 0.0,
                  f"{total_bad} bad lines reported; good lines around each bad input all published")


def scenario_long_task(ctx, size):
    """A 15 s task with max.poll.interval.ms=10000: no eviction from the group, no second run."""
    ctx.create_topic(2)
    env = {"YADTQ_KAFKA_MAX_POLL_INTERVAL_MS": "10000"}
    workers = [ctx.start_worker(n, ["--batch-size", "20"], env=env) for n in ("w1", "w2")]
    lines, expected = mixed_tasks(ctx, size["long_quick"])
    long_ids = [f"{ctx.name}-long-{k}" for k in range(2)]
    lines = [json.dumps({"id": tid, "type": "sleep", "args": [size["long_seconds"]]}) for tid in long_ids] + lines
    for tid in long_ids:
        expected[tid] = size["long_seconds"]
    sampler = Sampler(ctx, len(expected))
    sampler.start()
    p = ctx.run_producer(("\n".join(lines) + "\n").encode(), label="run")
    if p.wait(120) != 0:
        ctx.fail(f"yadtq-run exited {p.returncode}")
    ctx.faults = len(long_ids)
    finish(ctx, sampler, workers, size["long_seconds"] * 4 + 60)
    records = ctx.records(long_ids)
    for tid, rec in zip(long_ids, records):
        if rec.get("attempts") != "1":
            ctx.fail(f"{tid} ran {rec.get('attempts')} times (attempts {rec.get('attempts')}): {rec.get('errors')}")
    for n in ("w1", "w2"):
        text = ctx.worker_log(n)
        if "maximum poll interval" in text:
            ctx.fail(f"worker {n} was thrown out of the group (max.poll.interval.ms exceeded)")
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, len(expected), terminal, wrong, rewritten, sampler.max_stall,
                  f"{len(long_ids)} sleep tasks of {size['long_seconds']}s, max.poll.interval.ms=10000")


def measure_fsync(ctx, size):
    """Throughput with appendfsync always (the stack's) and everysec: the same batch through
    two workers, at batch size 1 (one fsync per state change) and 100, modes alternated."""
    rport = REDIS_URL.rsplit(":", 1)[1].split("/")[0]
    figures = {}

    def one(mode, batch, count):
        subprocess.run(["redis-cli", "-p", rport, "config", "set", "appendfsync", mode], check=True,
                       stdout=subprocess.DEVNULL)
        sub = Context(f"fsync-{mode}-{batch}", os.path.dirname(ctx.logs))
        try:
            lines, _ = mixed_tasks(sub, count)
            sub.create_topic(4)
            workers = [sub.start_worker(n, ["--batch-size", str(batch)]) for n in ("w1", "w2")]
            time.sleep(4)  # let them join
            started = now()
            p = sub.run_producer(("\n".join(lines) + "\nend\n").encode(), ["--wait"], label="run")
            p.wait(900)
            elapsed = now() - started
            for w in workers:
                w.wait(120)
            figures.setdefault((mode, batch), []).append(count / elapsed)
        finally:
            sub.cleanup()

    try:
        for batch, count in ((1, size["fsync"] // 10), (100, size["fsync"])):
            for mode in ("always", "everysec", "always", "everysec"):
                one(mode, batch, count)
    finally:
        subprocess.run(["redis-cli", "-p", rport, "config", "set", "appendfsync", "always"], check=True,
                       stdout=subprocess.DEVNULL)
    parts = []
    for batch in (1, 100):
        always = sum(figures[("always", batch)]) / 2
        everysec = sum(figures[("everysec", batch)]) / 2
        parts.append(f"batch {batch}: always {always:.0f} tasks/s, everysec {everysec:.0f} tasks/s "
                     f"(always costs {100 * (1 - always / everysec):.0f}%)")
    print(f"{'fsync-cost':<14} tasks={size['fsync']:<6} 2 workers; " + "; ".join(parts), flush=True)
    return True


def scenario_redis_cut(ctx, size):
    """Two workers on 4 partitions; one reaches Redis through a TCP proxy that is cut a fifth
    of the way into the run while Kafka still reaches it. Past its outage limit (10 s) the cut worker
    must give its partitions up, commit nothing past what is terminal, so the other worker
    finishes everything; once the proxy is back it rejoins and takes partitions again; and
    SIGTERM during the outage stops it."""
    count = size["cut"]
    partitions = 4
    lines, expected = mixed_tasks(ctx, count, nap=0.005)
    ctx.create_topic(partitions)
    url = REDIS_URL.split("://", 1)[1]
    host, rest = url.split(":", 1)
    port = int(rest.split("/", 1)[0])
    proxy = TcpProxy((host, port))
    cut_url = REDIS_URL.replace(f":{port}", f":{proxy.port}", 1)
    args = ["--batch-size", "50"]
    cut = ctx.start_worker("cut", args, env={"YADTQ_REDIS": cut_url})
    other = ctx.start_worker("other", args)
    sampler = Sampler(ctx, count)
    sampler.start()
    wait_until(lambda: "assigned partitions" in ctx.worker_log("cut"), 60)
    producer = ctx.run_producer(("\n".join(lines) + "\n").encode(), label="run")
    # Cut while both workers have tasks in hand: a fifth of the run done.
    wait_until(lambda: sampler.terminal >= count // 5, 120)
    proxy.cut()
    cut_at = now()
    log(f"redis-cut: Redis cut for worker 'cut' ({sampler.terminal} of {count} terminal)")
    ctx.faults += 1
    if producer.wait(120) != 0:
        ctx.fail(f"yadtq-run exited {producer.returncode}")
    offsets = topic_offsets(ctx.topic, partitions, count)
    checker = CommitChecker(ctx, partitions, offsets)
    checker.start()
    done = sampler.wait(size["timeout"])
    finished_after = now() - cut_at
    if not done:
        ctx.fail(f"not every task terminal with one worker cut off from Redis ({sampler.terminal} of {count})")
    gave_up = "giving partitions" in ctx.worker_log("cut")
    if not gave_up:
        ctx.fail("the cut-off worker did not give its partitions up")
    # Redis comes back: the worker rejoins and takes partitions again.
    assigned_before = ctx.worker_log("cut").count("assigned partitions")
    log(f"redis-cut: every task terminal {finished_after:.1f}s after the cut; Redis back for 'cut'")
    proxy.restore()
    rejoined = wait_until(lambda: ctx.worker_log("cut").count("assigned partitions") > assigned_before, 60)
    if not rejoined:
        ctx.fail("the worker did not take partitions again once Redis answered")
    # A second outage, and SIGTERM in the middle of it: the worker must stop.
    proxy.cut()
    log("redis-cut: Redis cut again; SIGTERM in 3 s")
    time.sleep(3)
    cut.send_signal(signal.SIGTERM)
    try:
        stopped = cut.wait(20) is not None
    except subprocess.TimeoutExpired:
        stopped = False
        ctx.fail("SIGTERM did not stop the worker during a Redis outage within 20 s")
    sampler.stop()
    time.sleep(1)
    checker.stop()
    if other.poll() is not None:
        ctx.fail(f"worker other exited {other.returncode}")
    ctx.stop_workers()
    if checker.violations:
        ctx.fail(f"offsets committed past unfinished tasks: {checker.violations[:2]}")
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  f"Redis cut for one worker a fifth of the way in; every task terminal {finished_after:.1f}s after the cut; "
                  f"gave partitions up: {'yes' if gave_up else 'no'}; rejoined: {'yes' if rejoined else 'no'}; "
                  f"SIGTERM during an outage: {'stopped' if stopped else 'hung'}")


def scenario_redis_full(ctx, size):
    """Two workers with a backlog; a quarter of the way in Redis's maxmemory is set to 1 byte
    (a full Redis, noeviction: every write refused) for size["full"] s, then lifted. The workers
    must wait with their partitions kept (no rebalance: Redis refuses every worker alike),
    count no attempt for what they could not begin, and finish everything once there is room."""
    count = size["full_tasks"]
    expected, workers, sampler = published_run(
        ctx, count, ["--batch-size", "100", "--redis-outage-limit", "3s"], nap=0.002)
    assigned = sum(ctx.worker_log(n).count("assigned partitions") for n in ("w1", "w2"))
    ctx.redis.call(lambda r: r.config_set("maxmemory", 1))
    ctx.faults += 1
    log(f"redis-full: maxmemory 1 ({sampler.terminal} of {count} terminal); lifted in {size['full']:.0f}s")
    try:
        time.sleep(size["full"])
        waited = sum("keeps its partitions" in ctx.worker_log(n) for n in ("w1", "w2"))
    finally:
        ctx.redis.call(lambda r: r.config_set("maxmemory", 0))
    finish(ctx, sampler, workers, size["timeout"])
    gave_up = sum("giving partitions" in ctx.worker_log(n) for n in ("w1", "w2"))
    rebalances = sum(ctx.worker_log(n).count("assigned partitions") for n in ("w1", "w2")) - assigned
    if waited == 0:
        ctx.fail("no worker said it waits for Redis with its partitions")
    if gave_up or rebalances:
        ctx.fail(f"workers gave partitions up ({gave_up}) or were assigned again ({rebalances}) while Redis was full")
    terminal, wrong, rewritten = verify(ctx, expected, sampler)
    return report(ctx, count, terminal, wrong, rewritten, sampler.max_stall,
                  f"Redis full (maxmemory 1) for {size['full']:.0f}s a quarter of the way in; {waited} of 2 workers "
                  f"waited with their partitions; partitions given up: {gave_up}")


SCENARIOS = {
    "worker-kills": scenario_worker_kills,
    "frozen-worker": scenario_frozen_worker,
    "redis-restart": scenario_redis_restart,
    "redis-cut": scenario_redis_cut,
    "broker-split": scenario_broker_split,
    "network-cut": scenario_network_cut,
    "redis-full": scenario_redis_full,
    "broker-stall": scenario_broker_stall,
    "broker-restart": scenario_broker_restart,
    "poison": scenario_poison,
    "bad-input": scenario_bad_input,
    "long-task": scenario_long_task,
    "fsync-cost": measure_fsync,
    "cluster-failover": scenario_cluster_failover,
}

FULL = dict(cut=3000, full_tasks=20_000, full=12, kills=50_000, kill_nap=0.004, frozen=3000, freeze=15, redis=20_000, redis_nap=0.002, outage=3, ballast=3000, stream=8, broker=10_000, stall=15,
            poison_good=400, random_bytes=65536, bad_lines=100_000, long_quick=200, long_seconds=15,
            fsync=20_000, failover=20_000, restart=5000, restart_nap=0.01,
            split_tasks=3000, split_delayed=200, split=45, cut_tasks=3000, cut_for=30, timeout=600)
SMALL = dict(cut=1000, full_tasks=2000, full=8, kills=3000, kill_nap=0.004, frozen=600, freeze=12, redis=2000, redis_nap=0.005, outage=2, ballast=300, stream=4, broker=2000, stall=8,
             poison_good=40, random_bytes=4096, bad_lines=2000, long_quick=20, long_seconds=12,
             fsync=2000, failover=3000, restart=600, restart_nap=0.01,
             split_tasks=600, split_delayed=50, split=40, cut_tasks=600, cut_for=25, timeout=180)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="small sizes, for a quick check")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--artifacts", default=os.path.join(ROOT, ".test-artifacts", "chaos"))
    options = parser.parse_args()
    size = SMALL if options.small else FULL
    names = [n for n in options.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]}; one of {', '.join(SCENARIOS)}")
    os.makedirs(options.artifacts, exist_ok=True)
    failed = []
    for name in names:
        ctx = Context(name, options.artifacts)
        log(f"scenario {name}: namespace {ctx.ns}, logs in {ctx.logs}")
        started = now()
        try:
            ok = SCENARIOS[name](ctx, size)
        except Exception as error:  # a scenario that breaks is a failed scenario, not a crash
            import traceback
            traceback.print_exc()
            print(f"{name:<14} FAIL  -- {type(error).__name__}: {error}", flush=True)
            ok = False
        finally:
            ctx.cleanup()
        log(f"scenario {name} took {now() - started:.0f}s")
        if not ok:
            failed.append(name)
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()
    if failed:
        log(f"failed: {', '.join(failed)} (logs in {options.artifacts})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
