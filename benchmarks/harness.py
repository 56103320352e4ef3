"""Timing machinery: interleaved rounds on ``perf_counter_ns``, calibration, machine facts.

Every case is a *batch*: a callable ``batch(n) -> ns`` that makes ``n`` calls and returns the
nanoseconds they took, measured inside the batch so nothing but the loop is timed. A round
runs every case once, in a freshly shuffled order, so slow drift of the machine (frequency,
noisy neighbours) spreads over all cases alike; a case's figure is the median per-call time
over the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from itertools import repeat
from pathlib import Path
from time import perf_counter_ns
from typing import Any

Batch = Callable[[int], int]
#: Builds the batch of a case; async cases run theirs on the loop it is given.
BatchFactory = Callable[[asyncio.AbstractEventLoop], Batch]
#: Verifies a case measures what it claims (run before and after timing); may be async.
Check = Callable[[], "Awaitable[None] | None"]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "resilient-routing",
    "wrapt",
    "tenacity",
    "stamina",
    "backoff",
    "pybreaker",
    "circuitbreaker",
)


# --- batches -----------------------------------------------------------------------------------
# One loop per arity, so passing arguments costs what a direct call costs (no *args unpacking).


def sync_batch(fn: Callable[..., Any], *args: Any) -> BatchFactory:
    """Return the batch factory of ``fn(*args)`` called n times."""
    if len(args) == 1:
        (a,) = args

        def batch(n: int) -> int:
            it = repeat(None, n)
            start = perf_counter_ns()
            for _ in it:
                fn(a)
            return perf_counter_ns() - start

    elif len(args) == 2:
        a, b = args

        def batch(n: int) -> int:
            it = repeat(None, n)
            start = perf_counter_ns()
            for _ in it:
                fn(a, b)
            return perf_counter_ns() - start

    elif not args:

        def batch(n: int) -> int:
            it = repeat(None, n)
            start = perf_counter_ns()
            for _ in it:
                fn()
            return perf_counter_ns() - start

    else:
        raise ValueError("sync_batch takes at most two arguments")
    return lambda loop: batch


def method_batch(obj: Any, x: Any) -> BatchFactory:
    """Return the batch factory of ``obj.call(x)``: the method is looked up and bound per call."""

    def batch(n: int) -> int:
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            obj.call(x)
        return perf_counter_ns() - start

    return lambda loop: batch


def async_batch(fn: Callable[..., Awaitable[Any]], *args: Any) -> BatchFactory:
    """Return the batch factory of ``await fn(*args)`` n times inside one running loop."""
    if len(args) == 1:
        (a,) = args

        async def timed(n: int) -> int:
            it = repeat(None, n)
            start = perf_counter_ns()
            for _ in it:
                await fn(a)
            return perf_counter_ns() - start

    elif len(args) == 2:
        a, b = args

        async def timed(n: int) -> int:
            it = repeat(None, n)
            start = perf_counter_ns()
            for _ in it:
                await fn(a, b)
            return perf_counter_ns() - start

    else:
        raise ValueError("async_batch takes one or two arguments")

    def factory(loop: asyncio.AbstractEventLoop) -> Batch:
        return lambda n: loop.run_until_complete(timed(n))

    return factory


# --- cases and results -------------------------------------------------------------------------


@dataclass
class Case:
    """One timed row of the table."""

    name: str
    section: str
    kind: str  # "sync" or "async": which floors its ratios use
    batch: BatchFactory | None
    note: str = ""
    check: Check | None = None
    skip: str | None = None  # why the case cannot run ("not installed")
    #: (label, other case name): the notes show this case's time as a multiple of the other's.
    versus: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    """What was measured for one case."""

    case: Case
    batch_size: int = 0
    samples: list[float] = field(default_factory=list)  # ns per call, one per round
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.case.skip is None and bool(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def versus(self, other: Result) -> float:
        """Return this case's time over ``other``'s: the median of the per-round ratios.

        Both ran in the same rounds, so a round's ratio cancels the drift of that round.
        """
        if len(self.samples) == len(other.samples):
            pairs = zip(self.samples, other.samples, strict=True)
            return statistics.median(a / b for a, b in pairs)
        return self.median / other.median  # one of them stopped early (it raised)

    def spread(self) -> float:
        """Interquartile range relative to the median (0.05: the middle half is within 5%)."""
        if len(self.samples) < 4:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / self.median


@contextlib.contextmanager
def silenced(*names: str) -> Iterator[None]:
    """Raise the given loggers above CRITICAL for the duration (peers log nothing)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run_check(check: Check, loop: asyncio.AbstractEventLoop) -> None:
    outcome = check()
    if inspect.isawaitable(outcome):

        async def wait() -> None:
            await outcome

        loop.run_until_complete(wait())


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def calibrate(batch: Batch, target_ns: int) -> int:
    """Return the number of calls that makes one batch last about ``target_ns``."""
    n = 1
    while True:
        elapsed = batch(n)
        if elapsed >= 2_000_000 or n >= 1 << 22:
            break
        n *= 4
    per_call = max(elapsed / n, 1.0)
    return max(1, min(int(target_ns / per_call), 1 << 24))


