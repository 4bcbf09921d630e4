"""Price table for Gemini Embedding 2 input tokens, and cost estimates from token counts by modality."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigurationError

# USD per 1M input tokens, standard (interactive) API, from the shared API notes.
DEFAULT_PRICES_PER_MTOK: dict[str, float] = {
    "text": 0.20,
    "image": 0.45,
    "audio": 6.50,
    "video": 12.00,
    # PDF pages are billed as images by Gemini; kept separate so callers can override.
    "pdf": 0.45,
}
BATCH_PRICES_PER_MTOK: dict[str, float] = {k: v / 2 for k, v in DEFAULT_PRICES_PER_MTOK.items()}


@dataclass(frozen=True, slots=True)
class PriceTable:
    """USD per one million input tokens by modality (``text``, ``image``, ``audio``, ``video``, ``pdf``)."""

    per_million: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES_PER_MTOK))

    def __post_init__(self) -> None:
        for modality, price in self.per_million.items():
            if price < 0:
                raise ConfigurationError(
                    f"price for {modality!r} is negative ({price}); prices are USD per 1M tokens"
                )

    def cost(self, tokens_by_modality: Mapping[str, int]) -> float:
        """Estimated USD for the given token counts; unknown modalities are priced as text."""
        text_price = self.per_million.get("text", DEFAULT_PRICES_PER_MTOK["text"])
        return sum(n * self.per_million.get(m, text_price) for m, n in tokens_by_modality.items()) / 1_000_000


def price_table(prices: PriceTable | Mapping[str, float] | None) -> PriceTable:
    """Coerce None (defaults), a mapping (merged over the defaults) or a table to a :class:`PriceTable`."""
    if prices is None:
        return PriceTable()
    if isinstance(prices, PriceTable):
        return prices
    return PriceTable({**DEFAULT_PRICES_PER_MTOK, **prices})
