"""The command line: ``python -m resilient_routing`` (or ``resilient-routing``).

Exit codes: 0 ok, 1 failure (Redis unreachable...), 2 usage error (bad arguments, bad
scenario file). Errors go to stderr in one line that names the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ._exceptions import describe, error_text
from ._version import __version__

__all__ = ["main"]


_PLOT_FORMATS = (".png", ".svg", ".pdf")
_DEFAULT_URL = "redis://127.0.0.1:6379/0"


class _UsageError(Exception):
    """A mistake of the user's: exit 2."""


class _Failure(Exception):
    """Something outside the user's arguments went wrong: exit 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilient-routing",
        description="Simulate routing strategies under outages; inspect live cooldowns.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = commands.add_parser(
        "simulate",
        help="run the real routing code against simulated providers on virtual time",
        description="Compare routing configurations over a scenario of simulated traffic "
        "and outages (a TOML file; the built-in default when omitted). Same seed, same numbers.",
        epilog="A scenario has [[providers]] (latency = lognormal, constant, uniform or "
        "bimodal; items and item_interval for streams), [[outages]] (kind = 5xx, 429, timeout, "
        "slow with added_latency, cut or stall with after_items) and [[configs]] (strategy, "
        "cooldowns, half_open, probe_timeout, slow_call, stream, first_item_timeout, "
        "idle_timeout...). The format is documented in the simulator section of the README; "
        "the built-in scenario is resilient_routing/scenarios/default.toml.",
    )
    sim.add_argument("scenario", nargs="?", help="a scenario TOML file (default: built-in)")
    sim.add_argument("--seed", type=int, help="override the scenario's random seed")
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.add_argument(
        "--plot",
        metavar="FILE",
        help="draw timelines per configuration: .png, .svg or .pdf (needs the [plot] extra)",
    )
    sim.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )

    commands.add_parser("strategies", help="list the registered strategies")

    for name, text in (
        ("status", "show live cooldown state shared in Redis"),
        ("reset", "clear cooldown state in Redis"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        where = sub.add_argument_group(
            "where the state is",
            "one Redis server, a Redis Cluster, or the primary that Redis Sentinel names",
        )
        where.add_argument("--redis", metavar="URL", help=f"a Redis URL (default: {_DEFAULT_URL})")
        where.add_argument("--cluster", action="store_true", help="the URL is a Redis Cluster node")
        where.add_argument(
            "--sentinel", action="append", metavar="HOST:PORT", help="a sentinel (repeat for each)"
        )
        where.add_argument("--service", metavar="NAME", help="the primary's name at the sentinels")
        sub.add_argument(
            "--prefix",
            default="resilient_routing",
            help="the trackers' key prefix (default: %(default)s)",
        )
        if name == "status":
            sub.add_argument("--json", action="store_true", help="print the state as JSON")
        else:
            target = sub.add_mutually_exclusive_group(required=True)
            target.add_argument("provider", nargs="?", help="the provider to reset")
            target.add_argument("--all", action="store_true", help="reset every provider")
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()

    def __call__(self, name: str, fraction: float) -> None:
        if not self.enabled:
            return
        filled = int(fraction * 30)
        self.stream.write(
            f"\r{name[:24]:<24} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}"
        )
        if fraction >= 1:
            self.stream.write("\n")
        self.stream.flush()


def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dataclasses import replace

    from ._sim.plot import plot
    from ._sim.report import as_json, table
    from ._sim.run import simulate
    from ._sim.scenario import ScenarioError, default_scenario, load_scenario

    try:
        scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    except ScenarioError as exc:
        raise _UsageError(str(exc)) from exc
    if args.seed is not None:
        scenario = replace(scenario, seed=args.seed)
    if args.plot:
        suffix = Path(args.plot).suffix.lower()
        if suffix not in _PLOT_FORMATS:
            raise _UsageError(
                f"--plot {args.plot}: expected a .png, .svg or .pdf file name, got "
                f"{suffix or 'no extension'}"
            )
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise _UsageError(
                "--plot needs matplotlib: pip install 'resilient-routing[plot]'"
            ) from exc
        target = Path(args.plot).resolve()
        folder = target.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise _UsageError(f"--plot {args.plot}: cannot write in {folder}")
        if target.is_dir():
            raise _UsageError(f"--plot {args.plot}: a folder, not a file to write")
    try:
        results = simulate(scenario, _Progress(err, not args.no_progress))
    except Exception as exc:
        raise _Failure(
            f"{scenario.source}: the simulation failed ({type(exc).__name__}: {describe(exc)}); "
            "check the "
            "strategy_options of its configs"
        ) from exc
    if args.json:
        out.write(json.dumps(as_json(scenario, results), indent=2, sort_keys=True) + "\n")
    else:
        out.write(table(scenario, results) + "\n")
    if args.plot:
        try:
            plot(scenario, results, args.plot)
        except OSError as exc:
            raise _Failure(f"--plot {args.plot}: cannot write it ({exc.strerror})") from exc
        err.write(f"timelines written to {args.plot}\n")
    return 0


def _strategies(out: TextIO) -> int:
    from .strategies._registry import available_strategies, strategy_factory

    for name in available_strategies():
        doc = (getattr(strategy_factory(name), "__doc__", None) or "").strip().splitlines()
        out.write(f"{name:<15} {doc[0] if doc else ''}\n")
    return 0


def _check_where(args: argparse.Namespace) -> None:
    """Check where the state is, before anything is asked or connected; fill in the defaults.

    Sets ``args.sentinels`` (the ``--sentinel`` pairs, None without them) and ``args.redis``.
    """
    if not args.prefix:
        raise _UsageError("--prefix must not be empty (the trackers' default is resilient_routing)")
    args.sentinels = None
    if args.sentinel is None and args.service is None:
        if args.redis is None:
            args.redis = _DEFAULT_URL
        return
    if args.sentinel is None or args.service is None:
        raise _UsageError(
            "--sentinel and --service go together: the sentinels' HOST:PORT (repeat "
            "--sentinel for each) and the name they monitor the primary by"
        )
    if args.redis is not None or args.cluster:
        raise _UsageError("--sentinel finds the primary itself: drop --redis and --cluster")
    if not args.service:
        raise _UsageError("--service must not be empty: the name the sentinels know the primary by")
    args.sentinels = _sentinels(args.sentinel)


def _tracker(args: argparse.Namespace) -> Any:
    """Return a tracker on the state ``args`` name (checked by :func:`_check_where`)."""
    try:
        from redis.exceptions import RedisClusterException

        from .cooldown._redis.tracker import RedisCooldownTracker
    except ImportError as exc:
        raise _UsageError(
            "status and reset need redis: pip install 'resilient-routing[redis]'"
        ) from exc
    if args.sentinels is not None:
        try:
            return RedisCooldownTracker.from_sentinel(
                args.sentinels, args.service, prefix=args.prefix
            )
        except ValueError as exc:
            raise _UsageError(f"--sentinel/--service: {exc}") from exc
    try:
        return RedisCooldownTracker.from_url(args.redis, cluster=args.cluster, prefix=args.prefix)
    except ValueError as exc:
        shown = _shown(args.redis)
        # What redis-py says of a URL it could not read may quote its password.
        detail = str(exc) if shown == args.redis else "not a Redis URL it can read"
        raise _UsageError(f"--redis {shown!r}: {detail}") from exc
    except RedisClusterException as exc:  # a sync cluster client asks for its nodes at once
        raise _Failure(f"cannot reach {_where(args)}: {error_text(exc)}; is it running?") from exc


def _sentinels(given: list[str]) -> list[tuple[str, int]]:
    """Return the ``--sentinel`` addresses as (host, port) pairs."""
    pairs = []
    for item in given:
        host, colon, port = item.rpartition(":")
        digits = port.isascii() and port.isdecimal()
        if not (colon and host and digits and 0 < int(port) < 65536):
            raise _UsageError(
                f"--sentinel {item!r}: expected HOST:PORT with a port from 1 to 65535, such "
                "as localhost:26379"
            )
        pairs.append((host.removeprefix("[").removesuffix("]"), int(port)))  # [::1]:26379
    return pairs


def _where(args: argparse.Namespace) -> str:
    """Where the command looks for the trackers' state, as its messages name it."""
    if args.sentinels is not None:
        return f"the primary {args.service!r} of the sentinels at {', '.join(args.sentinel)}"
    return f"{'the Redis Cluster' if args.cluster else 'Redis'} at {_shown(args.redis)}"


