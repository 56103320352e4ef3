"""The command line: simulate, strategies, and the errors of each."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilient_routing._cli import main
from resilient_routing.testing import FakeClock

PROV = "[[providers]]\nname='a'\nlatency_median=1\n"

SMALL = """
name = "small"
seed = 3
duration = "5m"
rate = 4

[[providers]]
name = "a"
latency_median = 0.2
latency_p95 = 0.5

[[providers]]
name = "t"
latency_median = 0.4

[[outages]]
provider = "a"
start = "1m"
end = "2m"

[[configs]]
name = "fallback"

[[configs]]
name = "rr"
strategy = "round_robin"
"""


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    return path


def test_default_scenario_is_reproducible() -> None:
    """Two runs of the built-in scenario with the same seed print identical JSON."""
    code1, first, _ = run("simulate", "--json")
    code2, second, _ = run("simulate", "--json")
    assert code1 == code2 == 0
    assert first == second
    report = json.loads(first)
    assert report["seed"] == 42 and report["duration_s"] == 3600
    names = [c["name"] for c in report["configs"]]
    assert names[0] == "fallback" and "hedged 1s" in names
    fallback = report["configs"][0]
    no_cooldown = report["configs"][1]
    assert fallback["success_rate"] > 0.99
    assert fallback["wasted_attempts"] < no_cooldown["wasted_attempts"] / 5
    assert fallback["route_around_s"]["gemini@600s"] is not None
    assert no_cooldown["route_around_s"]["gemini@600s"] is None
    # The long outage and the latency spike show what half_open and slow_call change.
    by_name = {c["name"]: c for c in report["configs"]}
    half_open = by_name["fallback, half-open"]["during_outages"]["gemini@600s"]
    assert (
        half_open["largest_recovery"]
        == 1
        < fallback["during_outages"]["gemini@600s"]["largest_recovery"]
    )
    spike = "gemini@2880s"
    assert by_name["half-open, slow_call 3s"]["during_outages"][spike]["cooldowns"] >= 1
    assert fallback["during_outages"][spike]["cooldowns"] == 0
    assert by_name["stream, half-open"]["ttfi_p50"] is not None


def test_seed_changes_the_numbers(small: Path) -> None:
    """--seed overrides the scenario's seed; another seed, other draws."""
    _, one, _ = run("simulate", str(small), "--json", "--seed", "1")
    _, two, _ = run("simulate", str(small), "--json", "--seed", "2")
    assert json.loads(one)["seed"] == 1
    assert json.loads(one)["configs"] != json.loads(two)["configs"]


def test_table_output(small: Path) -> None:
    """The default output is a readable comparison table."""
    code, out, err = run("simulate", str(small))
    assert code == 0 and err == ""
    assert "scenario: small" in out
    assert "config" in out and "p99" in out and "attempts/call" in out
    assert "fallback" in out and "rr" in out
    assert "a@60s" in out


