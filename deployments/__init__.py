"""Prefect set-up and operations for vibe-pipelines: see README.md in this folder."""