def _shown(url: str) -> str:
    """``url`` as messages show it, passwords masked (messages end up in CI and cron logs).

    Read as text, not parsed: a password with an unencoded ``#``, ``/`` or ``?`` would cut
    a parsed address short. The password before the last ``@``, and any ``password`` query
    value (``unix:///path.sock?password=...``), are masked.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, address = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{address}"
    path, question, query = rest.partition("?")
    if question:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        masked = [(k, "***" if "password" in k.lower() else v) for k, v in pairs]
        rest = f"{path}?{urllib.parse.urlencode(masked, safe='*')}"
    return f"{scheme}://{rest}"


def _printable(name: str) -> str:
    """A provider's name for a table: what would break the line or the terminal, escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _unreachable(args: argparse.Namespace, exc: ConnectionError) -> _Failure:
    text = str(exc)
    if text.startswith("MasterNotFoundError"):  # its text goes on with the client's repr
        return _Failure(
            f"cannot reach {_where(args)}: no sentinel answered, or none knows that service"
        )
    if text.startswith(("ConnectionError", "TimeoutError", "OSError")):
        return _Failure(f"cannot reach {_where(args)}: {text}; is the server running?")
    return _Failure(f"{_where(args)} refused the command: {text}")


def _left(row: dict[str, Any]) -> float:
    """The seconds a status row shows: of the cooldown, or of the probe's claim."""
    return float(row["probe_remaining_s" if row["state"] == "probing" else "cooldown_remaining_s"])