def test_plot_writes_a_png(small: Path, tmp_path: Path) -> None:
    """--plot FILE.png draws the timelines."""
    target = tmp_path / "timeline.png"
    code, _, err = run("simulate", str(small), "--plot", str(target))
    assert code == 0 and "timelines written" in err
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rate = 'fast'\n[[providers]]\nname='a'\nlatency_median=1",
            "rate: expected a number > 0, got 'fast'",
        ),
        ("[[providers]]\nname='a'", "providers[0].latency_median: missing"),
        (
            "[[providers]]\nname='a'\nlatency_median=1\nlatncy_p95=2",
            "providers[0].latncy_p95: unknown key",
        ),
        (
            "[[providers]]\nname='a'\nlatency_median=1\n[[outages]]\nprovider='b'\nstart=1\nend=2",
            "outages[0].provider: expected one of 'a', got 'b'",
        ),
        (
            "[[providers]]\nname='a'\nlatency_median=1\n[[outages]]\nprovider='a'\nstart='10m'\nend='5m'",
            "outages[0].end: expected a time after start",
        ),
        (
            "[[providers]]\nname='a'\nlatency_median=1\n[[configs]]\nname='x'\nstrategy='fastest'",
            "configs[0].strategy: expected one of",
        ),
        (
            "[[providers]]\nname='a'\nlatency_median=1\nerror_kind='404'",
            "providers[0].error_kind: expected one of '5xx', '429', 'timeout'",
        ),
        (
            "duration = '1 week'\n[[providers]]\nname='a'\nlatency_median=1",
            "duration: expected seconds",
        ),
        ("this is = not toml =", "not valid TOML"),
        ("seed = 1", "providers: expected at least one"),
        (
            PROV + "[[configs]]\nname='x'\ncooldown=0",
            "configs[0].cooldown: expected seconds: a finite number > 0",
        ),
        (
            PROV + "[[configs]]\nname='x'\nmax_cooldown=inf",
            "configs[0].max_cooldown: expected seconds",
        ),
        (
            PROV + "[[configs]]\nname='x'\nattempt_timeout='0s'",
            "configs[0].attempt_timeout: expected seconds",
        ),
        ("duration = inf\n" + PROV, "duration: expected seconds"),
        (
            PROV + "[[configs]]\nname='x'\nmax_attempts=1.5",
            "configs[0].max_attempts: expected an integer >= 1",
        ),
        (
            PROV + "[[configs]]\nname='x'\n[[configs]]\nname='x'",
            "configs[1].name: expected a name no other config has",
        ),
        (
            PROV + "[[configs]]\nname='x'\nproviders=['a','a']",
            "configs[0].providers: expected each provider once",
        ),
        (
            "duration = '5m'\n" + PROV + "[[outages]]\nprovider='a'\nstart='6m'\nend='7m'",
            "outages[0].start: expected a time before the end",
        ),
        (
            "[[providers]]\nname='a'\nlatency_median=1\n[[configs]]\nname='h'\nstrategy='hedged'\nstrategy_options={delayy=1}",
            "configs[0].strategy_options: expected options that 'hedged' takes",
        ),
    ],
)
def test_bad_scenario_names_file_key_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    """A bad scenario exits 2 with one line naming the file, the key and what was expected."""
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run("simulate", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}: ")
    assert message in err
    assert err.count("\n") == 1


def test_missing_scenario_file(tmp_path: Path) -> None:
    """An unreadable file exits 2 and says so."""
    code, _, err = run("simulate", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read the scenario" in err


def test_usage_errors_exit_2() -> None:
    """Unknown commands and options are usage errors."""
    assert run("fly")[0] == 2
    assert run("simulate", "--bogus")[0] == 2
    assert run("reset", "--yes")[0] == 2, "reset needs a provider or --all"


def test_strategies_lists_every_registered_one() -> None:
    """Strategies prints one line per registered strategy."""
    code, out, _ = run("strategies")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)
    assert any(line.startswith("fallback ") for line in lines)
    assert len(lines) >= 8


