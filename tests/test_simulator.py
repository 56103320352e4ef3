"""The simulator's newer scenario keys and what a user reads off its report.

Every run is on virtual time: an hour of traffic takes a fraction of a second, nothing sleeps.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from resilient_routing._cli import main
from resilient_routing._sim import plot as plot_module
from resilient_routing._sim.latency import Bimodal, Constant, Lognormal, Uniform
from resilient_routing._sim.report import as_json, table
from resilient_routing._sim.run import simulate
from resilient_routing._sim.scenario import OutageSpec, parse_scenario

ROOT = Path(__file__).parent.parent

# A primary and a terminus; the tests add outages and configs.
TWO = """
seed = 11
duration = "{duration}"
rate = {rate}

[[providers]]
name = "a"
latency_median = 0.5
latency_p95 = 1.0
{a}

[[providers]]
name = "t"
latency_median = 0.8
latency_p95 = 1.5
{t}
"""


def scenario_text(
    body: str, *, duration: str = "30m", rate: float = 2.0, a: str = "", t: str = ""
) -> str:
    return TWO.format(duration=duration, rate=rate, a=a, t=t) + body


def report(text: str) -> dict[str, Any]:
    """Simulate the scenario ``text``; return its JSON report."""
    scenario = parse_scenario(text, "test.toml")
    return json.loads(json.dumps(as_json(scenario, simulate(scenario))))


def configs(text: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report(text)["configs"]}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- the scenario's checks -------------------------------------------------------------------

PROV = "[[providers]]\nname='a'\nlatency_median=1\n"
CONF = "[[configs]]\nname='x'\n"
STREAM = CONF + "stream=true\n"
OUTAGE = "[[outages]]\nprovider='a'\nstart=1\nend=2\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            PROV + CONF + "half_open='yes'",
            "configs[0].half_open: expected true or false, got 'yes'",
        ),
        (PROV + CONF + "probe_timeout=5", "configs[0].probe_timeout: only with half_open = true"),
        (
            PROV + CONF + "half_open=true\nprobe_timeout=0",
            "configs[0].probe_timeout: expected seconds: a finite number > 0",
        ),
        (
            PROV + CONF + "half_open=true\ntrack_cooldown=false",
            "configs[0].half_open: expected false when track_cooldown = false",
        ),
        (
            PROV + CONF + "track_cooldown=false\ncooldown=5",
            "configs[0].cooldown: only with a tracker (track_cooldown = true)",
        ),
        (
            PROV + CONF + "track_cooldown=false\nexempt=['a']",
            "configs[0].exempt: only with a tracker (track_cooldown = true)",
        ),
        (
            PROV + CONF + "slow_call=-1",
            "configs[0].slow_call: expected seconds: a finite number > 0",
        ),
        (PROV + CONF + "slow_call='soon'", "configs[0].slow_call: expected seconds"),
        (
            PROV + CONF + "first_item_timeout=2",
            "configs[0].first_item_timeout: only for a streaming config (stream = true)",
        ),
        (PROV + CONF + "idle_timeout=2", "configs[0].idle_timeout: only for a streaming config"),
        (PROV + CONF + "stream=1", "configs[0].stream: expected true or false, got 1"),
        ("stream='yes'\n" + PROV, "stream: expected true or false, got 'yes'"),
        (
            PROV + STREAM + "attempt_timeout=2",
            "configs[0].attempt_timeout: not for a streaming config: its attempt ends at the "
            "first item; use first_item_timeout",
        ),
        (
            PROV + STREAM + "idle_timeout=0",
            "configs[0].idle_timeout: expected seconds: a finite number > 0",
        ),
        (
            PROV + STREAM + "first_item_timeout='1 min'",
            "configs[0].first_item_timeout: expected seconds",
        ),
        (
            PROV + CONF + "cooldown_on=['stall']",
            "configs[0].cooldown_on: expected names among '5xx', '429', 'timeout', 'slow', 'cut'",
        ),
        (PROV + OUTAGE + "kind='slow'", "outages[0].added_latency: missing (required)"),
        (
            PROV + OUTAGE + "kind='slow'\nadded_latncy=2",
            "outages[0].added_latency: missing (required); the table has 'added_latncy', a typo?",
        ),
        (
            PROV + OUTAGE + "added_latency=3",
            "outages[0].added_latency: only for kind = 'slow' (this outage is '5xx')",
        ),
        (
            PROV + OUTAGE + "kind='slow'\nadded_latency=0",
            "outages[0].added_latency: expected seconds: a finite number > 0",
        ),
        (
            PROV + OUTAGE + "kind='latency'",
            "outages[0].kind: expected one of '5xx', '429', 'timeout', 'slow', 'cut', 'stall'",
        ),
        (
            PROV + OUTAGE + "kind='slow'\nadded_latency=2\nafter_items=3",
            "outages[0].after_items: only for kind = 'cut' or 'stall' (this outage is 'slow')",
        ),
        (
            PROV + OUTAGE + "kind='cut'\nafter_items=0",
            "outages[0].after_items: expected an integer >= 1",
        ),
        (
            PROV + OUTAGE + "kind='stall'\nafter_items=21",
            "outages[0].after_items: expected at most the items per stream of 'a' (20), got 21",
        ),
        (
            PROV + OUTAGE + "kind='cut'\nretry_after=5",
            "outages[0].retry_after: only for the error kinds (this outage is 'cut')",
        ),
        (
            "[[providers]]\nname='a'\nlatency='gamma'",
            "providers[0].latency: expected one of 'lognormal', 'constant', 'uniform', 'bimodal'",
        ),
        (
            PROV + "latency='constant'\nlatency_p95=2",
            "providers[0].latency_p95: not used by latency = 'constant' (it takes latency_median)",
        ),
        (
            "[[providers]]\nname='a'\nlatency='uniform'\nlatency_max=2",
            "providers[0].latency_min: missing (required)",
        ),
        (
            "[[providers]]\nname='a'\nlatency='uniform'\nlatency_min=0.5\nlatency_max=0.5",
            "providers[0].latency_max: expected a number > 0.5, got 0.5",
        ),
        (
            "[[providers]]\nname='a'\nlatency='uniform'\nlatency_median=1",
            "providers[0].latency_median: not used by latency = 'uniform' (it takes "
            "latency_min, latency_max)",
        ),
        (PROV + "latency='bimodal'\nslow_median=5", "providers[0].slow_share: missing (required)"),
        (
            PROV + "latency='bimodal'\nslow_share=1.5\nslow_median=5",
            "providers[0].slow_share: expected a number > 0 and <= 1",
        ),
        (
            PROV + "latency='bimodal'\nslow_share=0.1\nslow_median=0.5",
            "providers[0].slow_median: expected a number >= 1, got 0.5",
        ),
        (PROV + "slow_share=0.1", "providers[0].slow_share: not used by latency = 'lognormal'"),
        (PROV + "items=0\n" + STREAM, "providers[0].items: expected an integer >= 1"),
        (PROV + "item_interval=-1\n" + STREAM, "providers[0].item_interval: expected seconds"),
        (
            PROV + "items=5\n" + CONF,
            "providers[0].items: only used by streaming configs, and none streams",
        ),
    ],
)
def test_bad_new_keys_name_file_key_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    """A wrong value of a new key exits 2 with one line naming the file, key and expectation."""
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run("simulate", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {path}: ")
    assert message in err
    assert err.count("\n") == 1


KEYS = """
stream = true
[[providers]]
name = "a"
latency = "uniform"
latency_min = 0.1
latency_max = 0.3
items = 8
item_interval = 0.2
[[providers]]
name = "t"
latency = "bimodal"
latency_median = 0.8
latency_p95 = 1.5
slow_share = 0.1
slow_median = 3
[[outages]]
provider = "a"
start = "1m"
end = "2m"
kind = "cut"
after_items = 4
[[outages]]
provider = "a"
start = "3m"
end = "4m"
kind = "slow"
added_latency = "1500ms"
[[configs]]
name = "s"
half_open = true
probe_timeout = "20s"
slow_call = 2
first_item_timeout = 3
idle_timeout = 0.5
[[configs]]
name = "plain"
stream = false
"""


def test_the_new_keys_are_read() -> None:
    """Each key lands where the simulator reads it; absent keys keep their defaults."""
    scenario = parse_scenario(KEYS, "keys.toml")
    a, t = scenario.providers
    assert a.latency == Uniform(0.1, 0.3) and (a.items, a.item_interval) == (8, 0.2)
    assert t.latency == Bimodal(Lognormal(0.8, 1.5), Lognormal(3.0, 6.0), 0.1)
    assert (t.items, t.item_interval) == (20, 0.05)
    cut, slow = scenario.outages
    assert (cut.kind, cut.after_items) == ("cut", 4)
    assert (slow.kind, slow.added_latency) == ("slow", 1.5)
    s, plain = scenario.configs
    assert (s.stream, s.half_open, s.probe_timeout, s.slow_call) == (True, True, 20.0, 2.0)
    assert (s.first_item_timeout, s.idle_timeout) == (3.0, 0.5)
    assert not plain.stream and not plain.half_open and plain.slow_call is None
    assert "slow" in plain.cooldown_on and "cut" in plain.cooldown_on
    constant = parse_scenario(PROV + "latency = 'constant'", "c.toml").providers[0]
    assert constant.latency == Constant(1.0)


# -- determinism ---------------------------------------------------------------------------

EVERYTHING = """
seed = 11
duration = "20m"
rate = 2
[[providers]]
name = "a"
latency_median = 0.5
items = 6
[[providers]]
name = "b"
latency = "bimodal"
latency_median = 0.4
slow_share = 0.2
slow_median = 2
items = 5
[[providers]]
name = "t"
latency = "uniform"
latency_min = 0.5
latency_max = 1.5
items = 4
[[outages]]
provider = "a"
start = "2m"
end = "9m"
kind = "timeout"
[[outages]]
provider = "a"
start = "11m"
end = "13m"
kind = "cut"
failure_rate = 0.5
[[outages]]
provider = "b"
start = "12m"
end = "14m"
kind = "stall"
after_items = 2
[[outages]]
provider = "b"
start = "15m"
end = "18m"
kind = "slow"
added_latency = 3
[[configs]]
name = "half-open"
half_open = true
slow_call = 2
[[configs]]
name = "stream"
stream = true
half_open = true
idle_timeout = 1
first_item_timeout = 4
[[configs]]
name = "hedged stream"
strategy = "hedged"
strategy_options = { delay = 0.5 }
stream = true
[[configs]]
name = "weighted"
strategy = "weighted"
strategy_options = { weights = { a = 2, b = 1 } }
"""


def test_same_seed_same_json_with_every_new_feature(tmp_path: Path) -> None:
    """Streams, cuts, stalls, slow outages, probes and hedging: the same seed, the same JSON."""
    path = tmp_path / "all.toml"
    path.write_text(EVERYTHING, encoding="utf-8")
    first = run("simulate", str(path), "--json")
    second = run("simulate", str(path), "--json")
    assert first[0] == 0 and first == second
    assert run("simulate", str(path), "--json", "--seed", "12")[1] != first[1]


# -- what a user relies on -----------------------------------------------------------------

LONG_OUTAGE = scenario_text(
    """
    [[outages]]
    provider = "a"
    start = "5m"
    end = "25m"
    kind = "{kind}"
    [[configs]]
    name = "plain"
    exempt = ["t"]
    [[configs]]
    name = "half-open"
    exempt = ["t"]
    half_open = true
    probe_timeout = 15
    """
)


@pytest.mark.parametrize("kind", ["5xx", "timeout"])
def test_half_open_sends_one_attempt_per_recovery(kind: str) -> None:
    """A provider down for several cooldowns gets one probe per recovery, not a burst."""
    result = configs(LONG_OUTAGE.replace("{kind}", kind))
    plain = result["plain"]["during_outages"]["a@300s"]
    half = result["half-open"]["during_outages"]["a@300s"]
    assert half["recoveries"] >= 4, "20 minutes cover several cooldowns (30, 60, 120, 240 s)"
    assert half["largest_recovery"] == 1
    assert half["probes"] == half["recoveries"]
    # Without half-open, each recovery costs at least the failure threshold (3 failures).
    assert plain["largest_recovery"] >= 3
    assert plain["attempts"] > half["attempts"]
    assert result["half-open"]["probes"]["started"] >= half["probes"]
    assert result["plain"]["probes"]["started"] == 0


def test_half_open_shows_in_the_table() -> None:
    """The table gets a probes column, and the per-outage attempts / recoveries / largest."""
    scenario = parse_scenario(LONG_OUTAGE.replace("{kind}", "5xx"), "t.toml")
    text = table(scenario, simulate(scenario))
    header = next(line for line in text.splitlines() if line.startswith("config  "))
    assert header.split()[-1] == "probes"
    rows = text.split("during each outage:")[1].splitlines()
    half = next(line for line in rows if line.startswith("half-open"))
    assert re.search(r"\d+ / \d+ / 1$", half)


def test_no_probes_column_without_half_open(tmp_path: Path) -> None:
    """Columns of features no configuration uses stay out of the table."""
    text = LONG_OUTAGE.replace("{kind}", "5xx").replace("half_open = true\n", "")
    text = text.replace("probe_timeout = 15\n", "")
    scenario = parse_scenario(text, "t.toml")
    out = table(scenario, simulate(scenario))
    assert "probes" not in out.splitlines()[2] and "slow calls" not in out
    assert "streams:" not in out


SLOW_OUTAGE = scenario_text(
    """
    [[outages]]
    provider = "a"
    start = "5m"
    end = "15m"
    kind = "slow"
    added_latency = 5
    [[configs]]
    name = "plain"
    exempt = ["t"]
    [[configs]]
    name = "slow_call"
    exempt = ["t"]
    slow_call = 3
    """,
    duration="20m",
)


def test_slow_call_diverts_traffic_during_a_slow_outage() -> None:
    """Answers 5 s late: without slow_call they keep coming; with it the calls go elsewhere."""
    result = configs(SLOW_OUTAGE)
    plain, slow = result["plain"], result["slow_call"]
    assert plain["success_rate"] == slow["success_rate"] == 1.0, "slow answers are answers"
    assert plain["slow_calls"]["seen"] == 0 and plain["during_outages"]["a@300s"]["cooldowns"] == 0
    assert slow["slow_calls"]["counted"] >= 3
    assert (
        slow["during_outages"]["a@300s"]["attempts"] * 4
        < plain["during_outages"]["a@300s"]["attempts"]
    )
    assert slow["provider_share"]["t"] > plain["provider_share"]["t"] + 0.2
    assert slow["latency_p95"] < plain["latency_p95"]


def test_hedging_answers_around_a_slow_outage() -> None:
    """Hedged after 1 s, a call never waits for the slow provider's late answer."""
    text = SLOW_OUTAGE + '[[configs]]\nname = "hedged"\nstrategy = "hedged"\n'
    text += "strategy_options = { delay = 1.0 }\n"
    result = configs(text)
    assert result["hedged"]["latency_p99"] < 1.0 + 3.0 < result["plain"]["latency_p99"]