def measure(
    cases: list[Case],
    loop: asyncio.AbstractEventLoop,
    *,
    rounds: int,
    batch_ns: int,
    fixed_batch: int | None,
    seed: int,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Result]:
    """Time every case in interleaved rounds; a case that raises is reported, not fatal."""
    results = {case.name: Result(case) for case in cases}
    batches: dict[str, Batch] = {}
    for case in cases:
        result = results[case.name]
        if case.skip is not None or case.batch is None:
            continue
        try:
            if case.check is not None:
                _run_check(case.check, loop)
            batch = case.batch(loop)
            result.batch_size = fixed_batch or calibrate(batch, batch_ns)
            batch(result.batch_size)  # warm-up, not recorded
        except Exception as exc:
            result.error = _describe(exc)
            continue
        batches[case.name] = batch
    progress(f"calibrated {len(batches)} cases; {rounds} interleaved rounds")
    rng = random.Random(seed)
    order = list(batches)
    for round_number in range(rounds):
        rng.shuffle(order)
        gc.collect()
        for name in order:
            result = results[name]
            if result.error is not None:
                continue
            try:
                elapsed = batches[name](result.batch_size)
            except Exception as exc:
                result.error = _describe(exc)
                continue
            result.samples.append(elapsed / result.batch_size)
        if rounds >= 10 and (round_number + 1) % max(1, rounds // 5) == 0:
            progress(f"round {round_number + 1}/{rounds}")
    for name in batches:
        result = results[name]
        check = result.case.check
        if result.error is None and check is not None:
            try:  # the state the timing left must still measure the same path
                _run_check(check, loop)
            except Exception as exc:
                result.error = f"after timing: {_describe(exc)}"
    return results


# --- machine facts -----------------------------------------------------------------------------


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """Return the facts that qualify the numbers: CPU, cores, Python, versions, source tree."""
    versions: dict[str, str] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        import wrapt

        wrapt_c = wrapt.FunctionWrapper.__module__ == "_wrappers"
    except ImportError:
        wrapt_c = False
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "resilient_routing")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "executable": sys.executable,
        "versions": versions,
        "wrapt_c_extension": wrapt_c,
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "resilient_routing_modified": bool(dirty),
    }


def _cpu_seconds() -> tuple[float, float] | None:
    """Return the busy and stolen CPU seconds of the whole machine so far (Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(v) for v in fields[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return busy / hz, ticks[7] / hz


@dataclass
class Load:
    """How busy the rest of the machine was while the benchmark ran."""

    started: float
    cpu: tuple[float, float] | None
    own: float

    @classmethod
    def start(cls) -> Load:
        return cls(perf_counter_ns() / 1e9, _cpu_seconds(), _own_seconds())

    def summary(self) -> dict[str, float | None]:
        """Return the average cores used by other processes and stolen by the hypervisor."""
        wall = perf_counter_ns() / 1e9 - self.started
        now = _cpu_seconds()
        if self.cpu is None or now is None or wall <= 0:
            return {"other_processes_cores": None, "steal_cores": None, "wall_s": wall}
        busy = now[0] - self.cpu[0] - (_own_seconds() - self.own)
        return {
            "other_processes_cores": max(0.0, busy / wall),
            "steal_cores": (now[1] - self.cpu[1]) / wall,
            "wall_s": wall,
        }


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def header(facts: dict[str, Any]) -> str:
    """Return the one-line machine header of the report."""
    versions = ", ".join(f"{name} {v}" for name, v in facts["versions"].items())
    tree = facts["commit"]
    if facts["resilient_routing_modified"]:
        tree += " + uncommitted changes to resilient_routing/"
    return (
        f"Machine: {facts['cpu']}, {facts['cores']} cores ({facts['usable_cores']} usable), "
        f"{facts['python']}, {facts['platform']}; {versions}; "
        f"wrapt C extension: {'yes' if facts['wrapt_c_extension'] else 'NO'}; "
        f"resilient_routing at {tree}"
    )
