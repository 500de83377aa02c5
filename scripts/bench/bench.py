#!/usr/bin/env python3
"""`make bench`: Emporium's throughput, latency, scaling and memory, each beside a baseline
measured in the same run on the same machine; printed, and written to BENCHMARKS.md.

Run through scripts/bench.sh, which starts the servers, builds in release mode, compiles the
raw publisher and exports what this needs (BENCH_BIN, PG_BIN, DATABASE_URL, AMQP_*). The run
uses its own database (emporium_bench) and RabbitMQ vhost, both removed at the end, and its
own API port, so a `make run` stack is left alone.

Phases: floors (a) pgbench with the order-placement transaction, (a') pgbench with every
transaction of one order's saga, plain and pipelined, (a'') the same for a leaner saga
(four hops fewer, every guarantee kept: the floor a redesign could reach), (b) a raw rabbitmq-c publisher with
confirms and a raw consumer with multiple acks; then Emporium: (c) peak placement (closed
loop, same concurrency as pgbench), (c') whole purchases with the carts filled over the API,
(d) placement latency at fixed offered rates (and the API's own share, from its access log), (e) end-to-end completion at a sustained rate,
three runs from drained to drained, (f) payment-worker scaling with a slow provider at 1, 2
and 4 replicas, (g) resident memory of every process under load; and (h) a peer shop,
django-oscar with django-oscar-api, doing the same purchases. During each phase it also
accounts the CPU time of every process (API, workers, PostgreSQL, RabbitMQ, the load
generator), which is the profile that locates a bottleneck.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BENCH_BIN", "")
PG_BIN = os.environ.get("PG_BIN", "")
PUBLISHER = os.environ.get("BENCH_PUBLISHER", "")
LOGS = os.path.join(os.environ.get("BENCH_LOG_DIR", os.path.join(ROOT, ".local", "logs", "bench")))
TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def fail(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def setting(name, default, kind, minimum, many=False):
    """A `BENCH_*` setting from the environment (unset or empty: `default`), as `kind` (int or
    float), at least `minimum`; with `many`, a space-separated list of at least one. Anything
    else ends the bench with a message naming the setting, before anything has started."""
    raw = os.environ.get(name, "").strip() or default
    what, plural = ("a whole number", "whole numbers") if kind is int else ("a number", "numbers")
    values = []
    for word in raw.split():
        try:
            value = kind(word)
        except ValueError:
            fail(f"{name} must be {'a space-separated list of ' + plural if many else what}, not {raw!r}")
        if not math.isfinite(value) or value < minimum:
            fail(f"{name} must be {'a finite number of at least' if kind is float else 'at least'} {minimum}, not {raw!r}")
        values.append(value)
    if not values or (len(values) > 1 and not many):
        fail(f"{name} must be {'a space-separated list of ' + plural if many else 'one ' + what[2:]}, not {raw!r}")
    return values if many else values[0]


def run(args, env=None, check=True, timeout=900):
    """Runs a command and returns its standard output; a failure stops the bench with its output.
    Every command has a deadline: a frozen server or broker stops the bench with a message, not
    a hang. Commands that run for a configured time (pgbench, `emporium bench`) get that time
    plus a margin (`for_seconds`)."""
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"{' '.join(map(str, args[:3]))} … gave no answer within {timeout} s (the command was killed)")
    if check and result.returncode != 0:
        fail(f"{' '.join(args[:3])} … exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


class Database:
    """psql against one database, for setup and for reading outcomes."""

    def __init__(self, url):
        self.url = url

    def query(self, sql):
        return run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.url, "-c", sql], timeout=300).strip()

    def value(self, sql):
        return self.query(sql).splitlines()[0]


# ---------------------------------------------------------------------------------------------
# CPU and memory accounting from /proc


def proc_cpu(pid):
    """(comm, CPU seconds, parent pid) of a process, or None once it is gone: its own user +
    system time plus that of its children it has reaped. PostgreSQL's backends exit when their
    client disconnects (pgbench's, at the end of its run) and are reaped by the postmaster, so
    their CPU is found there after they are gone instead of being missed."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return text[text.index("(") + 1:text.rindex(")")], sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS, int(fields[1])


def peak_rss(pid):
    """The most memory a process has held resident so far (VmHWM), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# Process names (as /proc truncates them to 15 characters) to components.
COMPONENTS = {
    "emporium-api": "API", "emporium-stock-": "stock worker", "emporium-paymen": "payment worker",
    "emporium-order-": "order worker", "emporium-notifi": "notification worker", "emporium": "load generator",
    "postgres": "PostgreSQL", "beam.smp": "RabbitMQ", "erl_child_setup": "RabbitMQ", "inet_gethost": "RabbitMQ",
    "pgbench": "pgbench", "amqp_publish": "raw publisher", "gunicorn": "django-oscar (gunicorn)",
}


class CPUAccounting:
    """CPU seconds by component between `start()` and `stop()`.

    With `backends` (a ``PostgresBackends``), PostgreSQL's share is also split by whose session
    a backend serves (`postgres_by_client`): Emporium's processes name their sessions
    (`emporium-api`, `emporium-stock-worker marks`, the load generator `emporium bench`),
    pgbench's are `pgbench`, the server's own processes carry their backend type. Backends
    are sampled every half second during the phase, so one that ends before `stop()` (an
    autovacuum worker, the load generator's sessions) is credited to its label up to its last
    sample; what no sample saw stays with the postmaster, which reaped it."""

    POSTMASTER = "postmaster, and backends that ended unsampled"
    SAMPLE_SECONDS = 0.5

    def __init__(self, backends=None):
        # Without a superuser session there are no labels, and every backend would look
        # like one exiting: no split then, PostgreSQL stays one figure. The same from the
        # phase on in which a read of the labels fails (`lost`).
        self.backends = backends if backends and backends.labels() else None
        self.lost = False

    @staticmethod
    def snapshot():
        cpu = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = proc_cpu(int(name))
                if stat and stat[0] in COMPONENTS:
                    cpu[int(name)] = (COMPONENTS[stat[0]], stat[1], stat[2])
        return cpu

    @staticmethod
    def exited_children():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def sample(self):
        """{pid: (label, CPU seconds)} of PostgreSQL's backends now."""
        labels = self.backends.labels()
        if labels is None:
            self.lost = True
            return {}
        seen = {}
        for pid, label in labels.items():
            stat = proc_cpu(pid)
            if stat and stat[0] == "postgres":
                seen[pid] = (label, stat[1])
        return seen

    def sampling(self):
        while not self.stopping.wait(self.SAMPLE_SECONDS):
            self.last_seen.update(self.sample())

    def settle(self):
        """Waits up to 2 s while a PostgreSQL backend is outside pg_stat_activity: one whose
        client just left (a stopped worker's, the load generator's as it exits) is still
        exiting, and a snapshot taken then could find its time both in it and in the
        postmaster that reaps it meanwhile, or in neither."""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            processes, labels = self.snapshot(), self.backends.labels()
            if labels is None:
                self.lost = True
                return
            exiting = [pid for pid, (name, _, parent) in processes.items()
                       if name == "PostgreSQL" and pid not in labels and processes.get(parent, ("",))[0] == "PostgreSQL"]
            if not exiting:
                return
            time.sleep(0.01)

    def start(self):
        self.splitting = self.backends is not None and not self.lost
        if self.splitting:
            self.settle()
        self.before = self.snapshot()
        self.children_before = self.exited_children()
        self.began = time.monotonic()
        if self.splitting:
            self.last_seen = self.sample()
            self.stopping = threading.Event()
            self.sampler = threading.Thread(target=self.sampling, daemon=True)
            self.sampler.start()

    def stop(self, exited="load generator"):
        """Ends the phase. Processes this script ran that ended during it (the load generator,
        pgbench, the publisher) are counted as `exited`."""
        if self.splitting:
            self.stopping.set()
            self.sampler.join()
            self.last_seen.update(self.sample())
            self.settle()
            self.splitting = not self.lost
        after = self.snapshot()
        wall = time.monotonic() - self.began
        by_client = {}
        used = {exited: self.exited_children() - self.children_before}
        for pid, (name, seconds, _) in after.items():
            spent = seconds - (self.before[pid][1] if pid in self.before else 0.0)
            used[name] = used.get(name, 0.0) + spent
            if self.splitting and name == "PostgreSQL":
                label = self.last_seen[pid][0] if pid in self.last_seen else self.POSTMASTER
                by_client[label] = by_client.get(label, 0.0) + spent
        # A process that was running at the start and is gone now (a backend whose client
        # disconnected, say those of a worker stopped just before the phase) was reaped during
        # the phase, so its parent's reaped-children time now holds its whole life: the part
        # it had used before the phase is not this phase's.
        for pid, (name, seconds, parent) in self.before.items():
            if pid in after:
                continue
            if parent == os.getpid():
                used[exited] -= seconds
            elif parent in after:
                reaper = after[parent][0]
                used[reaper] = used.get(reaper, 0.0) - seconds
                if self.splitting and reaper == "PostgreSQL":
                    by_client[self.POSTMASTER] = by_client.get(self.POSTMASTER, 0.0) - seconds
        # A backend that ended during the phase: the postmaster's reaped time holds it; what
        # its last sample showed (less what it had used before the phase) moves to its label.
        if self.splitting:
            for pid, (label, seconds) in self.last_seen.items():
                if pid in after:
                    continue
                credit = seconds - (self.before[pid][1] if pid in self.before else 0.0)
                by_client[label] = by_client.get(label, 0.0) + credit
                by_client[self.POSTMASTER] = by_client.get(self.POSTMASTER, 0.0) - credit
        usage = {"wall_seconds": round(wall, 1), "cpu_seconds": {k: round(v, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0.005}}
        if self.splitting:
            usage["postgres_by_client"] = {k: round(v, 3) for k, v in sorted(by_client.items(), key=lambda kv: -kv[1]) if v > 0.0005}
        return usage


def superuser_command(database, *arguments):
    """psql as the local superuser `postgres` over the socket (for what the bench role may not
    see or do)."""
    command = ["psql", "-X", "-q", "-w", "-At", "-h", os.environ["PG_SOCKET_DIR"], "-p", os.environ["PG_PORT"], "-U", "postgres", "-d", database, *arguments]
    return ["runuser", "-u", "postgres", "--"] + command if os.getuid() == 0 else command


def superuser_psql(database, sql):
    """Runs `sql` as the superuser; returns its unaligned output, or None if that is not
    possible here."""
    try:
        result = subprocess.run(superuser_command(database, "-c", sql), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    return result.stdout if result.returncode == 0 else None


class PostgresBackends:
    """{pid: label} of PostgreSQL's processes (the session's application_name, else the
    process's backend type: walwriter, checkpointer, autovacuum worker, ...), read through one
    long-lived superuser psql session: a psql per read would itself be a backend that starts
    and ends each time. Its own session shows as `psql`. `labels()` is None if no superuser
    session opens, or once one read has failed or missed its deadline."""

    QUERY = b"SELECT pid, coalesce(nullif(application_name, ''), backend_type) FROM pg_stat_activity;\n\\echo __end__\n"
    END = b"__end__\n"
    DEADLINE_SECONDS = 5

    def __init__(self, database):
        self.process = subprocess.Popen(superuser_command(database), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, bufsize=0)
        self.given_up = False  # warned once that the split ends

    def labels(self):
        if self.process.poll() is None:
            output, failure = self.read_answer()
        else:
            output, failure = None, f"the psql session reading pg_stat_activity ended (exit {self.process.returncode})"
        if output is None:
            if not self.given_up:
                log(f"warning: {failure}; PostgreSQL's CPU is not split by session from here on")
                self.given_up = True
            if self.process.poll() is None:  # a session that missed its deadline may be stuck for good
                self.process.kill()
                self.process.wait()
            return None
        labels = {}
        for line in output.decode(errors="replace").splitlines():
            pid, _, label = line.partition("|")
            if pid.isdigit():
                labels[int(pid)] = label
        return labels

    def read_answer(self):
        """(psql's answer up to the end marker, None), or (None, why not) if psql died or
        PostgreSQL did not answer within the deadline (a frozen server would otherwise hang the
        bench's phase)."""
        try:
            self.process.stdin.write(self.QUERY)
        except OSError as error:
            return None, f"the psql session reading pg_stat_activity is gone ({error})"
        deadline = time.monotonic() + self.DEADLINE_SECONDS
        output = b""
        descriptor = self.process.stdout.fileno()
        while not output.endswith(self.END):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
                return None, f"pg_stat_activity gave no answer within {self.DEADLINE_SECONDS} s"
            chunk = os.read(descriptor, 65536)
            if not chunk:
                return None, "the psql session reading pg_stat_activity ended"
            output += chunk
        return output[:-len(self.END)], None

    def close(self):
        """Ends the session: its input closed, then killed if it does not exit in time."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


# ---------------------------------------------------------------------------------------------
# The stack under test


class Stack:
    """The API and the workers, as release binaries, on the bench database and vhost."""

    written = set()  # the log files this run has opened

    def __init__(self, env, port):
        self.env = env
        self.port = port
        self.processes = {}  # name -> Popen
        self.metrics_ports = {}  # name -> port of its GET /metrics
        self.next_metrics_port = port + 10

    def start(self, name, executable, extra=None):
        # Each process serves its Prometheus counters on a port of its own (the API on its
        # metrics listener, a worker on its health port), for the per-order counts of (e).
        metrics_port = self.next_metrics_port
        self.next_metrics_port += 1
        self.metrics_ports[name] = metrics_port
        own = {"METRICS_PORT": str(metrics_port)} if executable == "emporium-api" else {"HEALTH_PORT": str(metrics_port)}
        env = dict(self.env, **own, **(extra or {}))
        # Each run's logs are its own (a previous run's would grow the files without end), and
        # only files this bench writes are touched (BENCH_LOG_DIR may be a shared directory):
        # a process's log is emptied the first time the run starts it, appended to after that.
        path = os.path.join(LOGS, f"{name}.log")
        logfile = open(path, "ab" if path in Stack.written else "wb")
        Stack.written.add(path)
        self.processes[name] = subprocess.Popen([os.path.join(BIN, executable)], env=env, stdout=logfile, stderr=subprocess.STDOUT)
        return self.processes[name]

    def stop(self, name):
        self.metrics_ports.pop(name, None)
        process = self.processes.pop(name)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self):
        for name in list(self.processes):
            self.stop(name)

    def counters(self, names):
        """Each named counter summed over every label set and every running process (the
        processes count from their start, so only differences between two calls mean anything)."""
        totals = dict.fromkeys(names, 0.0)
        for name, port in self.metrics_ports.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except Exception as error:
                fail(f"could not read the counters of the {name} on port {port}: {error}")
            for line in text.splitlines():
                metric, _, value = line.partition(" ")
                metric = metric.split("{", 1)[0]
                if metric in totals:
                    totals[metric] += float(value.rsplit(" ", 1)[-1])
        return totals

    def peak_rss(self):
        """VmHWM of every process of the stack, by name."""
        return {name: peak_rss(process.pid) for name, process in self.processes.items()}

    def wait_ready(self):
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.25)
        fail(f"the API did not become ready; see {LOGS}/api.log")


def cpu_line(usage):
    return ", ".join(f"{k} {v:.1f}" for k, v in usage["cpu_seconds"].items()) + f" CPU s in {usage['wall_seconds']:.0f} s"


def for_seconds(seconds):
    """The deadline of a command that runs for `seconds`: that, plus 10 minutes for its setup
    (the load generator registers its customers and fills their carts first) and its report."""
    return seconds + 600


# The progress line `emporium bench` writes as its load begins (Bench.swift: "bench: N orders
# at R/s for …" open loop, "bench: N clients back to back for …" closed loop).
LOAD_BEGINS = re.compile(r"^bench: (\d+ orders at |\d+ clients back to back )")


def emporium_bench(env, url, *args, accounting=None):
    """`emporium bench … --json`, returning its report. Its deadline is its load's duration plus
    its settle timeout (the CLI's default 120 s unless given), plus the margin.

    With `accounting`, the phase's CPU window starts when the load begins, not when the command
    does: before it, the generator makes its products and signs up and signs in every customer,
    and each sign-up and sign-in is a bcrypt hash in the API (about 14 CPU s for the 400
    customers of (e), 0.8 ms per order on 2026-12-06), which is not what an order costs. The
    window opens a few milliseconds after the first arrival (the time to read the line and
    snapshot /proc), which it misses."""
    def option(name, default):  # the value after `name` (flags such as --cart-over-api have none)
        return float(args[args.index(name) + 1]) if name in args else default
    seconds = option("--duration", 0) + option("--settle-timeout", 120)
    command = [os.path.join(BIN, "emporium"), "bench", "--url", url, "--json", *map(str, args)]
    if accounting is None:
        return json.loads(run(command, env=env, timeout=for_seconds(seconds)))
    deadline = time.monotonic() + for_seconds(seconds)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output, errors, begun = [], [], threading.Event()

    def read_errors():
        for line in process.stderr:
            errors.append(line)
            if LOAD_BEGINS.match(line):
                begun.set()

    readers = [threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True),
               threading.Thread(target=read_errors, daemon=True)]
    for reader in readers:
        reader.start()
    while not begun.wait(0.02) and process.poll() is None and time.monotonic() < deadline:
        pass
    if begun.is_set():
        accounting.start()
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        fail(f"emporium bench {' '.join(map(str, args[:2]))} … gave no answer within {for_seconds(seconds)} s (the command was killed)")
    for reader in readers:
        reader.join(timeout=10)
    if process.returncode != 0:
        fail(f"emporium bench … exited {process.returncode}:\n{''.join(output)[-2000:]}\n{''.join(errors)[-2000:]}")
    if not begun.is_set():
        fail("emporium bench finished without saying its load began (no 'bench: N orders at' or 'bench: N clients back to back' line):\n"
             + "".join(errors)[-2000:])
    return json.loads("".join(output))


# ---------------------------------------------------------------------------------------------
# Phases


def pgbench(db, env, clients, seconds):
    user_id = db.value("SELECT id FROM users WHERE email = 'pgbench@emporium.local'")
    products = db.query("SELECT id FROM products WHERE sku LIKE 'PGB-%' ORDER BY sku").splitlines()
    script = os.path.join(ROOT, "scripts", "bench", "order_tx.sql")
    output = run([os.path.join(PG_BIN, "pgbench"), "-n", "-M", "extended", "-c", str(clients), "-j", str(min(clients, CORES)),
                  "-T", str(seconds), "-f", script, "-D", f"user_id={user_id}", "-D", f"p1={products[0]}", "-D", f"p2={products[1]}",
                  "-D", f"p3={products[2]}", db.url], env=env, timeout=for_seconds(seconds))
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    return {"clients": clients, "seconds": seconds, "tps": tps, "latency_avg_ms": latency}


SAGA_SCRIPT = os.path.join(ROOT, "scripts", "bench", "saga_tx.sql")


def saga_shape(script):
    """Transactions, statements and commits of the saga script: what one order costs at the
    least in round trips to PostgreSQL when every worker handles one message at a time."""
    commands, current = [], []
    with open(script) as f:
        for line in f:
            stripped = line.strip()
            if not stripped or stripped.startswith("--") or stripped.startswith("\\"):
                continue
            current.append(stripped)
            if stripped.endswith(";"):
                commands.append(" ".join(current).upper())
                current = []
    transactions = statements = autocommits = 0
    inside = False
    for command in commands:
        if command.startswith("BEGIN"):
            inside = True
        elif command.startswith("END") or command.startswith("COMMIT"):
            inside = False
            transactions += 1
        else:
            statements += 1
            if not inside:
                autocommits += 1
    return {"transactions": transactions + autocommits, "statements": statements, "commits": transactions + autocommits}


# (a''): the floor of a leaner saga. Not Emporium's code: the saga script without the four hops
# a saga with fewer events could drop, to measure what dropping them could buy before anyone
# rebuilds the saga for it. What it keeps, statement for statement: the cart refill, the
# placement, the stock reservation, the charge (with the fake provider's ledger), the
# confirmation and the customer's email, each with its inbox row, its outbox row and its
# after-publish mark; so the order and its event commit together, every effect commits with
# its inbox row, stock is taken under the products' locks with the conditional update, the
# charge keeps its idempotency key, and each of the four roles has its own transactions.
# What it drops (the sections of saga_tx.sql, by the number their comment starts with):
LEAN_DROPPED_SECTIONS = {
    "3": "the notification worker's order.placed hop: merchant webhooks queued only when an endpoint is registered (none is here)",
    "4": "the order worker's stock.reserved hop: the payment worker charges on stock.reserved itself; no AWAITING_PAYMENT",
    "7": "the notification worker's payment.succeeded hop, as for 3",
    "8": "the stock worker's order.confirmed hop: a reservation counts as sold once its order is confirmed",
}
# ... and without AWAITING_PAYMENT, the confirmation moves the order from PENDING.
LEAN_REPLACEMENTS = [("ANY(ARRAY['AWAITING_PAYMENT'])", "ANY(ARRAY['PENDING'])"), ("'AWAITING_PAYMENT', 'CONFIRMED'", "'PENDING', 'CONFIRMED'")]


def leaner(script, into):
    """The saga script without LEAN_DROPPED_SECTIONS (a section runs from a comment line
    `-- N. ...` to the next such line), with LEAN_REPLACEMENTS applied to what is left."""
    kept, dropping = [], False
    with open(script) as f:
        for line in f:
            numbered = re.match(r"-- (\d+)\. ", line)
            if numbered:
                dropping = numbered.group(1) in LEAN_DROPPED_SECTIONS
            if not dropping:
                kept.append(line)
    text = "".join(kept)
    for old, new in LEAN_REPLACEMENTS:
        if old not in text:
            fail(f"{script}: the leaner saga's replacement finds no {old!r}; update LEAN_REPLACEMENTS")
        text = text.replace(old, new)
    with open(into, "w") as f:
        f.write(text)
    return into


def pipelined(script, into):
    """The saga script with each BEGIN … END sent as one pipeline (one round trip)."""
    with open(script) as f:
        text = f.read()
    lines = []
    for line in text.splitlines():
        if line == "BEGIN;":
            lines.append("\\startpipeline")
        lines.append(line)
        if line == "END;":
            lines.append("\\endpipeline")
    text = "\n".join(lines) + "\n"
    with open(into, "w") as f:
        f.write(text)
    return into


def saga_floor(admin, parsed, env, clients, seconds, accounting):
    """(a'): pgbench running every transaction of one order's saga (scripts/bench/saga_tx.sql),
    plain and pipelined, on a database of its own that is migrated like Emporium's; then
    (a''), the same for the leaner saga (``leaner``), under figures["lean"]."""
    name = "emporium_bench_saga"
    drop_database(admin, name, required=True)
    admin.query(f"CREATE DATABASE {name}")
    saga_db = Database(urllib.parse.urlunsplit(parsed._replace(path=f"/{name}")))
    try:
        run([os.path.join(BIN, "emporium"), "migrate"], env=dict(env, DATABASE_URL=saga_db.url))
        uid = "('00000000-0000-4000-0009-' || lpad(to_hex(c::int8), 12, '0'))::uuid"
        saga_db.query(f"INSERT INTO users (id, email, password_hash, first_name, last_name) SELECT {uid}, 'saga-' || c || '@emporium.local', 'x', 'Saga', 'Bench'"
                      f" FROM generate_series(0, {clients - 1}) c")
        saga_db.query(f"INSERT INTO carts (id, user_id) SELECT {uid}, {uid} FROM generate_series(0, {clients - 1}) c")
        saga_db.query("INSERT INTO products (id, sku, name, price_cents, currency, stock) SELECT ('00000000-0000-4000-0008-' || lpad(to_hex(i::int8), 12, '0'))::uuid,"
                      " 'SAGA-' || i, 'Saga item ' || i, 1000, 'EUR', 100000000 FROM generate_series(1, 100) i")
        saga_db.query("VACUUM ANALYZE")

        # (a'') the leaner saga runs beside (a'), each mode of one right after the same mode
        # of the other, so a slow minute of the shared host weighs on both alike.
        figures = saga_shape(SAGA_SCRIPT)
        lean_script = leaner(SAGA_SCRIPT, os.path.join(LOGS, "saga_lean_tx.sql"))
        figures["lean"] = saga_shape(lean_script)
        for mode in ("plain", "pipelined"):
            for into, script, label in ((figures, SAGA_SCRIPT, "saga_tx"), (figures["lean"], lean_script, "saga_lean_tx")):
                into.update({"clients": clients, "seconds": seconds})
                if mode == "pipelined":
                    script = pipelined(script, os.path.join(LOGS, f"{label}_pipelined.sql"))
                accounting.start()
                output = run([os.path.join(PG_BIN, "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, CORES)),
                              "-T", str(seconds), "-f", script, saga_db.url], env=env, timeout=for_seconds(seconds))
                usage = accounting.stop(exited="pgbench")
                tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
                sagas = max(1.0, tps * seconds)
                cpu = usage["cpu_seconds"]
                into[mode] = {"tps": tps, "cpu_ms": round(sum(cpu.values()) * 1000 / sagas, 3),
                              "postgres_ms": round(cpu.get("PostgreSQL", 0) * 1000 / sagas, 3),
                              "client_ms": round(cpu.get("pgbench", 0) * 1000 / sagas, 3), "cpu": usage}
                log(f"    {label} {mode}: {tps:.0f} sagas/s; CPU: " + cpu_line(usage))
        return figures
    finally:
        drop_database(admin, name, required=False)


PEER_DIR = os.path.join(ROOT, "scripts", "bench", "peer")
# The peer shop (h): what a user choosing a Python shop would install, pinned so runs compare.
PEER_PACKAGES = ["django-oscar==3.2.6", "django-oscar-api==3.3.0", "psycopg2-binary==2.9.10", "gunicorn==23.0.0", "requests==2.32.3"]


def peer_python():
    """The peer's virtualenv (.local/peer-venv, from PyPI on first use) and its Python."""
    venv = os.path.join(ROOT, ".local", "peer-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        run([sys.executable, "-m", "venv", venv])
    if subprocess.run([python, "-c", "import oscarapi, gunicorn, psycopg2, requests"], capture_output=True).returncode != 0:
        log("    installing the peer shop into .local/peer-venv: " + " ".join(PEER_PACKAGES))
        run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEER_PACKAGES], timeout=1200)
    return venv, python


def peer_shop(admin, parsed, clients, seconds, workers, port, accounting):
    """(h): django-oscar with django-oscar-api under gunicorn (`workers` sync workers) on a
    database of its own on the same PostgreSQL; `clients` customers each add three products
    to a basket over the REST API and check out, back to back, for `seconds`."""
    name = "emporium_bench_peer"
    drop_database(admin, name, required=True)
    admin.query(f"CREATE DATABASE {name}")
    venv, python = peer_python()
    env = dict(os.environ, PEER_DATABASE_URL=urllib.parse.urlunsplit(parsed._replace(path=f"/{name}")), PYTHONPATH=PEER_DIR)
    server = None
    try:
        products = json.loads(run([python, os.path.join(PEER_DIR, "oscar_peer.py"), "setup"], env=env))["products"]
        logfile = open(os.path.join(LOGS, "peer-gunicorn.log"), "wb")  # the peer starts once per run
        server = subprocess.Popen([os.path.join(venv, "bin", "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                                   "--chdir", PEER_DIR, "oscar_wsgi:application"], env=env, stdout=logfile, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/", timeout=2)
                break
            except Exception:
                time.sleep(0.5)
        else:
            fail(f"the peer shop did not start; see {LOGS}/peer-gunicorn.log")
        load = [python, os.path.join(PEER_DIR, "oscar_peer.py"), "load", url, str(clients)]
        # A short warm-up, so that every worker has imported its views before the measurement.
        run(load + ["3", json.dumps(products)], env=env)
        accounting.start()
        report = json.loads(run(load + [str(seconds), json.dumps(products)], env=env))
        report["cpu"] = accounting.stop(exited="peer load generator")
        report.update({"clients": clients, "workers": workers, "packages": PEER_PACKAGES})
        return report
    finally:
        if server:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        drop_database(admin, name, required=False)


def statement_stats(db):
    """pg_stat_statements for the bench database: query -> (calls, total ms planning + executing)."""
    try:
        rows = db.query(
            "SELECT calls, total_plan_time + total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    except SystemExit:
        return None
    stats = {}
    for line in rows.splitlines():
        calls, ms, query = line.split("|", 2)
        previous = stats.get(query, (0, 0.0))
        stats[query] = (previous[0] + int(calls), previous[1] + float(ms))
    return stats


def drop_database(admin, name, required):
    """Drops the bench database. `WITH (FORCE)` ends the sessions on it, but not an autovacuum
    worker the bench user may not signal (after a heavy phase one is often still at work):
    retried for a while; at the end of a run a leftover database only warns (the next run
    drops it first). Its pg_stat_statements entries go first (best effort): they outlive the
    database, and runs that leave theirs behind fill the table (see `instance_state`)."""
    superuser_psql(name, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
                         " SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database()")
    for _ in range(30):
        try:
            dropped = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", admin.url, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                                     capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if dropped.returncode == 0:
            return
        time.sleep(1)
    if required:
        fail(f"cannot drop the database {name}")
    log(f"warning: the database {name} could not be dropped; the next run drops it")


def instance_state(bench_db_name, app_db_name):
    """What the PostgreSQL instance carries into the run: databases other than its own, the
    application's and the bench's (test suites leave theirs behind when their process dies),
    and how full pg_stat_statements is. A full table evicts entries in bulk under an exclusive
    lock; the run of 2026-12-05 21:59, on an instance that had served the tests (4,764 of
    5,000 entries, 72 leftover test databases), confirmed 46 orders/s, and the first run on
    a fresh instance, same code, 223/s. None if the superuser cannot read it."""
    # The names are compared here, not in SQL, so no setting is ever spliced into a statement.
    names = superuser_psql(bench_db_name, "SELECT datname FROM pg_database WHERE NOT datistemplate")
    out = superuser_psql(bench_db_name, (
        "SELECT (SELECT count(*) FROM pg_stat_statements), current_setting('pg_stat_statements.max'),"
        " (SELECT dealloc FROM pg_stat_statements_info)"))
    try:
        entries, capacity, deallocs = (int(v) for v in out.strip().split("|"))
        others = len(set(names.splitlines()) - {"postgres", app_db_name, bench_db_name})
    except (AttributeError, ValueError):
        return None
    state = {"other_databases": others, "statement_entries": entries, "statement_capacity": capacity,
             "statement_deallocations": deallocs}
    state["used"] = others > 0 or entries > 0.8 * capacity or deallocs > 0
    return state


def instance_line(state):
    """The results block's line on the instance; says so when its figures may not compare."""
    if state is None:
        return "PostgreSQL instance: not read (it needs a superuser session and pg_stat_statements)"
    line = (f"PostgreSQL instance at the start: other databases {state['other_databases']}, pg_stat_statements"
            f" {state['statement_entries']} of {state['statement_capacity']} entries, {state['statement_deallocations']} deallocations")
    if state["used"]:
        line += ("; it has served other work (the tests?): not comparable with a run on a fresh instance"
                 " (`make stop`, then move .local/pg/data aside)")
    return line


def database_counters(db):
    """Commits of the bench database and the cluster's WAL (bytes written, fsyncs)."""
    try:
        commits = int(db.value("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))
        wal_bytes, wal_syncs = db.query("SELECT wal_bytes::int8, wal_sync FROM pg_stat_wal").strip().split("|")
        return {"commits": commits, "wal_bytes": int(wal_bytes), "wal_syncs": int(wal_syncs)}
    except (SystemExit, ValueError):
        return None


def table_writes(db):
    """Rows each table of the bench database took so far: inserted, updated (and of those, HOT:
    no index touched, the new version on the same page), deleted. pg_stat_user_tables counts
    a backend's writes when its transaction ends, so read it with the backends idle."""
    try:
        rows = db.query("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables")
    except SystemExit:
        return None
    counts = {}
    for row in rows.strip().splitlines():
        name, *numbers = row.split("|")
        counts[name] = [int(n) for n in numbers]
    return counts


def row_writes(before, after, orders):
    """Per order, the rows each table took during a phase, and the share of updates that were
    HOT: an update that is not HOT writes a new entry into every index of its table."""
    if before is None or after is None:
        return None
    tables = {}
    for name, now in after.items():
        inserted, updated, hot, deleted = (n - w for n, w in zip(now, before.get(name, [0, 0, 0, 0])))
        if inserted or updated or deleted:
            tables[name] = {"inserted": round(inserted / orders, 2), "updated": round(updated / orders, 2),
                            "hot_share": round(hot / updated, 2) if updated else None, "deleted": round(deleted / orders, 2)}
    return dict(sorted(tables.items(), key=lambda item: -(item[1]["inserted"] + item[1]["updated"] + item[1]["deleted"])))


# Counters the API and the workers keep (GET /metrics), read around each (e) window: the
# client's side of what the server's statistics cannot show.
PROCESS_COUNTERS = {
    "postgres_round_trips_total": "round_trips",  # a statement, or a whole pipeline, sent and answered
    "messages_consumed_total": "deliveries_handled",  # every delivery a worker handled, duplicates included
    "messages_duplicate_total": "duplicates_skipped",  # found in the inbox: acked, effects skipped
    "messages_acked_total": "messages_acked",
    "amqp_ack_frames_total": "ack_frames",  # basic.ack frames sent: a batch's run from the oldest unsettled delivery is one
}


def per_order(before, after, cpu, orders):
    """What one confirmed order cost during a phase: CPU by component, commits, WAL."""
    figures = {"orders": orders, "cpu_ms": {k: round(v * 1000 / orders, 2) for k, v in cpu["cpu_seconds"].items()}}
    figures["cpu_ms_total"] = round(sum(figures["cpu_ms"].values()), 2)
    if "postgres_by_client" in cpu:
        figures["postgres_ms_by_client"] = {k: round(v * 1000 / orders, 3) for k, v in cpu["postgres_by_client"].items()}
    if before and after:
        for key in ("commits", "wal_bytes", "wal_syncs"):
            figures[key] = round((after[key] - before[key]) / orders, 2)
    return figures


def statement_profile(before, after, orders):
    """The statements that took the server's time during a phase, per order."""
    if before is None or after is None:
        return None
    rows = []
    for query, (calls, ms) in after.items():
        was = before.get(query, (0, 0.0))
        if calls - was[0] > 0:
            rows.append({"query": query[:110], "calls_per_order": round((calls - was[0]) / orders, 2), "ms_per_order": round((ms - was[1]) / orders, 3)})
    rows.sort(key=lambda row: -row["ms_per_order"])
    total_calls = sum(row["calls_per_order"] for row in rows)
    total_ms = sum(row["ms_per_order"] for row in rows)
    return {"statements_per_order": round(total_calls, 1), "server_ms_per_order": round(total_ms, 2), "top": rows[:15]}


def raw_broker(amqp, vhost, mode, count, size_or_ack_every, window):
    """The raw rabbitmq-c tool: `publish` COUNT messages with confirms, or `consume` them with
    one `multiple` ack per ACK_EVERY messages."""
    output = run([PUBLISHER, mode, amqp["host"], str(amqp["port"]), amqp["user"], amqp["password"], vhost, "bench.raw-broker",
                  str(count), str(size_or_ack_every), str(window)])
    return json.loads(output)


def queue_depths(vhost):
    """Messages (ready and unacknowledged) in each queue of the vhost."""
    output = run([os.path.join(ROOT, "scripts", "rabbitmqctl"), "-q", "list_queues", "-p", vhost, "name", "messages"], timeout=60)
    depths = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


def payment_queue_depth(vhost):
    return next((depth for name, depth in queue_depths(vhost).items() if name.endswith(".payment")), 0)


def wait_drained(db, vhost, timeout=300):
    """Waits until no outbox row is unpublished and every queue but the dead-letter queues is
    empty (retry queues included): the saga's tail (`order.confirmed`'s consumers, the outbox
    marks) belongs to the window that caused it. Returns the seconds waited, or None when the
    deadline passed (the figures then miss some of that tail, and say so)."""
    began = time.monotonic()
    while True:
        unpublished = int(db.value("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        busy = {name: depth for name, depth in queue_depths(vhost).items() if depth and not name.endswith(".dlq")}
        if unpublished == 0 and not busy:
            return round(time.monotonic() - began, 1)
        if time.monotonic() - began > timeout:
            log(f"warning: not drained after {timeout} s: {unpublished} outbox rows unpublished, queues {busy}")
            return None
        time.sleep(0.5)


def log_lines():
    """Lines written so far to the stack's log files (one file per process, emptied when a run starts)."""
    total = 0
    for name in os.listdir(LOGS):
        if name.endswith(".log"):
            with open(os.path.join(LOGS, name), "rb") as f:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return total


def api_placement_times(offset):
    """The API's own time for each order it placed (201) after byte `offset` of its log, from
    its access lines (`duration_ms`: from the router's first middleware to the response handed
    back, so without the connection's accept, the request's read and the response's write), as
    percentiles in ms; None without such lines. Beside the generator's figures it shows how
    much of a placement's latency the API spent, and how much was spent around it: in the
    generator, which shares the cores, and in the kernel between the two."""
    durations = []
    try:
        with open(os.path.join(LOGS, "API.log"), "rb") as f:
            f.seek(offset)
            for line in f:
                if b'"/api/v1/orders"' not in line or b'"http.status":"201"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                    if entry.get("http.method") == "POST" and entry.get("http.path") == "/api/v1/orders":
                        durations.append(float(entry["duration_ms"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a line cut short by a crash, or not an access line: not a placement's time
    except OSError:
        return None
    if not durations:
        return None
    durations.sort()
    rank = lambda q: durations[min(len(durations) - 1, max(0, math.ceil(q * len(durations)) - 1))]  # nearest rank
    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "p999": rank(0.999), "max": durations[-1], "count": len(durations)}


def api_log_size():
    """Where the API's log ends now (0 if it has none yet)."""
    try:
        return os.path.getsize(os.path.join(LOGS, "API.log"))
    except OSError:
        return 0


def scaling_round(stack, db, env, url, replicas, latency_ms, prefetch, orders, accounting):
    """Queues `orders` payment requests with no payment worker running, then starts `replicas`
    workers and measures how fast they drain the backlog, from the payments' own timestamps."""
    since = db.value("SELECT now()")
    report = emporium_bench(env, url, "--rate", 200, "--duration", max(1, round(orders / 200)), "--customers", 100, "--settle-timeout", 0)
    placed = report["placed"]
    deadline = time.monotonic() + 120
    while True:
        waiting = int(db.value(f"SELECT count(*) FROM orders WHERE created_at >= '{since}' AND status = 'AWAITING_PAYMENT'"))
        unpublished = int(db.value("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        if waiting >= placed and unpublished == 0 and payment_queue_depth(stack.env["BENCH_VHOST"]) >= placed:
            break
        if time.monotonic() > deadline:
            fail(f"scaling: {waiting} of {placed} orders AWAITING_PAYMENT, {unpublished} outbox rows unpublished,"
                 f" {payment_queue_depth(stack.env['BENCH_VHOST'])} messages in the payment queue after 2 minutes")
        time.sleep(0.5)
    names = [f"payment worker {i + 1}" for i in range(replicas)]
    for name in names:
        stack.start(name, "emporium-payment-worker", {"PAYMENT_PROVIDER_LATENCY_MS": str(latency_ms), "WORKER_PREFETCH": str(prefetch)})
    deadline = time.monotonic() + 600
    while int(db.value(f"SELECT count(*) FROM payments WHERE created_at >= '{since}' AND status = 'SUCCEEDED'")) < placed:
        if time.monotonic() > deadline:
            fail("scaling: the payment workers did not drain the backlog within 10 minutes")
        time.sleep(0.5)
    first, last, count = db.query(
        f"SELECT extract(epoch FROM min(updated_at)), extract(epoch FROM max(updated_at)), count(*) FROM payments "
        f"WHERE created_at >= '{since}' AND status = 'SUCCEEDED'").split("|")
    rss = {name: peak_rss(stack.processes[name].pid) for name in names}
    cpu = accounting.stop()
    for name in names:
        stack.stop(name)
    per_second = (int(count) - 1) / max(1e-6, float(last) - float(first))
    return {"replicas": replicas, "payments": int(count), "seconds": round(float(last) - float(first), 2), "per_second": round(per_second, 1),
            "rss_bytes": rss, "cpu": cpu}


# ---------------------------------------------------------------------------------------------


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) // 1024 // 1024
    swift = run(["swift", "--version"], check=False).strip().splitlines()
    postgres = run([os.path.join(PG_BIN, "postgres"), "--version"], check=False).strip()
    rabbit = run([os.path.join(ROOT, "scripts", "rabbitmqctl"), "-q", "version"], check=False).strip()
    librabbitmq = run(["pkg-config", "--modversion", "librabbitmq"], check=False).strip()
    return {
        "cpu": cpu, "cores": CORES, "memory_gib": memory, "kernel": platform.release(),
        "os": run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"], check=False).strip(),
        "swift": swift[0] if swift else "unknown", "postgresql": postgres, "rabbitmq": rabbit, "librabbitmq": librabbitmq,
    }


def phase_cpu_ms(results, phase, units):
    """CPU milliseconds per unit of work (transaction, message) over everything a phase used."""
    usage = results["cpu"].get(phase)
    if not usage or not units:
        return None
    return sum(usage["cpu_seconds"].values()) * 1000 / units


def mib(value):
    return value / 1024 / 1024


def cpu_ceiling(postgres_ms):
    """What the host's cores could do at most with PostgreSQL's CPU per saga alone (nothing
    else running): a ceiling that a slow minute of the shared host does not move the way it
    moves sagas/s."""
    if not postgres_ms:
        return ""
    return f"; PostgreSQL alone on {CORES} cores: at most {CORES * 1000 / postgres_ms:.0f} sagas/s"


def add_saga_modes(add, figures, versus=None):
    """A saga floor's plain and pipelined lines; with `versus`, each rate also as a ratio to it."""
    for mode in ("plain", "pipelined"):
        m_ = figures[mode]
        ratio = f" = {m_['tps'] / versus[mode]['tps']:.2f} x (a')" if versus else ""
        add(f"      {mode:>9}: {m_['tps']:.0f} sagas/s{ratio}, {m_['cpu_ms']:.2f} ms of CPU per saga (PostgreSQL {m_['postgres_ms']:.2f},"
            f" pgbench {m_['client_ms']:.2f}){cpu_ceiling(m_['postgres_ms'])}")


def render(results):
    """The report: every figure, its baseline ratio and its target."""
    m, a, b = results["machine"], results["pgbench"], results["publisher"]
    peak, rates, e2e, scaling, memory = results["peak"], results["rates"], results["end_to_end"], results["scaling"], results["memory"]
    lines = []
    add = lines.append
    add(f"Run {results['started']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}, kernel {m['kernel']}")
    add(f"{m['swift']}; {m['postgresql']}; RabbitMQ {m['rabbitmq']}; librabbitmq {m['librabbitmq']}; release build")
    if "instance" in results:
        add(instance_line(results["instance"]))
    add("")
    add("Baselines (same machine, same run)")
    add(f"  (a) pgbench, order + 3 items + outbox row, {a['clients']} clients, {a['seconds']} s: {a['tps']:.0f} tx/s (latency avg {a['latency_avg_ms']:.2f} ms)")
    floor_tx = phase_cpu_ms(results, "(a) pgbench", a["tps"] * a["seconds"])
    if floor_tx:
        add(f"      = {floor_tx:.2f} ms of CPU per transaction (PostgreSQL and pgbench)")
    saga = results.get("saga_floor")
    if saga:
        add(f"  (a') pgbench, every transaction of one order's saga as Emporium runs it ({saga['transactions']} transactions,"
            f" {saga['statements']} statements, {saga['commits']} commits), {saga['clients']} clients, {saga['seconds']} s each:")
        add_saga_modes(add, saga)
        lean = saga.get("lean")
        if lean:
            add(f"  (a'') the same for a leaner saga that keeps every guarantee and the four roles, four hops fewer (saga_tx.sql without"
                f" its sections {', '.join(sorted(LEAN_DROPPED_SECTIONS))}; not Emporium's code) ({lean['transactions']} transactions, {lean['statements']} statements, {lean['commits']} commits):")
            add_saga_modes(add, lean, versus=saga)
    add(f"  (b) raw rabbitmq-c publisher, {b['size']} B persistent to a quorum queue, confirms, window {b['window']}: {b['per_second']:.0f} msg/s ({b['messages']} messages)")
    publish_ms = phase_cpu_ms(results, "(b) raw publisher", b["messages"])
    if publish_ms:
        add(f"      = {publish_ms * 1000:.0f} µs of CPU per message published (RabbitMQ and the publisher)")
    consumer = results.get("consumer")
    consume_ms = phase_cpu_ms(results, "(b) raw consumer", consumer["messages"]) if consumer else None
    if consumer and consume_ms:
        add(f"      raw consumer, prefetch {consumer['window']}, one multiple ack per {consumer['size']}: {consumer['per_second']:.0f} msg/s"
            f" = {consume_ms * 1000:.0f} µs of CPU per message consumed")
    add("")
    add("Emporium")
    verdicts = []

    def verdict(name, met, figure, target):
        verdicts.append((name, met, figure, target))

    pl = peak["placement_latency_ms"] or {}
    ratio = peak["placement_throughput"] / a["tps"]
    add(f"  (c) placement peak, {peak['concurrency']} clients, {peak['duration_seconds']:.0f} s: {peak['placement_throughput']:.0f} orders/s"
        f" = {ratio:.2f} x pgbench; p50 {pl.get('p50')} ms, p99 {pl.get('p99')} ms; errors {peak['errors']}")
    verdict("Placement peak ≥ 0.7 × pgbench", ratio >= 0.7, f"{peak['placement_throughput']:.0f}/s = {ratio:.2f} ×", "≥ 0.70 ×")
    purchase = results.get("purchase_peak")
    if purchase:
        purchase_ms = phase_cpu_ms(results, "(c') whole purchases over the API", max(1, purchase["placed"]))
        add(f"  (c') whole purchases over the API, {purchase['concurrency']} clients, {purchase['duration_seconds']:.0f} s"
            f" ({purchase.get('lines', 3)} cart requests and the order each; the saga drained in the window): {purchase['placement_throughput']:.0f} orders/s,"
            f" {purchase['confirmed']} confirmed, errors {purchase['errors']}; {purchase_ms:.1f} ms of CPU per order, everything included")
    add("  (d) placement latency at fixed offered rates (open loop, from each order's scheduled arrival):")
    for r in rates:
        p = r["placement_latency_ms"] or {}
        share = f" ({r['peak_fraction']:.0%} of peak)" if r.get("peak_fraction") else ""
        add(f"      {r['offered_rate']:>5.0f}/s offered{share}: {r['placement_throughput']:.0f}/s placed, p50 {p.get('p50')} p90 {p.get('p90')} p99 {p.get('p99')}"
            f" p99.9 {p.get('p999')} max {p.get('max')} ms; errors {r['errors']}, dropped {r['dropped']}")
        a = r.get("api_placement_ms")
        if a:
            add(f"             of which in the API (its access log, {a['count']} placements): p50 {a['p50']} p90 {a['p90']} p99 {a['p99']}"
                f" p99.9 {a['p999']} max {a['max']} ms")
    half = [r for r in rates if r.get("peak_fraction") == 0.5]
    target_rate = half[0] if half else max(rates, key=lambda r: r["offered_rate"])
    p99 = (target_rate["placement_latency_ms"] or {}).get("p99", float("inf"))
    met = p99 <= 25 and target_rate["errors"] == 0 and target_rate["dropped"] == 0
    where = "50% of peak" if half else f"{target_rate['offered_rate']:.0f}/s"
    verdict(f"Placement p99 ≤ 25 ms at {where} ({target_rate['offered_rate']:.0f}/s) with the saga running, no errors", met,
            f"p99 {p99} ms, {target_rate['errors']} errors", "≤ 25 ms, 0 errors")
    c = e2e["confirm_latency_ms"] or {}
    messages = results["messages_per_order"]
    broker_rate = e2e["end_to_end_throughput"] * messages
    add(f"  (e) end to end, {e2e['offered_rate']:.0f}/s offered for {e2e['duration_seconds']:.0f} s: {e2e['placed']} placed, {e2e['confirmed']} confirmed,"
        f" {e2e['cancelled']} cancelled, {e2e['not_terminal']} not terminal; {e2e['end_to_end_throughput']:.0f} orders/s confirmed")
    add(f"      errors {e2e['errors']} {e2e['errors_by_status'] or ''} (503: the API shed load when no database connection freed up in time),"
        f" dropped {e2e['dropped']} (arrivals with every bench customer still waiting)")
    add(f"      placed -> confirmed p50 {c.get('p50')} p99 {c.get('p99')} max {c.get('max')} ms;"
        f" {messages:.1f} messages per order = {broker_rate:.0f} msg/s = {broker_rate / b['per_second']:.2f} x the raw publisher")
    met = (e2e["end_to_end_throughput"] >= 500 and e2e["not_terminal"] == 0 and e2e["errors"] == 0 and e2e["dropped"] == 0
           and e2e["duration_seconds"] >= 59)
    verdict("End to end ≥ 500 orders/s for 60 s, all terminal, 0 errors, 0 dropped", met,
            f"{e2e['end_to_end_throughput']:.0f}/s, {e2e['not_terminal']} not terminal, {e2e['errors']} errors, {e2e['dropped']} dropped",
            "≥ 500/s, 0 open, 0 errors, 0 dropped")
    cost = results.get("per_confirmed_order")
    if cost:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in cost["cpu_ms"].items())
        add(f"      per confirmed order: {cost['cpu_ms_total']:.2f} ms of CPU ({parts} ms)")
        if cost.get("postgres_ms_by_client"):
            clients_ = ", ".join(f"{k} {v:.2f}" for k, v in cost["postgres_ms_by_client"].items() if v >= 0.005)
            add(f"      PostgreSQL's share by the session its backend serves (application_name): {clients_} ms")
        if floor_tx:
            add(f"      = {cost['cpu_ms_total'] / floor_tx:.0f} x the CPU of one pgbench order transaction ({floor_tx:.2f} ms, PostgreSQL and pgbench)")
        published, consumed = cost.get("messages_published"), cost.get("messages_consumed")
        if saga and publish_ms and consume_ms and published is not None:
            broker_floor = published * publish_ms + consumed * consume_ms
            total_floor = saga["plain"]["cpu_ms"] + broker_floor
            add(f"      against the floors: PostgreSQL {cost['cpu_ms'].get('PostgreSQL', 0):.2f} ms = {cost['cpu_ms'].get('PostgreSQL', 0) / saga['plain']['postgres_ms']:.1f} x"
                f" the saga's transactions in pgbench ({saga['plain']['postgres_ms']:.2f} ms plain, {saga['pipelined']['postgres_ms']:.2f} ms pipelined);"
                f" RabbitMQ {cost['cpu_ms'].get('RabbitMQ', 0):.2f} ms = {cost['cpu_ms'].get('RabbitMQ', 0) / broker_floor:.1f} x raw rabbitmq-c for"
                f" {published:.1f} publishes and {consumed:.1f} consumptions ({broker_floor:.2f} ms, tool included);"
                f" everything {cost['cpu_ms_total']:.2f} ms = {cost['cpu_ms_total'] / total_floor:.1f} x both floors together ({total_floor:.2f} ms)")
        if "commits" in cost:
            add(f"      and {cost['commits']:.1f} commits, {cost['wal_bytes'] / 1024:.1f} KiB of WAL, {cost['wal_syncs']:.2f} WAL fsyncs"
                f" (pgbench's order transaction: 1 commit)")
        if published is not None:
            add(f"      and {published:.2f} messages published, {consumed:.2f} consumed (inbox claims), {cost['log_lines']:.1f} log lines per order placed")
        if cost.get("round_trips") is not None:
            add(f"      and {cost['round_trips']:.2f} PostgreSQL round trips (API and workers, counted by the client), {cost['deliveries_handled']:.2f} deliveries handled,"
                f" {cost['duplicates_skipped']:.2f} duplicates skipped, {cost['messages_acked']:.2f} acked in {cost.get('ack_frames', 0):.2f} ack frames per order placed")
        if cost.get("row_writes"):
            add("      rows written per order placed, by table (inserted / updated, HOT share of the updates / deleted):")
            for table, w in cost["row_writes"].items():
                hot = "-" if w["hot_share"] is None else f"{w['hot_share'] * 100:.0f}% HOT"
                add(f"        {table}: {w['inserted']:.2f} / {w['updated']:.2f}, {hot} / {w['deleted']:.2f}")
        runs = results.get("end_to_end_runs") or []
        if len(runs) > 1:
            rates_ = [r["end_to_end_throughput"] for r in runs]
            cpus = [r["per_confirmed_order"]["cpu_ms_total"] for r in runs]
            add(f"      {len(runs)} runs, each from drained to drained: {' / '.join(f'{x:.0f}' for x in rates_)} orders/s confirmed"
                f" (median {sorted(rates_)[len(rates_) // 2]:.0f}, spread {min(rates_):.0f}–{max(rates_):.0f});"
                f" CPU per confirmed order {' / '.join(f'{x:.1f}' for x in cpus)} ms (median {sorted(cpus)[len(cpus) // 2]:.1f});"
                f" dropped {' / '.join(str(r['dropped']) for r in runs)}; figures above: the median run")
        verdict("CPU per confirmed order ≤ 4 ms", cost["cpu_ms_total"] <= 4, f"{cost['cpu_ms_total']:.2f} ms", "≤ 4 ms")
    base = scaling[0]["per_second"]
    add(f"  (f) payment workers, provider {results['provider_latency_ms']} ms, prefetch {results['payment_prefetch']} per replica, backlog drained:")
    for s in scaling:
        add(f"      {s['replicas']} replica(s): {s['per_second']:.1f} payments/s ({s['payments']} in {s['seconds']} s) = {s['per_second'] / base:.2f} x one replica")
    top = scaling[-1]
    verdict(f"Payment scaling {top['replicas']} replicas ≥ 3.6 × one", top["per_second"] / base >= 3.6, f"{top['per_second'] / base:.2f} ×", "≥ 3.6 ×")
    add("  (g) peak resident memory (VmHWM) after (c) to (e), payment replicas after (f):")
    for name, size in sorted(memory.items()):
        limit = 200 if name == "API" else 64
        add(f"      {name}: {mib(size):.1f} MiB (target ≤ {limit} MiB)")
        verdict(f"Memory {name} ≤ {limit} MiB", mib(size) <= limit, f"{mib(size):.1f} MiB", f"≤ {limit} MiB")
    peer = results.get("peer")
    if peer:
        peer_ms = sum(peer["cpu"]["cpu_seconds"].values()) * 1000 / max(1, peer["orders"])
        parts = ", ".join(f"{k} {v * 1000 / max(1, peer['orders']):.1f}" for k, v in peer["cpu"]["cpu_seconds"].items())
        add(f"  (h) peer: {' + '.join(p.split('==')[0] + ' ' + p.split('==')[1] for p in peer['packages'][:2])}, gunicorn with {peer['workers']} sync workers,"
            f" the same PostgreSQL; {peer['clients']} clients, {peer['seconds']:.0f} s, three add-to-basket requests and a REST checkout per order:")
        add(f"      {peer['per_second']:.1f} orders/s, errors {peer['errors']}; {peer_ms:.0f} ms of CPU per order ({parts} ms)")
        if purchase and purchase_ms:
            add(f"      Emporium's whole purchases (c'): {purchase['placement_throughput']:.0f} orders/s = {purchase['placement_throughput'] / max(0.01, peer['per_second']):.1f} x,"
                f" {purchase_ms:.1f} ms of CPU per order = {peer_ms / purchase_ms:.1f} x less, with the saga to CONFIRMED"
                f" (stock, payment, notification) included, which the peer's checkout does not do")
    add("")
    add("CPU seconds by component per phase (the profile: where the cores went)")
    for phase, usage in results["cpu"].items():
        wall = usage["wall_seconds"]
        parts = ", ".join(f"{k} {v:.1f}" for k, v in usage["cpu_seconds"].items())
        total = sum(usage["cpu_seconds"].values())
        add(f"  {phase} ({wall:.0f} s wall, {total / wall / CORES * 100:.0f}% of {CORES} cores): {parts}")
    profile = results.get("statements")
    if profile:
        add("")
        add(f"PostgreSQL statements during (e), per order placed: {profile['statements_per_order']} statements,"
            f" {profile['server_ms_per_order']} ms of server time (pg_stat_statements); the costliest:")
        for row in profile["top"][:12]:
            add(f"  {row['ms_per_order']:7.3f} ms  {row['calls_per_order']:5.2f} x  {row['query']}")
    add("")
    add("Targets")
    for name, met, figure, target in verdicts:
        add(f"  [{'met' if met else 'NOT MET'}] {name}: {figure} (target {target})")
    return "\n".join(lines), verdicts


def write_markdown(path, text, results):
    begin, end = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
    block = f"{begin}\n```\n{text}\n```\n\nRaw figures: `BENCHMARKS.json`.\n{end}"
    if os.path.exists(path):
        with open(path) as f:
            current = f.read()
        if begin in current and end in current:
            content = current[:current.index(begin)] + block + current[current.index(end) + len(end):]
        else:
            content = current.rstrip() + "\n\n" + block + "\n"
    else:
        content = f"# Benchmarks\n\nWritten by `make bench`.\n\n{block}\n"
    with open(path, "w") as f:
        f.write(content)
    with open(os.path.join(os.path.dirname(path), "BENCHMARKS.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


def stop_on_signal(signum, _frame):
    """SIGTERM or SIGHUP (a `kill` of the bench, a closed terminal) unwinds like Ctrl-C: the
    `finally` blocks stop the API, the workers and the load generator this run started,
    which would otherwise keep running and load the next run's figures."""
    raise SystemExit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase, to check the bench itself (figures not meaningful)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--render", metavar="JSON", help="measure nothing: print (and write) the report of an earlier run's BENCHMARKS.json")
    options = parser.parse_args()
    if options.render:
        with open(options.render) as f:
            results = json.load(f)
        text, _ = render(results)
        print(text)
        if not options.no_write:
            write_markdown(os.path.join(ROOT, "BENCHMARKS.md"), text, results)
        return
    quick = options.quick
    clients = setting("BENCH_CLIENTS", "8", int, 1)
    rates = setting("BENCH_RATES", "500", float, 0.1, many=True)
    # Offered rates as fractions of the peak (c) measured in this run: the latency a shop sees
    # below saturation, with the saga running.
    fractions = setting("BENCH_PEAK_FRACTIONS", "0.25 0.5 0.8", float, 0.01, many=True)
    rate_seconds = setting("BENCH_RATE_SECONDS", "20", int, 1)
    e2e_rate = setting("BENCH_E2E_RATE", "500", float, 0.1)
    e2e_seconds = setting("BENCH_E2E_SECONDS", "60", int, 1)
    # Three runs of (e) give a median and a spread; each starts and ends drained.
    e2e_runs = setting("BENCH_E2E_RUNS", "3", int, 1)
    replicas = setting("BENCH_REPLICAS", "1 2 4", int, 1, many=True)
    provider_ms = setting("BENCH_PROVIDER_MS", "50", int, 0)
    prefetch = setting("BENCH_PAYMENT_PREFETCH", "2", int, 1)
    drain_seconds = setting("BENCH_DRAIN_SECONDS", "10", int, 0)
    port = setting("BENCH_HTTP_PORT", "8092", int, 1)
    if port > 65535:
        fail(f"BENCH_HTTP_PORT must be a port number (1 to 65535), not {port}")
    if quick:
        rate_seconds, e2e_seconds, e2e_runs, drain_seconds = 3, 5, 1, 3
    os.makedirs(LOGS, exist_ok=True)

    results = {"started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
               "provider_latency_ms": provider_ms, "payment_prefetch": prefetch, "cpu": {}}
    database_url = os.environ["DATABASE_URL"]
    parsed = urllib.parse.urlsplit(database_url)
    admin = Database(urllib.parse.urlunsplit(parsed._replace(path="/postgres")))
    bench_db_name = "emporium_bench"
    db = Database(urllib.parse.urlunsplit(parsed._replace(path=f"/{bench_db_name}")))
    amqp = {"host": os.environ["AMQP_HOST"], "port": int(os.environ["AMQP_PORT"]), "user": os.environ["AMQP_USER"], "password": os.environ["AMQP_PASSWORD"]}
    vhost = f"emporium-bench-{os.getpid()}"
    rabbitmqctl = os.path.join(ROOT, "scripts", "rabbitmqctl")

    drop_database(admin, bench_db_name, required=True)
    admin.query(f"CREATE DATABASE {bench_db_name}")
    # The statement profile needs pg_stat_statements (preloaded by scripts/services.sh),
    # which only a superuser can install: the local `postgres` over the socket.
    if superuser_psql(bench_db_name, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements") is None:
        log("pg_stat_statements is not available: no statement profile")
    results["instance"] = instance_state(bench_db_name, parsed.path.lstrip("/"))
    if results["instance"] is None or results["instance"]["used"]:
        log("warning: " + instance_line(results["instance"]))
    run([rabbitmqctl, "-q", "add_vhost", vhost])
    run([rabbitmqctl, "-q", "set_permissions", "-p", vhost, amqp["user"], ".*", ".*", ".*"])
    env = dict(os.environ, DATABASE_URL=db.url,
               AMQP_URL=f"amqp://{amqp['user']}:{amqp['password']}@{amqp['host']}:{amqp['port']}/{urllib.parse.quote(vhost, safe='')}",
               HTTP_PORT=str(port), BENCH_VHOST=vhost,
               # One load generator is one client address: lift the per-client limits. Sign-up
               # and sign-in (setup only, not measured) use a cheap bcrypt cost.
               RATE_LIMIT_PER_SECOND="1000000", RATE_LIMIT_BURST="1000000", BCRYPT_COST="4",
               REGISTRATIONS_PER_ADDRESS_PER_HOUR="100000000",
               # Every bench customer signs in from 127.0.0.1 at once; an attempt counts as a
               # failure until its password is checked, so the per-address limit (20) would
               # refuse the 21st concurrent sign-in with a 900 s Retry-After.
               LOGIN_MAX_FAILURES_PER_ADDRESS="100000000")
    env.pop("HEALTH_PORT", None)
    stack = Stack(env, port)
    url = f"http://127.0.0.1:{port}"
    backends = None
    try:
        run([os.path.join(BIN, "emporium"), "migrate"], env=env)
        run([os.path.join(BIN, "emporium"), "seed"], env=env)
        db.query("INSERT INTO users (id, email, password_hash, first_name, last_name) VALUES (gen_random_uuid(), 'pgbench@emporium.local', 'x', 'Pg', 'Bench')")
        db.query("INSERT INTO products (id, sku, name, price_cents, currency, stock) SELECT gen_random_uuid(), 'PGB-' || i, 'Bench item ' || i, 1000, 'EUR', 1000000 FROM generate_series(1, 3) i")

        backends = PostgresBackends(bench_db_name)
        accounting = CPUAccounting(backends=backends)
        log(f"(a) pgbench, {clients} clients")
        accounting.start()
        results["pgbench"] = pgbench(db, env, clients, 5 if quick else 20)
        results["cpu"]["(a) pgbench"] = accounting.stop(exited="pgbench")
        log("    CPU: " + cpu_line(results["cpu"]["(a) pgbench"]))
        log(f"    {results['pgbench']['tps']:.0f} tx/s")
        # pgbench's outbox rows name no real order: they must never reach the relay.
        db.query("DELETE FROM outbox WHERE order_id IN (SELECT id FROM orders WHERE order_number LIKE 'PGB-%')")
        db.query("DELETE FROM orders WHERE order_number LIKE 'PGB-%'")
        db.query("VACUUM ANALYZE")

        log(f"(a') and (a'') pgbench, every transaction of one order's saga, then of a leaner one, plain and pipelined, {clients} clients")
        results["saga_floor"] = saga_floor(admin, parsed, env, clients, 5 if quick else 20, accounting)

        log("(b) raw rabbitmq-c publisher, then consumer")
        accounting.start()
        results["publisher"] = raw_broker(amqp, vhost, "publish", 5_000 if quick else 50_000, 1024, 256)
        results["cpu"]["(b) raw publisher"] = accounting.stop(exited="raw publisher")
        log("    CPU: " + cpu_line(results["cpu"]["(b) raw publisher"]))
        log(f"    {results['publisher']['per_second']:.0f} msg/s published")
        accounting.start()
        # The workers' shape: batches of up to 32 acknowledged at once, 64 in flight.
        results["consumer"] = raw_broker(amqp, vhost, "consume", results["publisher"]["messages"], 32, 64)
        results["cpu"]["(b) raw consumer"] = accounting.stop(exited="raw publisher")
        log("    CPU: " + cpu_line(results["cpu"]["(b) raw consumer"]))
        log(f"    {results['consumer']['per_second']:.0f} msg/s consumed")

        stack.start("API", "emporium-api")
        for role in ("stock", "payment", "order", "notification"):
            stack.start(f"{role} worker", f"emporium-{role}-worker")
        stack.wait_ready()

        log(f"(c) placement peak, {clients} clients")
        results["peak"] = emporium_bench(env, url, "--max", clients, "--duration", 5 if quick else 20, "--customers", clients * 4,
                                         accounting=accounting)
        results["cpu"]["(c) placement peak"] = accounting.stop()
        log("    CPU: " + cpu_line(results["cpu"]["(c) placement peak"]))
        log(f"    {results['peak']['placement_throughput']:.0f} orders/s")

        log(f"(c') whole purchases over the API (a cart request per line, then the order), {clients} clients")
        wait_drained(db, vhost)
        results["purchase_peak"] = emporium_bench(env, url, "--max", clients, "--duration", 5 if quick else 20, "--customers", clients * 4,
                                                  "--cart-over-api", "--settle-timeout", 300, accounting=accounting)
        results["purchase_peak"]["drain_seconds"] = wait_drained(db, vhost)
        results["cpu"]["(c') whole purchases over the API"] = accounting.stop()
        log("    CPU: " + cpu_line(results["cpu"]["(c') whole purchases over the API"]))
        log(f"    {results['purchase_peak']['placement_throughput']:.0f} orders/s")

        results["rates"] = []
        peak_rate = results["peak"]["placement_throughput"]
        planned = [(max(1.0, round(peak_rate * f)), f) for f in fractions] + [(r, None) for r in rates]
        for rate, fraction in planned:
            log(f"(d) placement at {rate:.0f}/s" + (f" ({fraction:.0%} of the peak)" if fraction else ""))
            offset = api_log_size()
            report = emporium_bench(env, url, "--rate", rate, "--duration", rate_seconds, "--customers", 200, accounting=accounting)
            results["cpu"][f"(d) {rate:.0f}/s offered"] = accounting.stop()
            log("    CPU: " + cpu_line(results["cpu"][f"(d) {rate:.0f}/s offered"]))
            report["peak_fraction"] = fraction
            report["api_placement_ms"] = api_placement_times(offset)
            results["rates"].append(report)
            log(f"    p99 {(report['placement_latency_ms'] or {}).get('p99')} ms, errors {report['errors']}")

        runs = []
        for index in range(e2e_runs):
            name = f"(e) end to end at {e2e_rate:.0f}/s" + (f", run {index + 1}" if e2e_runs > 1 else "")
            log(f"{name}, {e2e_seconds} s")
            # A window starts and ends with the outbox and the queues drained, so that it holds
            # whole sagas: its own orders' tails and none of the previous phase's.
            wait_drained(db, vhost)
            time.sleep(1)  # statistics reach pg_stat_database when a backend goes idle
            before = {"statements": statement_stats(db), "database": database_counters(db), "log_lines": log_lines(),
                      "outbox": int(db.value("SELECT count(*) FROM outbox")), "inbox": int(db.value("SELECT count(*) FROM inbox")),
                      "counters": stack.counters(PROCESS_COUNTERS), "tables": table_writes(db)}
            report = emporium_bench(env, url, "--rate", e2e_rate, "--duration", e2e_seconds, "--customers", 400, "--settle-timeout", 300,
                                    accounting=accounting)
            report["drain_seconds"] = wait_drained(db, vhost)
            results["cpu"][name] = accounting.stop()
            log("    CPU: " + cpu_line(results["cpu"][name]))
            time.sleep(1)
            confirmed, placed = max(1, report["confirmed"]), max(1, report["placed"])
            cost = per_order(before["database"], database_counters(db), results["cpu"][name], confirmed)
            cost["messages_published"] = round((int(db.value("SELECT count(*) FROM outbox")) - before["outbox"]) / placed, 2)
            cost["messages_consumed"] = round((int(db.value("SELECT count(*) FROM inbox")) - before["inbox"]) / placed, 2)
            cost["log_lines"] = round((log_lines() - before["log_lines"]) / placed, 2)
            cost["row_writes"] = row_writes(before["tables"], table_writes(db), placed)
            counted = stack.counters(PROCESS_COUNTERS)
            for metric, key in PROCESS_COUNTERS.items():
                cost[key] = round((counted[metric] - before["counters"][metric]) / placed, 2)
            runs.append({"phase": name, "report": report, "per_confirmed_order": cost,
                         "statements": statement_profile(before["statements"], statement_stats(db), placed)})
            log(f"    {report['end_to_end_throughput']:.0f} orders/s confirmed, {cost['cpu_ms_total']:.1f} ms of CPU per order")
        memory = stack.peak_rss()  # VmHWM: the peak over all runs
        # The median run by throughput stands for the phase; every run is kept for the spread.
        median = sorted(runs, key=lambda r: r["report"]["end_to_end_throughput"])[len(runs) // 2]
        results["end_to_end"] = median["report"]
        results["per_confirmed_order"] = median["per_confirmed_order"]
        results["statements"] = median["statements"]
        results["messages_per_order"] = median["per_confirmed_order"]["messages_published"]
        results["end_to_end_runs"] = [{"phase": r["phase"], "end_to_end_throughput": r["report"]["end_to_end_throughput"],
                                       "placed": r["report"]["placed"], "confirmed": r["report"]["confirmed"],
                                       "not_terminal": r["report"]["not_terminal"], "errors": r["report"]["errors"],
                                       "dropped": r["report"]["dropped"], "drain_seconds": r["report"]["drain_seconds"],
                                       "per_confirmed_order": r["per_confirmed_order"]} for r in runs]

        log(f"(f) payment workers with a {provider_ms} ms provider at {replicas} replicas")
        stack.stop("payment worker")
        results["scaling"] = []
        for count in replicas:
            orders = max(20, int(count * prefetch * 1000 / provider_ms * drain_seconds))
            accounting.start()
            round_ = scaling_round(stack, db, env, url, count, provider_ms, prefetch, orders, accounting)
            results["cpu"][f"(f) {count} payment replica(s)"] = round_.pop("cpu")
            log("    CPU: " + cpu_line(results["cpu"][f"(f) {count} payment replica(s)"]))
            results["scaling"].append(round_)
            for size in round_["rss_bytes"].values():
                memory["payment worker"] = max(memory.get("payment worker", 0), size)
            log(f"    {count}: {round_['per_second']:.1f} payments/s")
        results["memory"] = memory

        if os.environ.get("BENCH_PEER", "1") != "0":
            stack.stop_all()  # the peer runs alone on the machine
            log(f"(h) peer: django-oscar with django-oscar-api, gunicorn with 5 sync workers, {clients} clients")
            results["peer"] = peer_shop(admin, parsed, clients, 5 if quick else 20, 5, port + 1, accounting)
            results["cpu"]["(h) peer: django-oscar"] = results["peer"]["cpu"]
            log("    CPU: " + cpu_line(results["peer"]["cpu"]))
            log(f"    {results['peer']['per_second']:.1f} orders/s")
    finally:
        stack.stop_all()
        if backends:
            backends.close()
        run([rabbitmqctl, "-q", "delete_vhost", vhost], check=False)
        drop_database(admin, bench_db_name, required=False)

    # Every run's raw figures, written or not, for `--render` and for comparing runs.
    with open(os.path.join(LOGS, "last-run.json"), "w") as f:
        json.dump(results, f, indent=2)
    text, verdicts = render(results)
    print(text)
    if not options.no_write and not quick:
        write_markdown(os.path.join(ROOT, "BENCHMARKS.md"), text, results)
        log("results written to BENCHMARKS.md and BENCHMARKS.json")


if __name__ == "__main__":
    main()