STREAMS = scenario_text(
    """
    [[outages]]
    provider = "a"
    start = "2m"
    end = "6m"
    kind = "{kind}"
    after_items = 3
    [[configs]]
    name = "stream"
    stream = true
    exempt = ["t"]
    [[configs]]
    name = "stream, idle 1s"
    stream = true
    exempt = ["t"]
    idle_timeout = 1
    [[configs]]
    name = "answers"
    exempt = ["t"]
    """,
    duration="10m",
    a="items = 10\nitem_interval = 0.1\ntimeout = 30",
    t="items = 10\nitem_interval = 0.1",
)


def test_cut_streams_are_reported_as_failed_mid_stream() -> None:
    """A stream cut after its first items fails its call (never restarted elsewhere)."""
    result = configs(STREAMS.replace("{kind}", "cut"))
    stream = result["stream"]
    outcomes = stream["streams"]
    assert outcomes["failed_mid_stream"] >= 3, "cut until the failures cool the provider down"
    assert (
        stream["failed_calls"]
        == outcomes["failed_mid_stream"] + outcomes["failed_before_first_item"]
    )
    assert outcomes["completed"] == stream["calls"] - stream["failed_calls"]
    assert stream["during_outages"]["a@120s"]["cooldowns"] >= 1, "cuts count toward cooldowns"
    assert stream["ttfi_p50"] is not None and stream["ttfi_p50"] < stream["latency_p50"]
    assert result["answers"]["streams"] is None and result["answers"]["ttfi_p50"] is None


