"""Default list prices in US dollars per million tokens: input, cached input, output.

A maintained starting point, not a source of truth: a models file's ``price:`` overrides any
entry, and a model missing here costs 0 (shown as "-" in reports, never as a made-up figure).
Prices are matched on the model name, longest prefix first, so dated snapshots
(``gpt-4.1-mini-2025-04-14``) find their family.

Cached input is what the provider bills for prompt tokens read from its prompt cache
(OpenAI's "cached input" column; Anthropic's "cache hits", 0.1x input). Anthropic also bills
writing the cache: a 5-minute write costs 1.25x input (``ANTHROPIC_CACHE_WRITE``; a 1-hour write,
2x, is never requested by posttrain). OpenAI's cache writes cost the plain input rate. Sources:
platform.openai.com/docs/pricing and docs.anthropic.com/en/docs/about-claude/pricing.
"""

from __future__ import annotations

from posttrain.models.base import Price

#: Anthropic's 5-minute prompt-cache write, as a multiple of the input rate
ANTHROPIC_CACHE_WRITE = 1.25
#: Anthropic's prompt-cache read, as a multiple of the input rate
ANTHROPIC_CACHE_READ = 0.10

# name prefix: (input, cached input, output), USD per million tokens
OPENAI_PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "o3": (2.00, 0.50, 8.00),
    "o4-mini": (1.10, 0.275, 4.40),
    "o3-mini": (1.10, 0.55, 4.40),
}
# name prefix: (input, output), USD per million tokens; cache rates follow from the multipliers
ANTHROPIC_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
}


def _table() -> dict[str, Price]:
    table = {name: Price(input=i, output=o, cached_input=c)
             for name, (i, c, o) in OPENAI_PRICES.items()}
    table.update({name: Price(input=i, output=o, cached_input=round(i * ANTHROPIC_CACHE_READ, 6),
                              cache_write=round(i * ANTHROPIC_CACHE_WRITE, 6))
                  for name, (i, o) in ANTHROPIC_PRICES.items()})
    return table


DEFAULT_PRICES: dict[str, Price] = _table()


def default_price(model: str) -> Price | None:
    """The table's price for a model name (longest matching prefix), or None."""
    name = model.split("/")[-1].lower()
    best = None
    for prefix in DEFAULT_PRICES:
        if name.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else DEFAULT_PRICES[best]