def _status(args: argparse.Namespace, out: TextIO) -> int:
    _check_where(args)
    tracker = _tracker(args)
    try:
        states = tracker.states()
    except ConnectionError as exc:
        raise _unreachable(args, exc) from exc
    finally:
        tracker.close()
    rows = [
        {
            "provider": s.name,
            "state": "cooling down" if s.cooling else "probing" if s.probing else "available",
            "cooldown_remaining_s": round(s.remaining, 3),
            "probe_remaining_s": round(s.probe_remaining, 3) if s.probing else 0.0,
            "consecutive_failures": s.failures,
            "cooldown_level": s.level,
        }
        for s in states
    ]
    if args.json:
        out.write(json.dumps({"prefix": args.prefix, "providers": rows}, indent=2) + "\n")
        return 0
    if not rows:
        out.write(f"no provider state under prefix {args.prefix!r}\n")
        return 0
    from ._sim.report import _render

    out.write(
        _render(
            ["provider", "state", "remaining", "failures", "level"],
            [
                [
                    _printable(r["provider"]),
                    r["state"],
                    f"{_left(r):.1f}s",
                    str(r["consecutive_failures"]),
                    str(r["cooldown_level"]),
                ]
                for r in rows
            ],
        )
        + "\n"
    )
    return 0


def _reset(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO | None) -> int:
    _check_where(args)  # a mistake is told before the question
    tracker = _tracker(args)  # so is a URL that makes no client
    try:
        what = "every provider" if args.all else f"provider {args.provider!r}"
        if not args.yes and not _confirmed(what, args.prefix, err, stdin):
            return 1
        held = {state.name for state in tracker.states()}
        if not (held if args.all else args.provider in held):
            out.write(f"nothing to reset: no state for {what} under prefix {args.prefix!r}\n")
            return 0
        tracker.reset(None if args.all else args.provider, strict=True)
    except ConnectionError as exc:
        raise _unreachable(args, exc) from exc
    finally:
        tracker.close()
    out.write(f"reset {what}\n")
    return 0


def _confirmed(what: str, prefix: str, err: TextIO, stdin: TextIO | None) -> bool:
    err.write(f"reset the cooldown state of {what} under prefix {prefix!r}? [y/N] ")
    err.flush()
    try:
        answer = stdin.readline() if stdin is not None else ""
    except (OSError, ValueError):  # closed
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    hint = "" if answer else " (no answer could be read: --yes resets without asking)"
    err.write(f"nothing reset{hint}\n")
    return False


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        stdout: where results go (default ``sys.stdout``).
        stderr: where errors and progress go (default ``sys.stderr``).
        stdin: where confirmations are read (default ``sys.stdin``).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        # argparse writes help, version and usage errors to sys.stdout / sys.stderr.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its message already
        return int(exc.code or 0)
    try:
        if args.command == "simulate":
            return _simulate(args, out, err)
        if args.command == "strategies":
            return _strategies(out)
        if args.command == "status":
            return _status(args, out)
        return _reset(args, out, err, stdin if stdin is not None else sys.stdin)
    except _UsageError as exc:
        err.write(f"error: {exc}\n")
        return 2
    except _Failure as exc:
        err.write(f"error: {exc}\n")
        return 1
