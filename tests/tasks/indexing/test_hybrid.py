"""Hybrid search: a vector index over all chunks fused with the lexical ranking, against an OpenAI-compatible
embeddings server on loopback (deterministic "concept word" vectors)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from providers.embeddings import OpenAIEmbedder, embedder_from_settings
from tasks.indexing import index_repository, search_code
from tests.tasks.indexing.conftest import MakeRepo
from vibe.errors import ProviderError
from vibe.settings import Settings

_DIMS = 32
# The fake model's "meaning": these words share a direction; every other word gets its own hashed one.
_CONCEPTS = {"car": 0, "automobile": 0, "vehicle": 0, "motor": 0, "driving": 0}


def _vector(text: str) -> list[float]:
    vector = [0.0] * _DIMS
    for word in re.findall(r"[a-z]+", text.lower()):
        dim = _CONCEPTS.get(word)
        if dim is None:
            dim = 1 + int(hashlib.md5(word.encode()).hexdigest(), 16) % (_DIMS - 1)
        vector[dim] = 1.0  # presence, not counts: repeating a word does not change its meaning
    return vector


@dataclass
class FakeEmbeddings:
    url: str
    inputs: list[str] = field(default_factory=list)
    requests: list[list[str]] = field(default_factory=list)
    fail_with: int | None = None
    malformed: bytes | None = None
    hang: threading.Event | None = None


@pytest.fixture
def embeddings_server() -> Iterator[FakeEmbeddings]:
    state = FakeEmbeddings(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.hang is not None:
                state.hang.wait(30)  # never answers in time: the client's timeout fires
                return
            if state.malformed is not None:
                payload = state.malformed
                self.send_response(200)
            elif state.fail_with is not None:
                payload = json.dumps({"error": {"message": "down", "type": "server_error"}}).encode()
                self.send_response(state.fail_with)
            else:
                assert self.path.endswith("/embeddings")
                state.inputs.extend(body["input"])
                state.requests.append(list(body["input"]))
                data = [{"object": "embedding", "index": i, "embedding": _vector(text)}
                        for i, text in enumerate(body["input"])]
                payload = json.dumps({"object": "list", "data": data, "model": body["model"],
                                      "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    if state.hang is not None:
        state.hang.set()
    server.shutdown()
    server.server_close()


# Lexically the config file mentions "engine" most; by meaning, the motor is what a "vehicle engine" is about.
_FILES = {
    "setup/engine_config.py": (
        "def load_engine_config(path):\n    # engine config: engine options for the engine\n    return read(path)\n"
    ),
    "garage/motor.py": (
        "def start_engine(machine):\n    # the car motor of the automobile engine\n    return machine.go()\n"
    ),
    "notes/misc.md": (
        "Notes on weather, gardens, a car, recipes, music, painting, travel, and one engine.\n" + "More notes.\n" * 30
    ),
}


def _embedder(server: FakeEmbeddings, timeout_s: float = 60.0) -> OpenAIEmbedder:
    return OpenAIEmbedder("fake-embed", base_url=server.url, timeout_s=timeout_s)


def hybrid_chunks(repo: Path) -> int:
    """How many chunks the repository's index holds (each is embedded once)."""
    return index_repository(repo).chunks


def test_embeddings_bring_the_meaningful_chunk_first_and_are_cached(
    make_repo: MakeRepo, embeddings_server: FakeEmbeddings
) -> None:
    repo = make_repo(dict(_FILES))
    index_repository(repo)
    lexical = search_code(repo, "vehicle engine", k=3)
    assert [hit.path for hit in lexical] == ["setup/engine_config.py", "garage/motor.py", "notes/misc.md"]

    embedder = _embedder(embeddings_server)
    hybrid = search_code(repo, "vehicle engine", k=3, embedder=embedder)
    assert hybrid[0].path == "garage/motor.py"
    assert {hit.path for hit in hybrid} == {hit.path for hit in lexical}
    first_calls = len(embeddings_server.inputs)
    assert first_calls == hybrid_chunks(repo) + 1  # every chunk of the repository, and the query

    # The same search again embeds nothing: vectors are cached in the index store.
    assert search_code(repo, "vehicle engine", k=3, embedder=embedder)[0].path == "garage/motor.py"
    assert len(embeddings_server.inputs) == first_calls