def test_module_entry_point(small: Path) -> None:
    """Python -m resilient_routing runs the same command line."""
    proc = subprocess.run(
        [sys.executable, "-m", "resilient_routing", "simulate", str(small), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scenario"] == "small"


def test_reset_asks_for_confirmation() -> None:
    """Reset without --yes asks; anything but yes resets nothing."""
    code, out, err = run("reset", "--all", "--redis", "redis://127.0.0.1:1/0", stdin="n\n")
    assert code == 1 and "[y/N]" in err and "nothing reset" in err and out == ""


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """A live Redis URL and a prefix of this test's own (removed after)."""
    from . import redis_support

    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("cli")
    yield url, prefix
    redis_support.delete_prefix(prefix, url)


def test_status_shows_a_provider_being_probed(redis_prefix: tuple[str, str]) -> None:
    """A half-open probe out: status says "probing", with what is left of its claim."""
    from resilient_routing import RedisCooldownTracker

    url, prefix = redis_prefix
    # The tracker's clock runs 31 s behind the server's: its 30 s cooldown is over by the
    # server's time once the clock catches up, without waiting for it.
    clock = FakeClock(time.time() - 31.0)
    with RedisCooldownTracker.from_url(
        url, prefix=prefix, clock=clock, failure_threshold=1, cooldown=30, half_open=True
    ) as t:
        t.record_failure("gemini", RuntimeError("503"))
        clock.advance(31.0)
        assert t.is_available("gemini") is True  # claims the probe (30 s by default)
    code, out, _ = run("status", "--redis", url, "--prefix", prefix, "--json")
    assert code == 0
    (row,) = json.loads(out)["providers"]
    assert row["state"] == "probing" and 28 < row["probe_remaining_s"] <= 30
    code, out, _ = run("status", "--redis", url, "--prefix", prefix)
    assert code == 0 and "probing" in out


@pytest.fixture(params=["server", "cluster", "sentinel"])
def redis_target(request: pytest.FixtureRequest) -> Iterator[tuple[list[str], Any]]:
    """Where status and reset look (their arguments), and a maker of trackers on that state.

    One Redis server, a Redis Cluster, or the primary Redis Sentinel names; the arguments
    end with a prefix of the test's own.
    """
    from resilient_routing import RedisCooldownTracker

    from . import redis_support
    from .redis_deploy import SERVICE

    prefix = redis_support.unique_prefix("cli")
    where: list[str]
    if request.param == "server":
        url = redis_support.require_redis()
        where = ["--redis", url]
        make = functools.partial(RedisCooldownTracker.from_url, url)
    elif request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        where = ["--redis", url, "--cluster"]
        make = functools.partial(RedisCooldownTracker.from_url, url, cluster=True)
    else:
        addresses = request.getfixturevalue("redis_sentinels").addresses
        where = [arg for host, port in addresses for arg in ("--sentinel", f"{host}:{port}")]
        where += ["--service", SERVICE]
        make = functools.partial(RedisCooldownTracker.from_sentinel, addresses, SERVICE)
    tracker = functools.partial(make, prefix=prefix)
    yield [*where, "--prefix", prefix], tracker
    with tracker() as t:
        t.reset(None)  # whatever a failed test left


def test_status_and_reset_against_live_redis(redis_target: tuple[list[str], Any]) -> None:
    """Status lists what the trackers share; reset clears one provider or all."""
    where, tracker = redis_target
    prefix = where[-1]
    with tracker(failure_threshold=2, cooldown=30) as t:
        t.record_failure("gemini", RuntimeError("503"))
        t.record_failure("gemini", RuntimeError("503"))
        t.record_failure("grok", RuntimeError("503"))
    code, out, _ = run("status", *where, "--json")
    assert code == 0
    rows = {r["provider"]: r for r in json.loads(out)["providers"]}
    assert rows["gemini"]["state"] == "cooling down"
    assert 29 < rows["gemini"]["cooldown_remaining_s"] <= 30
    assert rows["gemini"]["cooldown_level"] == 1
    assert rows["grok"] == {
        "provider": "grok",
        "state": "available",
        "cooldown_remaining_s": 0.0,
        "probe_remaining_s": 0.0,
        "consecutive_failures": 1,
        "cooldown_level": 0,
    }
    code, out, _ = run("status", *where)
    assert code == 0 and "gemini" in out and "cooling down" in out
    code, out, _ = run("reset", "gemini", *where, "--yes")
    assert code == 0 and out == "reset provider 'gemini'\n"
    _, out, _ = run("status", *where, "--json")
    assert [r["provider"] for r in json.loads(out)["providers"]] == ["grok"]
    code, out, _ = run("reset", "nosuch", *where, "--yes")
    assert code == 0
    assert out == f"nothing to reset: no state for provider 'nosuch' under prefix {prefix!r}\n"
    code, _, err = run("reset", "--all", *where, stdin="y\n")
    assert code == 0 and "[y/N]" in err
    _, out, _ = run("status", *where)
    assert out == f"no provider state under prefix {prefix!r}\n"
    code, out, _ = run("reset", "--all", *where, "--yes")
    assert code == 0 and out.startswith("nothing to reset: no state for every provider")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--sentinel", "localhost:26379"], "--sentinel and --service go together"),
        (["--service", "mymaster"], "--sentinel and --service go together"),
        (
            ["--sentinel", "localhost", "--service", "m"],
            "--sentinel 'localhost': expected HOST:PORT",
        ),
        (["--sentinel", ":26379", "--service", "m"], "--sentinel ':26379': expected HOST:PORT"),
        (["--sentinel", "h:0", "--service", "m"], "a port from 1 to 65535"),
        (["--sentinel", "h:65536", "--service", "m"], "a port from 1 to 65535"),
        (["--sentinel", "h:port", "--service", "m"], "--sentinel 'h:port'"),
        (["--sentinel", "h:\u00b2", "--service", "m"], "a port from 1 to 65535"),
        (["--sentinel", "h:\u0661\u0662", "--service", "m"], "a port from 1 to 65535"),
        (["--sentinel", "h:1", "--service", ""], "--service must not be empty"),
        (["--service", ""], "--sentinel and --service go together"),
        (["--sentinel", "h:1", "--service", "m", "--cluster"], "drop --redis and --cluster"),
        (
            ["--sentinel", "h:1", "--service", "m", "--redis", "redis://h:2/0"],
            "drop --redis and --cluster",
        ),
    ],
)
def test_bad_sentinel_arguments_are_usage_errors(arguments: list[str], message: str) -> None:
    """Sentinel options that do not make sense together: one line naming them, exit 2."""
    code, out, err = run("status", *arguments)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    # reset tells the mistake before it asks anything
    code, out, err = run("reset", "--all", *arguments, stdin="y\n")
    assert code == 2 and out == "" and message in err and "[y/N]" not in err


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["--sentinel", "127.0.0.1:1", "--service", "mymaster"],
            "error: cannot reach the primary 'mymaster' of the sentinels at 127.0.0.1:1: no "
            "sentinel answered, or none knows that service",
        ),
        (
            ["--redis", "redis://127.0.0.1:1/0", "--cluster"],
            "error: cannot reach the Redis Cluster at redis://127.0.0.1:1/0: "
            "RedisClusterUnreachableError",
        ),
    ],
)
def test_unreachable_cluster_or_sentinels_is_one_line_and_exit_1(
    arguments: list[str], expected: str
) -> None:
    """No sentinel or cluster node answers: one line naming where it looked, exit 1."""
    code, out, err = run("status", *arguments)
    assert code == 1 and out == "" and err.startswith(expected) and err.count("\n") == 1


