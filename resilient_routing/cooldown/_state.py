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
        probe_remaining: half-open trackers: seconds left in the claim of the probe out now
            (0.0: none).
    """

    name: str
    failures: int
    level: int
    remaining: float
    probe_remaining: float = 0.0

    @property
    def cooling(self) -> bool:
        """Whether the provider is cooling down now."""
        return self.remaining > 0

    @property
    def probing(self) -> bool:
        """Whether a half-open probe of the provider is out now."""
        return self.remaining <= 0 and self.probe_remaining > 0
