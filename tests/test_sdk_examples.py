"""The SDK examples (examples/sdks/, shown in docs/sdks.md) fall over as the page says.

Each example builds real SDK clients with their retries off. Against local fakes of its API
(tests/fake_apis.py), a primary answering 429 with the API's retry hint gets exactly one
request (the SDK did not retry), the backup answers, and the primary cools down for the
hinted seconds; a 400 from the primary propagates and the backup gets no request. Every
example also runs as a script, as a user would run it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from resilient_routing import InMemoryCooldownTracker, last_route

from .fake_apis import (
    FakeAPI,
    Reply,
    anthropic_error,
    anthropic_ok,
    bedrock_error,
    bedrock_ok,
    gemini_error,
    gemini_ok,
    json_error,
    json_ok,
    openai_error,
    openai_ok,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "sdks"
HINT = 7.0  # the seconds every throttled primary asks for, in its API's own form

# Variables that would point an SDK elsewhere than the fakes (a real endpoint, a profile, a
# retry setting of the machine): removed for the tests.
_FOREIGN = ("OPENAI_", "ANTHROPIC_", "AWS_", "GOOGLE_", "GEMINI_", "LITELLM_")
# Fake credentials, and no configuration files or instance metadata to look for.
_HERMETIC = {
    "AWS_ACCESS_KEY_ID": "AKIDFAKE",
    "AWS_SECRET_ACCESS_KEY": "fake-secret",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}


@dataclass(frozen=True)
class Case:
    """How one SDK's API answers, and what its example raises for a bad request."""

    sdk: str
    ok: Callable[[str], Reply]
    throttled: Reply  # a 429 carrying a HINT-second retry hint
    bad_request: Reply  # a 400
    bad_request_error: str  # the dotted name of the exception class the 400 raises
    suffix: str = ""  # the API's path prefix under the server's URL


CASES = [
    Case(
        "openai",
        openai_ok,
        openai_error(429, {"retry-after": "7"}),
        openai_error(400),
        "openai.BadRequestError",
        suffix="/v1",
    ),
    Case(
        "anthropic",
        anthropic_ok,
        anthropic_error(429, {"retry-after": "7"}),
        anthropic_error(400),
        "anthropic.BadRequestError",
    ),
    Case(
        "google_genai",
        gemini_ok,
        gemini_error(429, retry_delay="7s"),  # google.rpc.RetryInfo in the body, no header
        gemini_error(400),
        "google.genai.errors.ClientError",
    ),
    Case(
        "boto3",
        bedrock_ok,
        bedrock_error(429, "ThrottlingException", {"x-amz-retry-after": "7000"}),  # ms
        bedrock_error(400, "ValidationException"),
        "botocore.exceptions.ClientError",
    ),
    Case(
        "litellm",
        openai_ok,
        openai_error(429, {"retry-after": "7"}),
        openai_error(400),
        "litellm.BadRequestError",
        suffix="/v1",
    ),
    Case(
        "httpx",
        json_ok,
        json_error(429, {"Retry-After": "7"}),
        json_error(400),
        "httpx.HTTPStatusError",
    ),
    Case(
        "requests",
        json_ok,
        json_error(429, {"Retry-After": "7"}),
        json_error(400),
        "requests.HTTPError",
    ),
]
BY_SDK = {case.sdk: case for case in CASES}


def _class(dotted: str) -> type[BaseException]:
    module, name = dotted.rsplit(".", 1)
    cls: type[BaseException] = getattr(importlib.import_module(module), name)
    return cls


@pytest.fixture
def fakes() -> Iterator[Callable[[Reply], FakeAPI]]:
    """Start fake APIs on demand; stop every one of them (and its threads) after the test."""
    started: list[FakeAPI] = []

    def start(reply: Reply) -> FakeAPI:
        started.append(FakeAPI(reply))
        return started[-1]

    yield start
    for fake in started:
        fake.close()
    assert not any(fake.thread.is_alive() for fake in started)


def _env(case: Case, primary: FakeAPI, backup: FakeAPI) -> dict[str, str]:
    return {
        **_HERMETIC,
        "EXAMPLE_PRIMARY_URL": primary.url + case.suffix,
        "EXAMPLE_BACKUP_URL": backup.url + case.suffix,
    }


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """Import an example afresh with its providers pointed at the fakes; close its clients."""
    loaded: list[ModuleType] = []

    def load(case: Case, primary: FakeAPI, backup: FakeAPI) -> ModuleType:
        for name in list(os.environ):
            if name.startswith(_FOREIGN):
                monkeypatch.delenv(name)
        for name, value in _env(case, primary, backup).items():
            monkeypatch.setenv(name, value)
        name = f"_example_{case.sdk}_fallback"
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{case.sdk}_fallback.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        for provider in module.PROVIDERS:
            for attribute in ("client", "session"):
                getattr(getattr(provider, attribute, None), "close", lambda: None)()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.sdk)