@pytest.mark.parametrize("command", [["status"], ["reset", "--all", "--yes"]])
def test_unreachable_redis_is_one_line_and_exit_1(command: list[str]) -> None:
    """With no server at the URL: one clear line on stderr, exit code 1."""
    code, out, err = run(*command, "--redis", "redis://127.0.0.1:1/0")
    assert code == 1 and out == ""
    assert err.startswith("error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert err.count("\n") == 1


@pytest.mark.parametrize("url", ["http://nope", ""])
def test_bad_redis_url_is_a_usage_error(url: str) -> None:
    """A malformed (or empty) URL is the user's mistake: exit 2."""
    code, _, err = run("status", "--redis", url)
    assert code == 2 and f"--redis {url!r}" in err


def test_progress_bar_only_on_a_terminal(small: Path) -> None:
    """A progress bar goes to stderr when it is a terminal, and nowhere otherwise."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Terminal()
    assert main(["simulate", str(small)], stdout=out, stderr=err) == 0
    assert "100%" in err.getvalue() and "[###" in err.getvalue()
    out, err = io.StringIO(), Terminal()
    assert main(["simulate", str(small), "--no-progress"], stdout=out, stderr=err) == 0
    assert err.getvalue() == ""
    _, _, plain = run("simulate", str(small))
    assert plain == ""


def test_configs_over_different_provider_subsets(tmp_path: Path) -> None:
    """A config that leaves out the failing provider shows '-' for its outage, no crash."""
    path = tmp_path / "subset.toml"
    path.write_text(
        SMALL.replace('[[configs]]\nname = "rr"\nstrategy = "round_robin"', "")
        + '[[configs]]\nname = "only t"\nproviders = ["t"]\n',
        encoding="utf-8",
    )
    code, out, err = run("simulate", str(path))
    assert code == 0, err
    assert "only t" in out
    outage_rows = out.split("outages:")[1].splitlines()
    row = next(x for x in outage_rows if x.startswith("only t"))
    assert row.split()[-1] == "-"


def test_plot_into_a_missing_folder_is_refused_before_running(small: Path) -> None:
    """--plot into a folder that does not exist fails at once, exit 2, before simulating."""
    code, out, err = run("simulate", str(small), "--plot", "/nonexistent/dir/x.png")
    assert code == 2 and out == "" and "cannot write in /nonexistent/dir" in err


def test_bad_strategy_options_found_at_run_time_exit_1(tmp_path: Path) -> None:
    """Options a strategy accepts but cannot use end the run with one line, not 0% success."""
    path = tmp_path / "rng.toml"
    path.write_text(
        PROV + "[[providers]]\nname='b'\nlatency_median=1\n[[providers]]\nname='t'\n"
        "latency_median=1\n[[configs]]\nname='w'\nstrategy='weighted'\n"
        "strategy_options={rng=5}\n",
        encoding="utf-8",
    )
    code, out, err = run("simulate", str(path))
    assert code == 1 and out == ""
    assert "the simulation failed (AttributeError" in err and err.count("\n") == 1


def test_duplicate_outage_starts_get_distinct_labels(tmp_path: Path) -> None:
    """Two outages of one provider starting together are both reported."""
    path = tmp_path / "twice.toml"
    path.write_text(
        SMALL + '[[outages]]\nprovider = "a"\nstart = "1m"\nend = "3m"\n', encoding="utf-8"
    )
    _, out, _ = run("simulate", str(path), "--json")
    assert set(json.loads(out)["configs"][0]["route_around_s"]) == {"a@60s", "a@60s#2"}


def test_empty_prefix_names_the_option() -> None:
    """--prefix '' is reported as a --prefix mistake."""
    code, _, err = run("status", "--prefix", "")
    assert code == 2 and "--prefix must not be empty" in err


def test_redis_error_reply_is_not_called_unreachable(redis_prefix: tuple[str, str]) -> None:
    """A server that answers with an error is not 'unreachable'."""
    url, prefix = redis_prefix
    base = url.rsplit("/", 1)[0]
    code, _, err = run("status", "--redis", f"{base}/999", "--prefix", prefix)
    assert code == 1 and "refused the command" in err and "is the server running" not in err


def test_version() -> None:
    """--version prints the package's version."""
    from resilient_routing import __version__

    code, out, _ = run("--version")
    assert code == 0 and out == f"resilient-routing {__version__}\n"


def test_help_of_redis_commands_shows_the_defaults() -> None:
    """Status --help names the default Redis URL and prefix."""
    code, out, _ = run("status", "--help")
    assert code == 0
    assert "default: redis://127.0.0.1:6379/0" in out and "default: resilient_routing" in out


@pytest.mark.parametrize("name", ["out.txt", "out", "timelines.PNGX"])
def test_plot_format_is_checked_before_simulating(small: Path, tmp_path: Path, name: str) -> None:
    """An unknown plot format is a usage error at once: one line, exit 2, nothing simulated."""
    code, out, err = run("simulate", str(small), "--plot", str(tmp_path / name))
    assert code == 2 and out == ""
    assert err.startswith(f"error: --plot {tmp_path / name}: expected a .png, .svg or .pdf")
    assert err.count("\n") == 1


def test_a_password_in_the_url_never_reaches_a_message() -> None:
    """Messages end up in CI and cron logs: the URL's password is masked."""
    code, _, err = run("status", "--redis", "redis://app:hunter2@127.0.0.1:1/0")
    assert code == 1 and "hunter2" not in err
    assert "redis://app:***@127.0.0.1:1/0" in err
    code, _, err = run("status", "--redis", "http://app:hunter2@nope")
    assert code == 2 and "hunter2" not in err


def test_reset_with_no_answer_to_read_resets_nothing_and_says_why() -> None:
    """Stdin closed or at its end (cron, CI): no, with the hint to pass --yes."""
    closed = io.StringIO()
    closed.close()
    for stdin in (closed, io.StringIO("")):
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["reset", "--all", "--redis", "redis://127.0.0.1:1/0"],
            stdout=out,
            stderr=err,
            stdin=stdin,
        )
        assert code == 1 and "nothing reset (no answer could be read: --yes" in err.getvalue()


