"""vibe-pipelines: an orchestration layer for AI coding pipelines on Prefect 3.

The `vibe` package holds what every other package shares: the settings object, the exception tree and the
command line. The work itself lives in the top-level packages `providers`, `tasks` and `flows`.
"""

from __future__ import annotations

__version__ = "0.1.0"