def test_example_script_falls_over_to_the_backup(
    case: Case, fakes: Callable[[Reply], FakeAPI]
) -> None:
    """Run as a script, the example answers from the backup after one request to the primary."""
    primary, backup = fakes(case.throttled), fakes(case.ok("from backup"))
    env = {name: value for name, value in os.environ.items() if not name.startswith(_FOREIGN)}
    # The worktree's package, not whichever copy is installed.
    env |= _env(case, primary, backup) | {"PYTHONPATH": str(ROOT)}
    script = EXAMPLES / f"{case.sdk}_fallback.py"
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "backup answered: from backup"
    assert done.stdout.startswith("primary failed: ")
    assert (len(primary.requests), len(backup.requests)) == (1, 1)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.sdk)
def test_rate_limit_falls_over_at_once_and_cools_the_primary_for_its_hint(
    case: Case,
    fakes: Callable[[Reply], FakeAPI],
    load_example: Callable[..., ModuleType],
    fresh_config: InMemoryCooldownTracker,
) -> None:
    """A 429 reaches the router after one request and cools the primary for the hint."""
    primary, backup = fakes(case.throttled), fakes(case.ok("from backup"))
    example = load_example(case, primary, backup)

    assert example.ask("hello") == "from backup"

    route = last_route()
    assert route is not None and route.provider == "backup"
    assert [name for name, _ in route.failures] == ["primary"]
    assert len(primary.requests) == 1  # the SDK's own retries are off
    assert fresh_config.cooldown_remaining("primary") == pytest.approx(HINT)
    assert fresh_config.is_available("backup")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.sdk)
def test_bad_request_propagates_without_trying_the_backup(
    case: Case,
    fakes: Callable[[Reply], FakeAPI],
    load_example: Callable[..., ModuleType],
    fresh_config: InMemoryCooldownTracker,
) -> None:
    """A 400 from the primary is the SDK's own error; no fall over, nothing cools down."""
    primary, backup = fakes(case.bad_request), fakes(case.ok("from backup"))
    example = load_example(case, primary, backup)

    with pytest.raises(_class(case.bad_request_error)):
        example.ask("hello")

    assert (len(primary.requests), len(backup.requests)) == (1, 0)
    assert fresh_config.is_available("primary")


@pytest.mark.parametrize(
    ("sdk", "reply"),
    [
        ("openai", openai_error(503)),
        ("anthropic", anthropic_error(529)),  # overloaded
        ("anthropic", anthropic_error(503)),
        ("google_genai", gemini_error(503)),
        ("boto3", bedrock_error(503, "ServiceUnavailableException")),
        ("boto3", bedrock_error(408, "ModelTimeoutException")),
        ("litellm", openai_error(503)),
        ("litellm", openai_error(502)),
        ("httpx", json_error(503)),
        ("requests", json_error(502)),
    ],
    ids=lambda value: value if isinstance(value, str) else str(value.status),
)
def test_server_errors_fall_over(
    sdk: str,
    reply: Reply,
    fakes: Callable[[Reply], FakeAPI],
    load_example: Callable[..., ModuleType],
) -> None:
    """Server errors (5xx, Anthropic's 529 overloaded, Bedrock's 408) fall over, one request."""
    primary, backup = fakes(reply), fakes(BY_SDK[sdk].ok("from backup"))
    example = load_example(BY_SDK[sdk], primary, backup)

    assert example.ask("hello") == "from backup"
    assert (len(primary.requests), len(backup.requests)) == (1, 1)


@pytest.mark.parametrize(
    ("sdk", "reply"),
    [
        ("openai", openai_error(401)),
        ("anthropic", anthropic_error(403)),
        ("google_genai", gemini_error(404)),
        ("boto3", bedrock_error(403, "AccessDeniedException")),
        ("litellm", openai_error(422)),
        ("httpx", json_error(401)),
        ("requests", json_error(404)),
    ],
    ids=lambda value: value if isinstance(value, str) else str(value.status),
)
def test_other_client_errors_propagate(
    sdk: str,
    reply: Reply,
    fakes: Callable[[Reply], FakeAPI],
    load_example: Callable[..., ModuleType],
) -> None:
    """Auth, not-found and unprocessable requests propagate: the backup gets no request."""
    primary, backup = fakes(reply), fakes(BY_SDK[sdk].ok("from backup"))
    example = load_example(BY_SDK[sdk], primary, backup)

    with pytest.raises(Exception) as caught:  # noqa: PT011 (each SDK its own class)
        example.ask("hello")

    assert "resilient_routing" not in type(caught.value).__module__
    assert (len(primary.requests), len(backup.requests)) == (1, 0)