def test_reset_tells_a_bad_url_before_asking() -> None:
    """A mistake is a usage error before the question, as for status."""
    code, _, err = run("reset", "gemini", "--redis", "foo://bar", stdin="n\n")
    assert code == 2 and "[y/N]" not in err and "--redis 'foo://bar'" in err


def test_status_shows_odd_names_on_one_line_each(redis_prefix: tuple[str, str]) -> None:
    """A newline, an escape sequence or a lone surrogate in a name cannot forge or break rows."""
    from resilient_routing.cooldown import RedisCooldownTracker

    from . import redis_support

    url, prefix = redis_prefix
    client = redis_support.sync_client(url)
    try:
        tracker = RedisCooldownTracker(client, prefix=prefix, failure_threshold=1, listen=False)
        for name in ("evil\ngemini", "\x1b[31mred", "bad\udcffname"):
            tracker.record_failure(name, Exception())
        code, out, _ = run("status", "--redis", url, "--prefix", prefix)
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 2 + 3, out  # header, rule, a row each
        assert any("evil\\ngemini" in line for line in lines)
        assert any("\\x1b[31mred" in line for line in lines)
        assert any("bad\\udcffname" in line for line in lines)
        out.encode("utf-8")  # a strict UTF-8 stdout takes it
    finally:
        client.close()


