"""How a provider object is named, and how a ``providers=`` option is read."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from resilient_routing._exceptions import InvalidConfigError, NoProvidersError

__all__ = [
    "ProviderSnapshot",
    "ProviderSource",
    "provider_name",
    "read_providers",
    "snapshot_providers",
]

#: What ``providers=`` accepts: a sequence, or a zero-argument callable returning one.
ProviderSource: TypeAlias = "Sequence[Any] | Callable[[], Sequence[Any]]"

#: ``providers=`` as a route keeps it: the providers and their names, or the callable to read.
ProviderSnapshot: TypeAlias = (
    "tuple[tuple[Any, ...], tuple[str, ...]] | Callable[[], Sequence[Any]]"
)


def provider_name(provider: object) -> str:
    """Return the name that identifies ``provider`` in cooldown state, logs and results.

    Args:
        provider: any object with a ``name`` attribute, or a ``str``.

    Returns:
        ``provider.name`` when the object has one, else the string itself.

    Raises:
        InvalidConfigError: the provider has no usable name.
    """
    name = getattr(provider, "name", None)
    if name is None:
        if isinstance(provider, str):
            return provider
        raise InvalidConfigError(
            f"provider {provider!r} has no name: expected a str or an object "
            "with a str `name` attribute"
        )
    if not isinstance(name, str):
        raise InvalidConfigError(
            f"provider {provider!r} has a `name` of type {type(name).__name__}: expected a str"
        )
    return name


def _as_tuple(providers: object, origin: str) -> tuple[Any, ...]:
    if isinstance(providers, (str, bytes)) or not isinstance(providers, Sequence):
        raise InvalidConfigError(
            f"{origin} must be a sequence of providers (a list or tuple), "
            f"got {type(providers).__name__}: {providers!r}"
        )
    return tuple(providers)


def snapshot_providers(providers: object) -> ProviderSnapshot:
    """Read ``providers=`` at decoration time.

    A sequence is copied and named once; a callable is kept to be read at each call.

    Raises:
        InvalidConfigError: neither a sequence nor a callable, or a provider has no name.
    """
    if isinstance(providers, type):
        hint = f" (an Enum: list({providers.__name__}))" if issubclass(providers, enum.Enum) else ""
        raise InvalidConfigError(
            f"providers must be a sequence of providers or a zero-argument callable returning "
            f"one, got the class {providers.__name__}{hint}"
        )
    if callable(providers) and not isinstance(providers, Sequence):
        return providers
    items = _as_tuple(providers, "providers")
    return items, tuple(provider_name(p) for p in items)


def read_providers(source: ProviderSnapshot) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Return the providers and their names for one call.

    Raises:
        NoProvidersError: the list is empty.
        InvalidConfigError: the callable returned something other than a sequence of
            named providers.
    """
    if isinstance(source, tuple):
        items, names = source
    else:
        items = _as_tuple(source(), "the providers callable's result")
        names = tuple(provider_name(p) for p in items)
    if not items:
        raise NoProvidersError("no providers to route the call to: the provider list is empty")
    return items, names