def test_unreachable_primary_falls_over(
    fakes: Callable[[Reply], FakeAPI], load_example: Callable[..., ModuleType]
) -> None:
    """A connection refused is a failure that falls over, for every example's predicate."""
    for case in CASES:
        gone, backup = fakes(case.ok("never")), fakes(case.ok("from backup"))
        gone.close()  # its port now refuses connections
        example = load_example(case, gone, backup)
        assert example.ask("hello") == "from backup", case.sdk


def test_botocore_max_attempts_counts_retries_not_attempts(
    fakes: Callable[[Reply], FakeAPI],
) -> None:
    """Config(retries={"max_attempts": 1}) still retries once: hence total_max_attempts=1."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    primary = fakes(bedrock_error(503, "ServiceUnavailableException"))
    sent = []
    for retries in ({"max_attempts": 1, "mode": "standard"}, {"total_max_attempts": 1}):
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=primary.url,
            aws_access_key_id="AKIDFAKE",
            aws_secret_access_key="fake-secret",
            config=Config(retries=retries),  # type: ignore[arg-type]
        )
        before = len(primary.requests)
        with pytest.raises(ClientError):
            client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
        client.close()
        sent.append(len(primary.requests) - before)
    assert sent == [2, 1]


DOCS = ROOT / "docs" / "sdks.md"
_SDK_NAME = re.compile(
    r"`((?:openai|anthropic|litellm|httpx2?|requests|botocore|aiohttp|google\.(?:genai|auth))"
    r"\.[A-Za-z_][\w.]*)"
)


def test_docs_page_includes_every_example() -> None:
    """docs/sdks.md includes each example file (pymdownx snippets), and only files that exist."""
    included = re.findall(r'^--8<-- "([^"]+)"$', DOCS.read_text(), flags=re.MULTILINE)
    assert sorted(included) == sorted(
        str(path.relative_to(ROOT)) for path in EXAMPLES.glob("*_fallback.py")
    )
    assert {f"examples/sdks/{case.sdk}_fallback.py" for case in CASES} == set(included)


def _resolve(dotted: str) -> object:
    """Return what a dotted name names: the longest importable module, then its attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, _ABSENT)
        return found
    return _ABSENT


_ABSENT = object()


def test_every_sdk_name_in_the_docs_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every class, function or setting the page names in an SDK is in the installed SDK."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    names = set(_SDK_NAME.findall(DOCS.read_text()))
    assert len(names) > 50
    assert [name for name in sorted(names) if _resolve(name) is _ABSENT] == []


def test_litellm_global_num_retries_beats_a_per_call_zero(
    fakes: Callable[[Reply], FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With litellm.num_retries set, completion(num_retries=0) still retries (as documented)."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    monkeypatch.setattr(litellm, "num_retries", 2)
    monkeypatch.setattr(litellm, "suppress_debug_info", True)
    primary = fakes(openai_error(429, {"retry-after-ms": "1"}))
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=primary.url + "/v1",
            api_key="sk-fake",
            messages=[{"role": "user", "content": "hello"}],
            num_retries=0,
        )
    assert len(primary.requests) == 3


def test_litellm_own_client_retry_after_is_read(
    fakes: Callable[[Reply], FakeAPI],
    monkeypatch: pytest.MonkeyPatch,
    fresh_config: InMemoryCooldownTracker,
) -> None:
    """A 429 with Retry-After, through litellm's own Anthropic client, cools for the hint."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from resilient_routing import routed

    monkeypatch.setattr(litellm, "suppress_debug_info", True)
    primary = fakes(anthropic_error(429, {"retry-after": "7"}))
    backup = fakes(anthropic_ok("from backup"))
    urls = {"primary": primary.url, "backup": backup.url}

    @routed(providers=["primary", "backup"], fallback_on=litellm.RateLimitError)
    def ask(provider: str, prompt: str) -> str:
        response = litellm.completion(
            model="anthropic/claude-sonnet-4-5",
            api_base=urls[provider],
            api_key="sk-ant-fake",
            messages=[{"role": "user", "content": prompt}],
            num_retries=0,
        )
        return str(response.choices[0].message.content)

    assert ask("hello") == "from backup"
    assert len(primary.requests) == 1
    assert fresh_config.cooldown_remaining("primary") == pytest.approx(HINT)
