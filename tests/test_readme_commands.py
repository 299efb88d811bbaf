"""The README's commands work as printed, for a new user: the Quick start and "Running against a Prefect server"
blocks are read from README.md and run line by line in `bash`, from the repository root, with the PATH a new
account has (no `~/.local/bin`, no virtualenv) and a fresh, empty HOME. Change a command in the README and
this test runs the new one.

Two things differ from a user's terminal, on purpose and only these:
- `make test` is not run: it is this suite. Instead the test checks that `.ci/run` (what CI runs) calls
  `make test` exactly as the README's Quick start prints it, so CI keeps running the README's command.
- In the server block, `/path/to/repo` is replaced by a real temporary git repository (a copy of the demo's
  sample with a bare `origin`, so the pull request step works in local mode), and the provider is a fake
  Anthropic server on loopback (`ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` in the shell's environment,
  as a user would export a key) that answers with the demo's two replies. The block runs only when the
  README's port (4200) is free; it is skipped, saying so, when something already listens there, because the
  README's `export PREFECT_API_URL=...` line would then talk to that other server.

Everything the shell starts (server, worker, flow-run processes) carries a marker in its environment and is
killed at the end, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.demo_script import demo_responder
from tests.fakes.llm_server import FakeLLMServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NEW_USER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The machine's TLS and package-index configuration (a proxy's CA, a local wheel mirror) is not the user's HOME:
# a new account on the same machine has it too.
_MACHINE_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "PIP_FIND_LINKS", "PIP_INDEX_URL",
                 "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                 "https_proxy", "http_proxy", "no_proxy")
_MARKER = "VIBE_README_TEST"


def readme_commands(section: str) -> list[str]:
    """The command lines of the first ```bash block under the README heading `section`, comments stripped."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = body.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _new_user_env(home: Path, marker: str, **extra: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _MACHINE_VARS if name in os.environ}
    env.update(HOME=str(home), PATH=NEW_USER_PATH, LANG="C.UTF-8", TERM="dumb", **{_MARKER: marker}, **extra)
    return env


def _kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment carries this test's marker (the shell's whole tree)."""
    needle = f"{_MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            marked = needle in (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture
def marker() -> Iterator[str]:
    value = uuid.uuid4().hex
    yield value
    _kill_marked(value)


def _run_script(lines: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    """Run `lines` in one bash, each echoed first, stopping at the first failure; stdin is closed (no tty)."""
    script = "set -eo pipefail\n" + "".join(f"echo {shlex.quote('+ ' + line)}\n{line}\n" for line in lines)
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tail = log.read_text()[-4000:]
            raise AssertionError(f"the README's commands did not finish in {timeout:.0f} s:\n{tail}") from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # background lines (`&`) stay in the shell's group


def test_make_test_in_the_quick_start_is_what_ci_runs() -> None:
    commands = readme_commands("Quick start")
    assert commands == ["make demo", "make test"]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines, "`.ci/run` must run the README's `make test` as printed"


def test_make_demo_runs_as_printed_for_a_new_user(tmp_path: Path, marker: str) -> None:
    (home := tmp_path / "home").mkdir()
    log = tmp_path / "demo.log"
    code = _run_script(readme_commands("Quick start")[:1], _new_user_env(home, marker), log, timeout=360)
    out = log.read_text()
    assert code == 0, out[-4000:]
    assert "passed after 2 attempt(s)" in out
    assert "Where to look:" in out
    # The hint it ends with works as printed in the user's shell (not only under `uv run`, which make used).
    hint = re.search(r"see it in the UI: run `(\S+) server start`", out)
    assert hint is not None, out[-2000:]
    assert shutil.which(hint.group(1), path=NEW_USER_PATH) is not None, f"{hint.group(1)} is not found as printed"


def _readme_port() -> int:
    (export,) = [line for line in readme_commands("Running against a Prefect server") if "PREFECT_API_URL=" in line]
    match = re.search(r"PREFECT_API_URL=http://127\.0\.0\.1:(\d+)/api$", export)
    assert match is not None, export
    return int(match.group(1))


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the server binds: connections of an earlier server left in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _sample_repository(tmp_path: Path) -> tuple[Path, Path]:
    from cli.run import prepare_demo
    from vibe.settings import Settings

    return prepare_demo(Settings(), where=tmp_path / "work")


# Waits the user does by eye: the server says it is up before they go on; the run is followed to its end.
_WAIT_FOR_API = (
    '.venv/bin/python -c "import sys, time, urllib.request\n'
    "for _ in range(600):\n"
    "    try: urllib.request.urlopen(sys.argv[1] + '/health', timeout=2); break\n"
    "    except OSError: time.sleep(0.5)\n"
    'else: sys.exit(\'the server never answered\')" "$PREFECT_API_URL"'
)
_FOLLOW_THE_HINT = "eval \"$(sed -n 's/.*follow it with `\\(.*\\)`$/\\1/p' \"$README_LOG\" | tail -n 1) --wait\""


def test_the_server_commands_run_as_printed_and_the_run_completes(tmp_path: Path, marker: str) -> None:
    port = _readme_port()
    if not _port_is_free(port):
        pytest.skip(f"port {port}, which the README's PREFECT_API_URL names, is in use by another program")
    repo, remote = _sample_repository(tmp_path)
    lines: list[str] = []
    for line in readme_commands("Running against a Prefect server"):
        lines.append(line.replace("/path/to/repo", shlex.quote(str(repo))))
        if line.startswith("export PREFECT_API_URL="):
            lines.append(_WAIT_FOR_API)
    assert any(line.endswith("&") and "server start" in line for line in lines)
    (home := tmp_path / "home").mkdir()
    log = tmp_path / "server.log"
    with FakeLLMServer(responder=demo_responder) as llm:
        env = _new_user_env(home, marker, ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=llm.anthropic_base_url,
                            README_LOG=str(log))
        code = _run_script([*lines, _FOLLOW_THE_HINT], env, log, timeout=330)
    out = log.read_text()
    assert code == 0, out[-6000:]
    assert re.search(r"^queued [0-9a-f-]{36} \(\S+, high\)", out, re.M), out[-3000:]
    assert re.search(r"state:\s+Completed", out), out[-6000:]
    assert "Tests passed" in out  # the last attempt's test table, as `vibe status` lists it
    branches = subprocess.run(["git", "-C", str(remote), "branch", "--list", "vibe/*"], capture_output=True,
                              text=True, check=True).stdout
    assert branches.strip(), "the run pushed no branch to the repository's origin"
