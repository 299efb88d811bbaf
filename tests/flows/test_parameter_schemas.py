"""What a deployment shows in the Prefect UI and stores with each run: its flow's parameter schema. No flow
takes the settings object, so no API key, token or other secret field can appear there."""

from __future__ import annotations

import importlib
import json
import pkgutil

from prefect import Flow
from prefect.utilities.callables import parameter_schema

import flows


def _all_flows() -> list[Flow[..., object]]:
    found: list[Flow[..., object]] = []
    for module in pkgutil.iter_modules(flows.__path__):
        loaded = importlib.import_module(f"flows.{module.name}")
        found += [v for v in vars(loaded).values() if isinstance(v, Flow) and v.fn.__module__ == loaded.__name__]
    return found


def test_every_flow_is_found() -> None:
    names = {f.name for f in _all_flows()}
    assert {"feature_pipeline", "generate_code", "run_tests", "open_pull_request", "index_codebase",
            "cleanup_runs", "reindex_repositories"} <= names


def test_no_flow_parameter_schema_holds_settings_or_secrets() -> None:
    for flow in _all_flows():
        schema = parameter_schema(flow).model_dump()
        # Field names and types, not the descriptions (which may mention where settings come from).
        names = json.dumps([list(schema["properties"]), list(schema.get("definitions") or {}),
                            [p.get("type") for p in schema["properties"].values()]]).lower()
        for word in ("settings", "api_key", "token", "secret", "redis_url"):
            assert word not in names, f"{flow.name}: {word!r} in its parameter schema"
        assert "secretstr" not in json.dumps(schema).lower()
