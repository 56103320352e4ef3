"""Global configuration."""

from __future__ import annotations

import copy
import logging

import pytest

from resilient_routing import (
    UNSET,
    Config,
    InMemoryCooldownTracker,
    InvalidConfigError,
    configure,
    get_config,
)


def test_configure_changes_only_what_it_is_given(fresh_config: InMemoryCooldownTracker) -> None:
    """Options not passed keep their value; exempt_providers becomes a frozenset."""
    configure(exempt_providers=["laozhang", "laozhang"])
    config = get_config()
    assert config.exempt_providers == frozenset({"laozhang"})
    assert config.cooldown is fresh_config
    tracker = InMemoryCooldownTracker()
    configure(cooldown=tracker)
    assert get_config().cooldown is tracker
    assert get_config().exempt_providers == frozenset({"laozhang"})


def test_cooldown_none_disables_global_tracking() -> None:
    """configure(cooldown=None) means routed functions track nothing by default."""
    configure(cooldown=None)
    assert get_config().cooldown is None


def test_default_logger() -> None:
    """The default logger is 'resilient_routing'; configure(logger=) replaces it."""
    assert get_config().logger.name == "resilient_routing"
    configure(logger=logging.getLogger("app"))
    assert get_config().logger.name == "app"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cooldown": 3}, "configure\\(cooldown=...\\) must be a CooldownTracker"),
        ({"exempt_providers": "laozhang"}, "collection of provider names"),
        ({"exempt_providers": 5}, "collection of provider names"),
        (
            {"exempt_providers": [["laozhang"]]},
            r"must hold provider names \(str\), got \['laozhang'\]",
        ),
        ({"logger": "app"}, "logging.Logger"),
    ],
)
def test_bad_values_change_nothing(options: dict[str, object], message: str) -> None:
    """A bad option raises and leaves the whole configuration as it was."""
    before = get_config()
    with pytest.raises(InvalidConfigError, match=message):
        configure(**{"exempt_providers": {"x"}, "logger": logging.getLogger("x"), **options})
    assert get_config() is before


def test_config_snapshot_is_immutable() -> None:
    """get_config() returns a frozen snapshot."""
    with pytest.raises(AttributeError):
        get_config().exempt_providers = frozenset()  # type: ignore[misc]
    assert repr(UNSET) == "UNSET"


def test_config_copies_keep_their_type() -> None:
    """A copy of the snapshot (or of a subclass of Config) is equal and of the same type."""

    class Mine(Config):
        __slots__ = ()

    config = get_config()
    mine = Mine(config.cooldown, config.exempt_providers, config.logger)
    assert copy.copy(config) == config
    assert type(copy.copy(mine)) is Mine and copy.copy(mine) == mine
    assert mine != config  # not the same type


def test_a_tracker_class_is_refused_with_the_fix() -> None:
    """configure(cooldown=TheClass) names the instance it should be."""
    with pytest.raises(InvalidConfigError, match=r"InMemoryCooldownTracker\(\), got the class"):
        configure(cooldown=InMemoryCooldownTracker)  # type: ignore[arg-type]