def test_cut_answers_fail_for_a_config_that_does_not_stream() -> None:
    """A call that does not stream loses its whole answer to a cut, and falls over."""
    answers = configs(STREAMS.replace("{kind}", "cut"))["answers"]
    assert answers["wasted_attempts"] >= 3 and answers["success_rate"] == 1.0


def test_idle_timeout_ends_a_stalled_stream() -> None:
    """A stall holds the stream until the provider's 30 s timeout, or idle_timeout's 1 s."""
    result = configs(STREAMS.replace("{kind}", "stall"))
    held, idle = result["stream"], result["stream, idle 1s"]
    assert held["streams"]["failed_mid_stream"] >= 3
    assert idle["streams"]["failed_mid_stream"] >= 3
    assert held["latency_p99"] > 30
    # After 3 items (0.2 s apart), one idle second: the stall ends in seconds, not 30.
    assert idle["latency_p99"] < 10


def test_first_item_timeout_falls_over_a_hung_provider() -> None:
    """Before the first item, a hung provider is left after first_item_timeout."""
    text = STREAMS.replace("{kind}", "timeout").replace("after_items = 3\n", "")
    text += '[[configs]]\nname = "fit 3s"\nstream = true\nexempt = ["t"]\n'
    text += "first_item_timeout = 3\n"
    result = configs(text)
    held, fit = result["stream"], result["fit 3s"]
    assert held["ttfi_p99"] >= 30, "the provider's own timeout"
    assert 3 <= fit["ttfi_p99"] < 3 + 3, "3 s on the hung provider, then the terminus"
    assert fit["streams"]["failed_before_first_item"] == 0
    assert (
        fit["during_outages"]["a@120s"]["attempts"] * 3
        < held["during_outages"]["a@120s"]["attempts"]
    ), "hung attempts end sooner, so cooldowns start sooner"