def test_a_scenario_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "drill.toml"
    path.write_bytes(b'name = "\xff\xfe"\n')
    code, _, err = run("simulate", str(path), "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "not UTF-8 text" in err


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0?password=hunter2",
        "unix:///tmp/nowhere-rr.sock?db=0&password=hunter2",
        "redis://:hunter2#x@127.0.0.1:1/0",
        "redis://user:hunter2/x@127.0.0.1:1/0",
        "redis://:hunter2?x@127.0.0.1:1/0",
    ],
)
def test_a_password_in_any_url_form_never_reaches_a_message(url: str) -> None:
    """In the query, in a unix socket URL, or with characters that cut a parsed address."""
    code, out, err = run("status", "--redis", url)
    assert code != 0 and "hunter2" not in out + err and "unter" not in out + err


THREE = """
duration = "30s"
rate = 1.0
[[providers]]
name = "a"
latency = "constant"
latency_median = 1.0
[[providers]]
name = "b"
latency = "constant"
latency_median = 1.0
[[providers]]
name = "c"
latency = "constant"
latency_median = 1.0
"""


@pytest.mark.parametrize(
    "options",
    ["{ weights = [1, 2] }", "{ weights = { gemni = 2 } }"],
    ids=["weights of the wrong type", "a weight naming no provider"],
)
def test_strategy_options_the_strategy_refuses_are_a_scenario_error(
    tmp_path: Path, options: str
) -> None:
    """One line naming the key, exit 2, before anything runs: not a traceback nor a failed run."""
    path = tmp_path / "s.toml"
    config = f'[[configs]]\nname = "w"\nstrategy = "weighted"\nstrategy_options = {options}\n'
    path.write_text(THREE + config, encoding="utf-8")
    code, _, err = run("simulate", str(path), "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "configs[0].strategy_options" in err


def test_a_plot_path_that_is_a_folder_is_refused_before_running(tmp_path: Path) -> None:
    (tmp_path / "out.png").mkdir()
    path = tmp_path / "s.toml"
    path.write_text(THREE, encoding="utf-8")
    code, out, err = run(
        "simulate", str(path), "--no-progress", "--plot", str(tmp_path / "out.png")
    )
    assert code == 2 and out == "" and "a folder, not a file" in err
