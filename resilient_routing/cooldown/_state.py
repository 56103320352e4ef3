"""What a tracker reports about one provider (``states()``), for operators.

Its own module, imported when first needed: routing never builds one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProviderState"]


@dataclass(frozen=True, slots=True)
class ProviderState:
    """What a tracker remembers of one provider (``states()`` of the shipped trackers).

    Attributes:
        name: the provider's name.
        failures: consecutive failures counted toward the next cooldown.
        level: consecutive cooldowns without a success in between (1 for a first cooldown).
        remaining: seconds left in its cooldown, 0.0 when available.
    """

    name: str
    failures: int
    level: int
    remaining: float

    @property
    def cooling(self) -> bool:
        """Whether the provider is cooling down now."""
        return self.remaining > 0
