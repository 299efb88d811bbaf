"""Entry point of an analysis worker process (see `tasks.indexing.worker`)."""

from __future__ import annotations

from tasks.indexing.worker import serve

if __name__ == "__main__":
    serve()
