"""A loopback HTTP server that speaks the Anthropic Messages and OpenAI Chat Completions wire protocols.

The real SDKs are pointed at it (`base_url=server.anthropic_base_url` / `server.openai_base_url`), so tests
exercise the SDKs' own request building, response parsing and error handling.

```python
from tests.fakes.llm_server import FakeLLMServer, ok, status, hang, malformed, truncated, raw

with FakeLLMServer(responder=lambda body: "hello") as server:
    server.enqueue(status(429, retry_after=1), ok("second answer"))
    ...  # requests are answered from the queue first, then by `responder`
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
```

Behaviours, one per request, taken from the queue in order:
- `ok(text, tool_calls=..., stop_reason=..., usage=...)`: a well-formed reply in the protocol of the request.
- `status(code, retry_after=..., retry_after_ms=..., message=..., echo_auth=...)`: an error reply shaped like the
  vendor's; `echo_auth=True` puts the request's credential header into the error message (as a careless proxy
  would), to test redaction.
- `hang(seconds)`: answer only after `seconds` (client timeouts); ends early when the server stops.
- `malformed()`: status 200, `application/json`, a body that is not JSON.
- `truncated()`: announces a longer body than it sends and closes the connection.
- `raw(code, body, content_type=...)`: exactly that reply (an HTML page from a proxy, a body missing fields).
When the queue is empty the `responder(body) -> str` computes the reply text from the request's JSON body
(`prompt_of(body)` and `system_of(body)` read it in either protocol).

Concurrency, for tests of limits across processes: `FakeLLMServer(delay_s=1.5)` answers every completion
request after that long; `close_gate()` makes completion requests wait until `open_gate()`; `in_flight` is the
number of completion requests being handled now and `max_in_flight` the highest number seen at once.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import pytest

Responder = Callable[[dict[str, Any]], str]
Protocol = Literal["anthropic", "openai"]

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request. Build these with `ok`, `status`, `hang`, `malformed`, `truncated`."""

    kind: Literal["ok", "status", "hang", "malformed", "truncated", "raw"]
    text: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    stop_reason: str | None = None
    usage: tuple[int, int] | None = None
    code: int = 200
    retry_after: str | None = None
    retry_after_ms: str | None = None
    message: str | None = None
    echo_auth: bool = False
    seconds: float = 0.0
    content_type: str = "application/json"


def ok(
    text: str | None = None,
    *,
    tool_calls: Iterable[tuple[str, dict[str, Any]]] = (),
    stop_reason: str | None = None,
    usage: tuple[int, int] | None = None,
) -> Behaviour:
    """A successful reply. `text=None` asks the responder; `tool_calls` are `(name, arguments)` pairs.

    `stop_reason` is written as given (use the protocol's own word: `end_turn` / `stop`); by default it is
    the natural end, or the tool-use reason when there are tool calls. `usage` is `(input, output)` tokens;
    by default both are counted from the text lengths.
    """
    return Behaviour("ok", text=text, tool_calls=tuple(tool_calls), stop_reason=stop_reason, usage=usage)


def status(
    code: int,
    *,
    retry_after: float | str | None = None,
    retry_after_ms: float | None = None,
    message: str | None = None,
    echo_auth: bool = False,
) -> Behaviour:
    """An HTTP error reply with the vendor's error body; `retry_after` may be seconds or an HTTP date."""
    if retry_after is not None and not isinstance(retry_after, str):
        retry_after = f"{retry_after:g}"
    return Behaviour(
        "status",
        code=code,
        retry_after=retry_after,
        retry_after_ms=None if retry_after_ms is None else f"{retry_after_ms:g}",
        message=message,
        echo_auth=echo_auth,
    )


def hang(seconds: float) -> Behaviour:
    """Wait `seconds` before answering (normally), so a client with a shorter timeout gives up."""
    return Behaviour("hang", seconds=seconds)


def malformed() -> Behaviour:
    """HTTP 200 with `content-type: application/json` and a body that is not JSON."""
    return Behaviour("malformed")


def raw(code: int, body: str, *, content_type: str = "application/json") -> Behaviour:
    """Exactly this status, body and content type (an HTML page from a proxy, a reply with missing fields)."""
    return Behaviour("raw", code=code, text=body, content_type=content_type)