def test_streams_table_section() -> None:
    """Streaming configs get their time to first item and stream outcomes in the table."""
    scenario = parse_scenario(STREAMS.replace("{kind}", "cut"), "s.toml")
    text = table(scenario, simulate(scenario))
    section = text.split("streams: time to first item")[1].split("\n\n")[0]
    assert "ttfi p50" in section and "failed mid-stream" in section
    assert "stream, idle 1s" in section and "answers" not in section


def test_latency_distributions_per_provider() -> None:
    """Constant, uniform and bimodal latencies show in the per-provider p50/p95."""
    text = """
    seed = 5
    duration = "30m"
    rate = 3
    [[providers]]
    name = "c"
    latency = "constant"
    latency_median = 0.7
    [[providers]]
    name = "u"
    latency = "uniform"
    latency_min = 1
    latency_max = 2
    [[providers]]
    name = "b"
    latency = "bimodal"
    latency_median = 0.5
    latency_p95 = 0.8
    slow_share = 0.2
    slow_median = 6
    [[configs]]
    name = "rr"
    strategy = "round_robin"
    """
    (rr,) = report(text)["configs"]
    latency = rr["provider_latency"]
    assert latency["c"] == {"p50": 0.7, "p95": 0.7}
    # Uniform on [1, 2]: the median near 1.5, the 95th percentile near 1.95.
    assert latency["u"]["p50"] == pytest.approx(1.5, abs=0.1)
    assert latency["u"]["p95"] == pytest.approx(1.95, abs=0.05)
    # Mostly fast, a fifth slow: the median is the fast mode's, the tail the slow one's.
    assert latency["b"]["p50"] < 0.8 and latency["b"]["p95"] > 4


