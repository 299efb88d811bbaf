"""vibe-pipelines: an orchestration layer for AI coding pipelines on Prefect 3.

The `vibe` package is the ground floor: the settings object, the exception tree, redaction, scratch directories
and small file-system helpers. It imports no other package of the project; every other floor (`providers`,
`tasks`, `deployments`, `flows`, the command line in `cli`) builds on it. See `vibe/README.md`.
"""

from __future__ import annotations

__version__ = "0.1.0"