def truncated() -> Behaviour:
    """A 200 whose body is cut short: the connection closes before `content-length` bytes were sent."""
    return Behaviour("truncated")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any] | None

    @property
    def protocol(self) -> Protocol | None:
        if self.path == ANTHROPIC_PATH:
            return "anthropic"
        if self.path == OPENAI_PATH:
            return "openai"
        return None

    @property
    def prompt(self) -> str:
        """The last user message's text."""
        return prompt_of(self.body or {})


def prompt_of(body: dict[str, Any]) -> str:
    """The text of the last user message of a request body in either protocol."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def system_of(body: dict[str, Any]) -> str:
    """The system prompt of a request body in either protocol ("" when there is none)."""
    if "system" in body:
        return _text_of(body["system"])
    return "\n".join(
        _text_of(m.get("content")) for m in body.get("messages") or [] if m.get("role") in ("system", "developer")
    )


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def echo_responder(body: dict[str, Any]) -> str:
    """The default responder: `echo: <prompt>`."""
    return f"echo: {prompt_of(body)}"


@dataclass
class _State:
    queue: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0


class FakeLLMServer:
    """A threaded loopback server on a free port speaking both LLM wire protocols. See the module docstring.

    Args:
        responder: computes the reply text from a request's JSON body when no queued behaviour is left.
        delay_s: how long every completion request is held before it is answered (0: at once).
    """

    def __init__(self, responder: Responder | None = None, *, delay_s: float = 0.0) -> None:
        self.responder: Responder = responder or echo_responder
        self.delay_s = delay_s
        self._state = _State()
        self._stopping = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        """Start serving on 127.0.0.1 on a free port (idempotent)."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd = httpd
        # A short poll interval keeps stop() fast (shutdown waits for the serving loop's next poll).
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port; hanging requests are released."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not running: call start() or use it as a context manager")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        """The base URL for the Anthropic SDK (it appends `/v1/messages`)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """The base URL for the OpenAI SDK (it appends `/chat/completions`)."""
        return f"{self.url}/v1"

    # --- scripting and inspection --------------------------------------------------------------------
    def enqueue(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with `behaviours`, in order, before falling back to the responder."""
        with self._state.lock:
            self._state.queue.extend(behaviours)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def calls(self, protocol: Protocol | None = None) -> int:
        """How many completion requests arrived (of one protocol, or of both)."""
        return sum(1 for r in self.requests if r.protocol is not None and protocol in (None, r.protocol))

    def reset(self) -> None:
        """Forget recorded requests, queued behaviours and the highest concurrency seen."""
        with self._state.lock:
            self._state.queue.clear()
            self._state.requests.clear()
            self._state.max_in_flight = self._state.in_flight

    def close_gate(self) -> None:
        """Hold every completion request (counted in `in_flight`) until `open_gate()` or `stop()`."""
        self._gate.clear()

    def open_gate(self) -> None:
        """Let held and later completion requests through."""
        self._gate.set()

    @property
    def in_flight(self) -> int:
        """Completion requests received and not yet answered."""
        with self._state.lock:
            return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most completion requests that were being handled at the same moment."""
        with self._state.lock:
            return self._state.max_in_flight

    # --- used by the handler -------------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> Behaviour | None:
        with self._state.lock:
            self._state.requests.append(request)
            return self._state.queue.popleft() if self._state.queue else None

    def _next_id(self) -> int:
        return next(self._ids)

    def _enter(self) -> None:
        with self._state.lock:
            self._state.in_flight += 1
            self._state.max_in_flight = max(self._state.max_in_flight, self._state.in_flight)

    def _leave(self) -> None:
        with self._state.lock:
            self._state.in_flight -= 1

    def _hold(self) -> bool:
        """Wait at the gate, then `delay_s`; False when the server stops meanwhile."""
        while not self._gate.wait(0.05):
            if self._stopping.is_set():
                return False
        return not (self.delay_s > 0 and self._stopping.wait(self.delay_s))


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its socket; writing the late reply fails, which is expected.
        pass


def _make_handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer
    server_version = "FakeLLM/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: the test output is for assertions, not access logs.
        pass

    def do_GET(self) -> None:
        self._send_json(404, {"error": {"message": f"no route for GET {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest(method="POST", path=self.path.split("?")[0], headers=headers, body=body)
        behaviour = self.fake._record(request)
        protocol = request.protocol
        if protocol is None:
            self._send_json(404, {"error": {"message": f"no route for POST {self.path}"}})
            return
        if not isinstance(body, dict):
            self._send_error(protocol, 400, "request body is not a JSON object", request)
            return
        self.fake._enter()
        try:
            if self.fake._hold():
                self._answer(protocol, body, request, behaviour or ok())
        finally:
            self.fake._leave()

    def _answer(self, protocol: Protocol, body: dict[str, Any], request: RecordedRequest, behaviour: Behaviour) -> None:
        if behaviour.kind == "hang":
            if self.fake._stopping.wait(behaviour.seconds):
                return
            behaviour = ok()
        if behaviour.kind == "status":
            self._send_error(protocol, behaviour.code, behaviour.message, request, behaviour)
        elif behaviour.kind == "raw":
            self._send_raw(behaviour.code, (behaviour.text or "").encode(), content_type=behaviour.content_type)
        elif behaviour.kind == "malformed":
            self._send_raw(200, b'{"id": "oops", "content": [', content_type="application/json")
        elif behaviour.kind == "truncated":
            payload = json.dumps(self._reply(protocol, body, ok())).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send_json(200, self._reply(protocol, body, behaviour), protocol=protocol)

    # --- replies -------------------------------------------------------------------------------------
    def _reply(self, protocol: Protocol, body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
        text = behaviour.text if behaviour.text is not None else self.fake.responder(body)
        model = str(body.get("model", "unknown"))
        n = self.fake._next_id()
        if behaviour.usage is not None:
            usage_in, usage_out = behaviour.usage
        else:
            usage_in = max(1, len(json.dumps(body.get("messages", []))) // 4)
            usage_out = max(1, len(text) // 4)
        if protocol == "anthropic":
            content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            content += [
                {"type": "tool_use", "id": f"toolu_{n:04d}_{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(behaviour.tool_calls)
            ]
            return {
                "id": f"msg_fake_{n:06d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": behaviour.stop_reason or ("tool_use" if behaviour.tool_calls else "end_turn"),
                "stop_sequence": None,
                "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
            }
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if behaviour.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{n:04d}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(behaviour.tool_calls)
            ]
        return {
            "id": f"chatcmpl-fake{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": behaviour.stop_reason or ("tool_calls" if behaviour.tool_calls else "stop"),
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out, "total_tokens": usage_in + usage_out},
        }

    def _send_error(
        self,
        protocol: Protocol,
        code: int,
        message: str | None,
        request: RecordedRequest,
        behaviour: Behaviour | None = None,
    ) -> None:
        message = message or _DEFAULT_MESSAGES.get(code, "error")
        if behaviour is not None and behaviour.echo_auth:
            credential = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            message = f"{message}; credential received: {credential}"
        headers: dict[str, str] = {}
        if behaviour is not None and behaviour.retry_after is not None:
            headers["retry-after"] = behaviour.retry_after
        if behaviour is not None and behaviour.retry_after_ms is not None:
            headers["retry-after-ms"] = behaviour.retry_after_ms
        if protocol == "anthropic":
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": _ANTHROPIC_ERROR_TYPES.get(code, "api_error"), "message": message},
            }
        else:
            payload = {
                "error": {
                    "message": message,
                    "type": _OPENAI_ERROR_TYPES.get(code, "server_error"),
                    "param": None,
                    "code": None,
                }
            }
        self._send_json(code, payload, protocol=protocol, extra_headers=headers)

    def _send_json(
        self,
        code: int,
        payload: dict[str, Any],
        *,
        protocol: Protocol | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        headers = dict(extra_headers or {})
        if protocol == "anthropic":
            headers["request-id"] = f"req_fake_{self.fake._next_id():06d}"
        elif protocol == "openai":
            headers["x-request-id"] = f"req_fake_{self.fake._next_id():06d}"
        self._send_raw(code, json.dumps(payload).encode(), content_type="application/json", headers=headers)

    def _send_raw(self, code: int, data: bytes, *, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


_DEFAULT_MESSAGES = {
    400: "invalid request",
    401: "invalid x-api-key",
    403: "permission denied",
    404: "model not found",
    408: "request timeout",
    409: "conflict",
    422: "unprocessable entity",
    429: "rate limit exceeded",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    529: "overloaded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    """A running `FakeLLMServer` with the echo responder; stopped after the test.

    Other test packages get it with `from tests.fakes.llm_server import llm_server  # noqa: F401` in their
    conftest.py; set `llm_server.responder = ...` to compute replies.
    """
    with FakeLLMServer() as server:
        yield server
