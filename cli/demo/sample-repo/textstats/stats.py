"""Statistics over numbers and words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of `values`."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)


def word_counts(text: str) -> dict[str, int]:
    """How often each word (lower-cased) occurs in `text`."""
    return dict(Counter(word.lower() for word in text.split()))
