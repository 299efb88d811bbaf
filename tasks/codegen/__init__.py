"""Code generation: the prompt, the edit parser, safe application of edits and the run's budget.

Plain typed functions live in the modules; `prefect_tasks.py` holds the thin Prefect task wrappers the flows call.
"""