def test_a_provider_no_config_uses_has_no_latency(tmp_path: Path) -> None:
    """The share table shows no latency for a provider that served nothing."""
    text = scenario_text('[[configs]]\nname = "only t"\nproviders = ["t"]\n', duration="5m")
    (only,) = report(text)["configs"]
    assert only["provider_latency"]["a"] == {"p50": None, "p95": None}
    assert only["provider_latency"]["t"]["p50"] is not None


# -- the plot ------------------------------------------------------------------------------


def test_plot_has_a_latency_panel_per_config(tmp_path: Path, monkeypatch: Any) -> None:
    """Beside each share panel, the latency (or time to first item) per minute."""
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    scenario = parse_scenario(STREAMS.replace("{kind}", "cut"), "s.toml")
    target = tmp_path / "timeline.png"
    plot_module.plot(scenario, simulate(scenario), target)
    assert target.read_bytes().startswith(b"\x89PNG")
    (figure,) = figures
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    assert titles.count("time to first item per minute: p50, p95") == 2
    assert titles.count("latency per minute: p50, p95") == 1
    latency_axes = [ax for ax in figure.axes if "per minute" in ax.get_title(loc="left")]
    assert all(ax.get_yscale() == "log" for ax in latency_axes)
    assert len({ax.get_ylim() for ax in latency_axes}) == 1, "one scale for every panel"
    legend_texts = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert "1  a cut, 2-6 min" in legend_texts and "a" in legend_texts
    plt.close(figure)


