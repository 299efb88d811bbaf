"""A loopback HTTP server that speaks the GitHub REST (and the two GraphQL draft mutations) vibe uses.

It checks what GitHub would check: the `Authorization: token ...` header (401 `Bad credentials` otherwise),
request bodies (types, required fields), that head and base branches exist in the repository's bare git
directory, and that a head has at most one open pull request (422 `A pull request already exists`). It counts
every call and can inject failures (5xx, 403 secondary rate limits with `retry-after` or `x-ratelimit-reset`,
401) for the next N matching requests.

It also serves the bare repositories over git's smart HTTP protocol (through `git http-backend`) at
`/<owner>/<name>.git`, accepting only `Authorization: basic x-access-token:<token>`, so a test can push over
HTTP exactly as against github.com and see which credentials git sent.

Endpoints (`/api/v3` prefix, as GitHub Enterprise):
    GET   /repos/{o}/{n}                       POST  /repos/{o}/{n}/pulls
    GET   /repos/{o}/{n}/pulls?state&head      PATCH /repos/{o}/{n}/pulls/{number}
    POST  /repos/{o}/{n}/issues/{number}/labels
    POST  /api/graphql  (convertPullRequestToDraft, markPullRequestReadyForReview)
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    message: str
    body: Any = None


@dataclass
class FakeRepo:
    """A repository the fake knows: metadata, its bare git directory and its pull requests."""

    full_name: str
    default_branch: str
    bare: Path | None
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)


class FakeGitHub:
    """The fake GitHub. Use as a context manager; `api_url` goes into `Settings.github_api_url`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.calls: list[Call] = []
        self.git_authorizations: list[str | None] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._next_number = 1
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.root}/api/v3"

    def git_url(self, full_name: str) -> str:
        return f"{self.root}/{full_name}.git"

    def add_repo(self, full_name: str, *, default_branch: str = "main", bare: Path | None = None) -> FakeRepo:
        repo = FakeRepo(full_name=full_name, default_branch=default_branch, bare=bare)
        self.repos[full_name] = repo
        return repo

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str = "Server Error",
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests matching `method` and `path_regex` with `status` (and `body`)."""
        with self._lock:
            self._failures.append(_Failure(method, re.compile(path_regex), status, times, headers or {}, message, body))

    def count(self, method: str | None = None, path_regex: str = ".*") -> int:
        """How many API calls matched (git transport requests are not counted)."""
        pattern = re.compile(path_regex)
        return sum(1 for c in self.calls if (method is None or c.method == method) and pattern.fullmatch(c.path))

    def reset_calls(self) -> None:
        self.calls.clear()

    def pulls(self, full_name: str) -> list[dict[str, Any]]:
        return list(self.repos[full_name].pulls.values())

    # --- request handling (called from the handler thread) -------------------------------------------

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and failure.times > 0 and failure.pattern.fullmatch(path):
                    failure.times -= 1
                    return failure
        return None

    def _branch_sha(self, repo: FakeRepo, branch: str) -> str | None:
        if repo.bare is None:
            return "0" * 40
        proc = subprocess.run(
            ["git", "--git-dir", str(repo.bare), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    def _pull_json(self, repo: FakeRepo, pr: dict[str, Any]) -> dict[str, Any]:
        owner = repo.full_name.split("/")[0]
        n = pr["number"]
        api = f"{self.api_url}/repos/{repo.full_name}"
        return {
            "url": f"{api}/pulls/{n}",
            "id": 1000 + n,
            "node_id": f"PR_node_{n}",
            "html_url": f"{self.root}/{repo.full_name}/pull/{n}",
            "issue_url": f"{api}/issues/{n}",
            "number": n,
            "state": pr["state"],
            "locked": False,
            "title": pr["title"],
            "body": pr["body"],
            "draft": pr["draft"],
            "user": {"login": "vibe-bot", "id": 7},
            "labels": [
                {
                    "id": i,
                    "node_id": f"L{i}",
                    "name": name,
                    "color": "ededed",
                    "default": False,
                    "description": None,
                    "url": f"{api}/labels/{name}",
                }
                for i, name in enumerate(pr["labels"])
            ],
            "head": {
                "ref": pr["head"],
                "label": f"{owner}:{pr['head']}",
                "sha": self._branch_sha(repo, pr["head"]),
                "user": {"login": owner},
            },
            "base": {
                "ref": pr["base"],
                "label": f"{owner}:{pr['base']}",
                "sha": self._branch_sha(repo, pr["base"]),
                "user": {"login": owner},
            },
        }

    def handle_api(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        self.calls.append(Call(method, path, query, body))
        if headers.get("Authorization") != f"token {self.token}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        failure = self._take_failure(method, path)
        if failure is not None:
            payload = failure.body if failure.body is not None else {"message": failure.message}
            return failure.status, failure.headers, payload
        if path == "/api/graphql" and method == "POST":
            return self._graphql(body)
        m = re.fullmatch(r"/api/v3/repos/([\w.-]+/[\w.-]+)(/.*)?", path)
        if not m or m.group(1) not in self.repos:
            return 404, {}, {"message": "Not Found"}
        repo, rest = self.repos[m.group(1)], m.group(2) or ""
        with self._lock:
            return self._route(repo, method, rest, query, body)

    def _route(
        self, repo: FakeRepo, method: str, rest: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        owner = repo.full_name.split("/")[0]
        if rest == "" and method == "GET":
            return (
                200,
                {},
                {
                    "id": 1,
                    "node_id": "R_1",
                    "name": repo.full_name.split("/")[1],
                    "full_name": repo.full_name,
                    "owner": {"login": owner, "id": 1},
                    "private": False,
                    "default_branch": repo.default_branch,
                    "html_url": f"{self.root}/{repo.full_name}",
                    "url": f"{self.api_url}/repos/{repo.full_name}",
                },
            )
        if rest == "/pulls" and method == "GET":
            state = query.get("state", ["open"])[0]
            head = query.get("head", [None])[0]
            found = [
                p
                for p in repo.pulls.values()
                if (state == "all" or p["state"] == state) and (head is None or f"{owner}:{p['head']}" == head)
            ]
            return 200, {}, [self._pull_json(repo, p) for p in found]
        if rest == "/pulls" and method == "POST":
            return self._create_pull(repo, body)
        m = re.fullmatch(r"/pulls/(\d+)", rest)
        if m and int(m.group(1)) in repo.pulls:
            pr = repo.pulls[int(m.group(1))]
            if method == "GET":
                return 200, {}, self._pull_json(repo, pr)
            if method == "PATCH":
                if not isinstance(body, dict) or not set(body) <= {"title", "body", "state", "base"}:
                    return 422, {}, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}
                if "base" in body and self._branch_sha(repo, body["base"]) is None:
                    return 422, {}, {"message": "Validation Failed", "errors": [{"field": "base", "code": "invalid"}]}
                for name in ("title", "body", "state", "base"):
                    if name in body:
                        if not isinstance(body[name], str):
                            return 422, {}, {"message": f"{name} must be a string"}
                        pr[name] = body[name]
                return 200, {}, self._pull_json(repo, pr)
        m = re.fullmatch(r"/issues/(\d+)/labels", rest)
        if m and method == "POST" and int(m.group(1)) in repo.pulls:
            names = body.get("labels") if isinstance(body, dict) else body
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                return 422, {}, {"message": "Invalid request: labels must be a list of strings"}
            pr = repo.pulls[int(m.group(1))]
            pr["labels"] = list(dict.fromkeys([*pr["labels"], *names]))
            return (
                200,
                {},
                [{"id": i, "name": n, "color": "ededed", "default": False} for i, n in enumerate(pr["labels"])],
            )
        return 404, {}, {"message": "Not Found"}

    def _create_pull(self, repo: FakeRepo, body: Any) -> tuple[int, dict[str, str], Any]:
        owner = repo.full_name.split("/")[0]
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"].strip():
            return 422, {}, {"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]}
        for name in ("head", "base"):
            if not isinstance(body.get(name), str):
                return 422, {}, {"message": "Validation Failed", "errors": [{"field": name, "code": "missing_field"}]}
        if not isinstance(body.get("body", ""), str) or not isinstance(body.get("draft", False), bool):
            return 422, {}, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}
        head = body["head"].split(":", 1)[-1]
        for name, branch in (("head", head), ("base", body["base"])):
            if self._branch_sha(repo, branch) is None:
                return (
                    422,
                    {},
                    {
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "field": name, "code": "invalid"}],
                    },
                )
        if any(p["head"] == head and p["state"] == "open" for p in repo.pulls.values()):
            return (
                422,
                {},
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{head}.",
                        }
                    ],
                },
            )
        number = self._next_number
        self._next_number += 1
        pr = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body", ""),
            "draft": body.get("draft", False),
            "labels": [],
            "head": head,
            "base": body["base"],
        }
        repo.pulls[number] = pr
        return 201, {}, self._pull_json(repo, pr)

    def _graphql(self, body: Any) -> tuple[int, dict[str, str], Any]:
        query = body.get("query", "") if isinstance(body, dict) else ""
        node = (body.get("variables", {}).get("input", {}) if isinstance(body, dict) else {}).get("pullRequestId")
        for mutation, draft in (("convertPullRequestToDraft", True), ("markPullRequestReadyForReview", False)):
            if f"{mutation}(" in query:
                for repo in self.repos.values():
                    for pr in repo.pulls.values():
                        if f"PR_node_{pr['number']}" == node:
                            pr["draft"] = draft
                            return 200, {}, {"data": {mutation: {"pullRequest": {"isDraft": draft}}}}
                return 200, {}, {"errors": [{"type": "NOT_FOUND", "message": f"no node {node}"}]}
        return 200, {}, {"errors": [{"message": "unsupported query"}]}

    def handle_git(self, handler: BaseHTTPRequestHandler, path: str, query: str, body: bytes) -> None:
        auth = handler.headers.get("Authorization")
        self.git_authorizations.append(auth)
        expected = "basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if auth is None or auth.lower() != expected.lower():
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        m = re.fullmatch(r"/([\w.-]+/[\w.-]+)\.git(/.*)", path)
        repo = self.repos.get(m.group(1)) if m else None
        if m is None or repo is None or repo.bare is None:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(repo.bare.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo.bare.name}{m.group(2)}",
            "QUERY_STRING": query,
            "REQUEST_METHOD": handler.command,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
            "HOME": str(repo.bare.parent),
        }
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `fake.calls`
            return

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            raw = self._read_body()
            if re.fullmatch(r"/[\w.-]+/[\w.-]+\.git/.*", parts.path):
                fake.handle_git(self, parts.path, parts.query, raw)
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            status, headers, payload = fake.handle_api(
                self.command, parts.path, parse_qs(parts.query), self.headers, body
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch

    return Handler
