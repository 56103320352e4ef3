"""Routing strategies: the protocol, the built-in classes and the registry."""

from __future__ import annotations

from ._registry import available_strategies, get_strategy, register_strategy
from ._strategies import Fallback, PrimaryOnly, RoundRobin, Strategy

__all__ = [
    "Fallback",
    "PrimaryOnly",
    "RoundRobin",
    "Strategy",
    "available_strategies",
    "get_strategy",
    "register_strategy",
]