def test_provider_colours_are_distinct_and_never_the_outage_grey() -> None:
    """Up to 18 providers, each its own colour; none is a grey like the outages."""
    import matplotlib.colors as mcolors

    colours = plot_module.provider_colours([f"p{i}" for i in range(18)])
    assert len(set(colours.values())) == 18
    for colour in [*colours.values()]:
        r, g, b = mcolors.to_rgb(colour)
        assert max(r, g, b) - min(r, g, b) > 0.1, f"{colour} is a grey"
    assert plot_module.OUTAGE_GREY not in colours.values()


def test_outage_labels_take_separate_lanes_when_close() -> None:
    """Overlapping or close outages get their labels in different lanes; far ones share."""
    outages = [
        OutageSpec("a", 600, 1500),
        OutageSpec("b", 660, 700),  # starts a minute later: too close
        OutageSpec("c", 620, 900),  # closer still
        OutageSpec("a", 2400, 2500),  # far away: the first lane again
    ]
    assert plot_module.label_lanes(outages, 3600) == [0, 2, 1, 0]
    assert plot_module.hatches(12)[10] == "////", "past ten patterns, denser ones"


# -- documentation and shipped scenarios ---------------------------------------------------


def _documented_scenarios() -> list[tuple[str, str]]:
    return [
        (path.name, block)
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for block in re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
        if "[[providers]]" in block
    ]


def test_the_documented_scenario_format_parses() -> None:
    """Every scenario shown in the docs is valid, and uses the keys this change added."""
    blocks = _documented_scenarios()
    assert blocks
    keys = ("half_open", "slow_call", "bimodal", "added_latency", "after_items", "idle_timeout")
    for name, block in blocks:
        scenario = parse_scenario(block, name)
        assert scenario.providers
    assert all(any(k in b for _, b in blocks) for k in keys)


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "scenarios").glob("*.toml")))
def test_example_scenarios_run(path: Path) -> None:
    """The scenarios shipped as examples are valid and run."""
    code, out, err = run("simulate", str(path))
    assert code == 0, err
    assert "config" in out


def test_simulate_help_names_the_scenario_keys() -> None:
    """Simulate --help says what a scenario holds and where its format is documented."""
    code, out, _ = run("simulate", "--help")
    assert code == 0
    text = " ".join(out.split())
    for key in ("bimodal", "added_latency", "after_items", "half_open", "slow_call", "stream"):
        assert key in text
    assert "simulator section of the README" in text