def test_a_failing_embedding_endpoint_leaves_the_lexical_ranking(
    make_repo: MakeRepo, embeddings_server: FakeEmbeddings, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo(dict(_FILES))
    index_repository(repo)
    embeddings_server.fail_with = 503
    hits = search_code(repo, "vehicle engine", k=3, embedder=_embedder(embeddings_server))
    assert [hit.path for hit in hits] == [hit.path for hit in search_code(repo, "vehicle engine", k=3)]
    assert "lexical ranking only" in caplog.text


def test_the_adapter_maps_endpoint_errors_to_provider_errors(embeddings_server: FakeEmbeddings) -> None:
    embedder = OpenAIEmbedder("fake-embed", base_url=embeddings_server.url)
    assert len(embedder.embed(["a", "b", "c"])) == 3
    embeddings_server.fail_with = 429
    with pytest.raises(ProviderError) as caught:
        embedder.embed(["a"])
    assert caught.value.retryable
    assert caught.value.status == 429
    embeddings_server.fail_with = 400
    with pytest.raises(ProviderError) as caught:
        embedder.embed(["a"])
    assert not caught.value.retryable
    unreachable = OpenAIEmbedder("fake-embed", base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(ProviderError, match="unreachable"):
        unreachable.embed(["a"])


def test_no_embedding_model_means_lexical_search(tmp_path: Path) -> None:
    assert embedder_from_settings(Settings()) is None


def test_vibe_search_is_hybrid_when_an_embedding_model_is_configured(
    make_repo: MakeRepo, embeddings_server: FakeEmbeddings
) -> None:
    from typer.testing import CliRunner

    import cli.index  # noqa: F401 - registers the commands
    from cli._app import app

    repo = make_repo(dict(_FILES))
    index_repository(repo)
    env = {"VIBE_EMBEDDING_MODEL": "fake-embed", "VIBE_EMBEDDING_BASE_URL": embeddings_server.url}
    result = CliRunner().invoke(app, ["search", "vehicle engine", "--repo", str(repo), "-k", "3", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["path"] == "garage/motor.py"
    assert "vehicle engine" in embeddings_server.inputs


# No file says "vehicle", or anything that stems like it: only the meaning of the motor file is near the query.
_FILLER = {
    f"misc/topic_{i:02d}.py": f"def handle_{word}(item):\n    # {word} handling for the {word} queue\n    return item\n"
    for i, word in enumerate(["invoice", "weather", "garden", "recipe", "music", "painting", "travel", "ledger",
                              "poetry", "chess", "pottery", "sailing"])
}
_MEANING = {
    **_FILLER,
    "garage/motor.py": "def start_engine(machine):\n    # the car motor of the automobile\n    return machine.go()\n",
}


def test_a_file_sharing_no_word_with_the_query_is_found_by_meaning(
    make_repo: MakeRepo, embeddings_server: FakeEmbeddings
) -> None:
    repo = make_repo(dict(_MEANING))
    index_repository(repo)
    assert "garage/motor.py" not in [hit.path for hit in search_code(repo, "vehicle", k=5)]
    hybrid = search_code(repo, "vehicle", k=5, embedder=_embedder(embeddings_server))
    assert hybrid[0].path == "garage/motor.py"
    assert hybrid[0].symbol == "start_engine"
    assert "automobile" in hybrid[0].text
    # Lexical matches still count: a word of a filler file brings that file, and the motor stays in view.
    mixed = [hit.path for hit in search_code(repo, "vehicle invoice", k=5, embedder=_embedder(embeddings_server))]
    assert set(mixed[:2]) == {"misc/topic_00.py", "garage/motor.py"}


def test_an_unchanged_chunk_is_never_embedded_twice_across_searches_edits_and_clones(
    make_repo: MakeRepo, embeddings_server: FakeEmbeddings, tmp_path: Path
) -> None:
    from tests.tasks.indexing.conftest import git, write

    repo = make_repo(dict(_MEANING))
    chunks = index_repository(repo).chunks
    embedder = _embedder(embeddings_server)
    search_code(repo, "vehicle", k=3, embedder=embedder)
    assert len(embeddings_server.inputs) == chunks + 1
    assert all(len(request) <= 64 for request in embeddings_server.requests)

    search_code(repo, "vehicle", k=3, embedder=embedder)
    search_code(repo, "automobile repair", k=3, embedder=embedder)
    assert embeddings_server.inputs[chunks + 1 :] == ["automobile repair"]  # only the new query

    # An edit re-indexes one file: only its chunk is embedded again.
    write(repo, {"misc/topic_01.py": "def forecast_rain(day):\n    return day\n"})
    index_repository(repo)
    before = len(embeddings_server.inputs)
    search_code(repo, "vehicle", k=3, embedder=embedder)
    fresh = embeddings_server.inputs[before:]
    assert len(fresh) == 1
    assert "forecast_rain" in fresh[0]

    # A clone in the shared store, and a full re-index, find every vector already there.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    write(clone, {"misc/topic_01.py": "def forecast_rain(day):\n    return day\n"})
    index_repository(clone)
    index_repository(repo, full=True)
    before = len(embeddings_server.inputs)
    assert search_code(clone, "vehicle", k=3, embedder=embedder)[0].path == "garage/motor.py"
    assert search_code(repo, "vehicle", k=3, embedder=embedder)[0].path == "garage/motor.py"
    assert len(embeddings_server.inputs) == before


@pytest.mark.parametrize("failure", ["503", "malformed", "timeout"])
def test_a_failing_endpoint_answers_lexically_and_says_why_in_one_line(
    make_repo: MakeRepo, embeddings_server: FakeEmbeddings, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    repo = make_repo(dict(_MEANING))
    index_repository(repo)
    if failure == "503":
        embeddings_server.fail_with = 503
    elif failure == "malformed":
        embeddings_server.malformed = b'{"object": "list", "data": [{"index": 0, "embedding": "not a vector"}]}'
    else:
        embeddings_server.hang = threading.Event()
    lexical = [hit.path for hit in search_code(repo, "invoice vehicle", k=3)]
    hits = search_code(repo, "invoice vehicle", k=3, embedder=_embedder(embeddings_server, timeout_s=0.5))
    assert [hit.path for hit in hits] == lexical
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "lexical ranking only" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()


def test_requests_are_bounded_in_inputs_and_characters(embeddings_server: FakeEmbeddings) -> None:
    embedder = OpenAIEmbedder("fake-embed", base_url=embeddings_server.url)
    assert len(embedder.embed([f"text {i}" for i in range(150)])) == 150
    assert [len(request) for request in embeddings_server.requests] == [64, 64, 22]
    embeddings_server.requests.clear()
    # Each input is cut to 16,000 characters, each request to 256,000: 16 long inputs a request.
    assert len(embedder.embed(["x" * 100_000] * 40)) == 40
    assert [len(request) for request in embeddings_server.requests] == [16, 16, 8]
    assert {len(text) for request in embeddings_server.requests for text in request} == {16_000}
