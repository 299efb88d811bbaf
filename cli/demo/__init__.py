"""The bundled demo: a tiny sample repository and the replay cassette that `vibe demo` runs the pipeline on.

`sample-repo/` is package data (a directory that is not a Python package, so nothing imports or type-checks
it as part of `vibe`); `cassette.json` holds the recorded model replies, keyed by the canonical request.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
SAMPLE_REPO = DEMO_DIR / "sample-repo"
CASSETTE = DEMO_DIR / "cassette.json"
REQUEST = (
    "Add a median(values) function to textstats/stats.py: it returns the median of a non-empty sequence of "
    "numbers (the mean of the two middle values when the count is even) and raises ValueError on an empty "
    "sequence. Add tests for it in tests/test_median.py."
)
