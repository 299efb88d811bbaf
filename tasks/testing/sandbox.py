"""Run an untrusted command (tests written by an LLM) with limits, a clean environment and, where possible, no
network and a read-only view of the machine.

Layers, each used when the machine allows it and named in `SandboxResult.isolation`:

- always: its own process group and session; a wall-clock timeout that kills the whole group; RLIMIT_AS
  (memory), RLIMIT_CPU, RLIMIT_FSIZE; an environment reduced to an allow-list, with a private HOME and TMPDIR;
  output to a file outside the workspace (a child that keeps the pipe open cannot hang us).
- bubblewrap (`bwrap`): new user, pid, network, ipc, uts and cgroup namespaces, all capabilities dropped, and
  an explicit mount plan (`mount_plan`): read-only system directories (`/usr`, `/lib*`, `/bin`, `/sbin`), a
  minimal `/etc`, the interpreter's prefixes, the toolchains and the cached virtualenv; writable only the run's
  private directory (which holds the copy of the workspace); a private /tmp, /dev/shm, /dev and /proc. Nothing
  of /root, /home, /var, /run, VIBE_HOME or host unix sockets exists inside. The network namespace has only
  its own loopback. Killing the sandbox's pid 1 kills everything inside.
- a pids cgroup (as root, where the cgroup file system is writable): a hard cap on processes and threads for
  the command and all its descendants, and a way to find and kill every one of them afterwards.
  RLIMIT_NPROC is per user and never binds for root, so without a cgroup a root run has no process cap; for
  other users RLIMIT_NPROC is set to the processes they already have plus the cap.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vibe.errors import ConfigError

__all__ = [
    "Limits", "MountPlan", "SandboxPolicy", "SandboxResult", "SandboxUnavailableError", "bwrap_available",
    "mount_plan", "process_limit_available", "run_sandboxed", "sandbox_env",
]  # fmt: skip

logger = logging.getLogger(__name__)

_LAUNCHER = Path(__file__).with_name("_launch.py")

# Variables a test run may see from the parent's environment; everything else (API keys, tokens, REDIS_URL,
# PREFECT_*, cloud credentials) is dropped.
ENV_ALLOW_LIST: frozenset[str] = frozenset(
    {
        "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME", "TZ", "TERM",
        "USER", "LOGNAME", "SHELL", "RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN", "GOROOT", "GOPATH",
        "GOMODCACHE", "GOFLAGS", "GOTOOLCHAIN", "JAVA_HOME", "NODE_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
    }
)  # fmt: skip


# `VIBE_SANDBOX`: "required" refuses to run untrusted code without bubblewrap; "unsafe" runs it anyway, warning.
SandboxPolicy = Literal["required", "unsafe"]


class SandboxUnavailableError(ConfigError):
    """Untrusted code was to run but bubblewrap does not work here, and `VIBE_SANDBOX=unsafe` was not set.

    Nothing ran. The message says why bubblewrap is unusable, how to install it and how to opt out.
    """


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command.

    Attributes:
        timeout_s: wall-clock limit; the whole process group is killed when it passes.
        memory_mb: address-space limit per process (RLIMIT_AS).
        max_processes: processes and threads of the whole run (pids cgroup, or RLIMIT_NPROC for non-root).
        file_size_mb: largest file a process may write (RLIMIT_FSIZE).
        cpu_s: CPU seconds per process (RLIMIT_CPU); defaults to the timeout times the number of cores.
    """

    timeout_s: float = 900.0
    memory_mb: int = 4096
    max_processes: int = 1024
    file_size_mb: int = 1024
    cpu_s: int | None = None


@dataclass
class SandboxResult:
    """What happened to a sandboxed command."""

    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    isolation: str
    killed_leftovers: int = 0
    notes: list[str] = field(default_factory=list)


def sandbox_env(
    run_dir: Path, parent: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a sandboxed command: the allow-listed parent variables plus private dirs.

    Args:
        run_dir: the run's private directory (HOME, TMPDIR and caches go under it).
        parent: the environment to filter (default: this process's).
        extra: variables to set on top (the runner's own, never secrets).
    """
    # Filtering, not configuration: the child gets a reduced copy of whatever environment we run in.
    source = os.environ if parent is None else parent
    env = {k: v for k, v in source.items() if k in ENV_ALLOW_LIST}
    env.setdefault("PATH", os.defpath)
    real_home = Path(source.get("HOME", str(Path.home())))
    # Toolchain managers find their toolchains through HOME, which is private now: point them at the real ones.
    if "RUSTUP_HOME" not in env and (real_home / ".rustup").is_dir():
        env["RUSTUP_HOME"] = str(real_home / ".rustup")
    if "CARGO_HOME" not in env and (real_home / ".cargo").is_dir():
        env["CARGO_HOME"] = str(real_home / ".cargo")
    if "GOPATH" not in env and (real_home / "go").is_dir():
        env["GOPATH"] = str(real_home / "go")
    env.update(
        {
            "HOME": str(run_dir / "home"),
            "TMPDIR": str(run_dir / "tmp"),
            "XDG_CACHE_HOME": str(run_dir / "cache"),
            "CI": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONNOUSERSITE": "1",
            "CARGO_TARGET_DIR": str(run_dir / "cargo-target"),
            "GOCACHE": str(run_dir / "cache" / "go-build"),
            "npm_config_cache": str(run_dir / "cache" / "npm"),
            "npm_config_update_notifier": "false",
            "NO_COLOR": "1",
        }
    )
    if extra:
        env.update(extra)
    for sub in ("home", "tmp", "cache"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return env


# Read-only system directories interpreters and toolchains need. On merged-/usr systems the top-level ones are
# symlinks into /usr and are recreated as symlinks.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The part of /etc that programs read to resolve users, names, certificates and shared libraries. Not shadow,
# gshadow, sudoers, ssh, ssl/private, or anything else that holds a secret or the machine's configuration.
_ETC_ENTRIES = (
    "passwd", "group", "hosts", "host.conf", "resolv.conf", "nsswitch.conf", "gai.conf", "protocols", "services",
    "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf", "pki/tls/certs",
    "pki/ca-trust/extracted", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime",
    "timezone", "mime.types", "os-release",
)  # fmt: skip
# Only for setup steps: pip's own configuration (an index mirror, a certificate bundle) to download dependencies.
_ETC_SETUP_ENTRIES = ("pip.conf",)
# Toolchain homes that `sandbox_env` passes on, and the parts of each that a build or a test run reads. Not
# CARGO_HOME's credentials.toml or config.toml (registry tokens), nor GOPATH/src (source code of other projects).
_TOOLCHAIN_HOMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("RUSTUP_HOME", ("",)),
    ("CARGO_HOME", ("bin", "registry", "git")),
    ("GOROOT", ("",)),
    ("GOPATH", ("bin", "pkg/mod")),
    ("GOMODCACHE", ("",)),
    ("JAVA_HOME", ("",)),
)
# Toolchain programs whose installation directory is bound when they live outside the system directories
# (a Go or Node.js unpacked under /opt or a home directory).
_TOOLCHAIN_PROGRAMS = ("cargo", "rustc", "go", "node", "npm", "npx", "java")


# Never bound, nor any directory holding one of them: bound directories sit below these, never at or above.
_NEVER_BOUND = tuple(
    Path(p)
    for p in ("/", "/root", "/home", "/var", "/run", "/srv", "/mnt", "/media", "/opt", "/tmp", "/etc", "/boot")  # noqa: S108
)
_NOT_UNDER = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))


def _covers(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def _bindable(path: Path, home: Path) -> bool:
    if not path.is_absolute() or not path.exists():
        return False
    if any(_covers(path, never) for never in (*_NEVER_BOUND, home)):
        return False
    return not any(_covers(root, path) for root in _NOT_UNDER)


def _install_dir(program: Path) -> Path:
    # A program in `<prefix>/bin` brings its prefix (a virtualenv, a Go or Node.js installation).
    return program.parent.parent if program.parent.name == "bin" else program.parent


@dataclass(frozen=True)
class MountPlan:
    """What a sandboxed command sees of the machine's file system; everything else does not exist for it.

    Attributes:
        symlinks: (target, link) pairs recreating merged-/usr links such as `/lib -> usr/lib`.
        readonly: host directories and files bound read-only at the same path.
        writable: host directories bound writable at the same path (the run directory, the workspace copy,
            a virtualenv being built).
        network: the host's network is shared (setup steps); otherwise only a private loopback exists.
    """

    symlinks: tuple[tuple[str, Path], ...]
    readonly: tuple[Path, ...]
    writable: tuple[Path, ...]
    network: bool

    def bwrap_args(self, binary: str, chdir: Path) -> list[str]:
        """The bubblewrap command line (up to and including `--`) that sets up this plan and enters `chdir`."""
        args = [binary, "--unshare-all"]
        if self.network:
            args.append("--share-net")
        args += ["--die-with-parent", "--cap-drop", "ALL", "--perms", "0755", "--dir", "/etc"]
        for target, link in self.symlinks:
            args += ["--symlink", target, str(link)]
        binds = [(path, "--ro-bind") for path in self.readonly] + [(path, "--bind") for path in self.writable]
        # Parents before children, so a read-only directory inside a writable one stays read-only.
        binds.sort(key=lambda bind: len(bind[0].parts))
        system = [(path, flag) for path, flag in binds if not _covers(Path("/tmp"), path)]  # noqa: S108
        under_tmp = [(path, flag) for path, flag in binds if _covers(Path("/tmp"), path)]  # noqa: S108
        for path, flag in system:
            args += [flag, str(path), str(path)]
        args += [
            "--dev", "/dev",
            "--tmpfs", "/dev/shm",  # noqa: S108 -- a private tmpfs inside the sandbox
            "--proc", "/proc",
            "--tmpfs", "/tmp",  # noqa: S108 -- a private tmpfs inside the sandbox
        ]  # fmt: skip
        # Directories under /tmp (the run directory, a CI checkout's virtualenv) reappear inside the new tmpfs.
        for path, flag in under_tmp:
            args += [flag, str(path), str(path)]
        # The sandbox's own root (a tmpfs holding the mount points) becomes read-only too: a write anywhere but
        # the writable binds, /tmp and /dev/shm fails with EROFS instead of landing in a throw-away directory.
        args += ["--remount-ro", "/", "--chdir", str(chdir), "--"]
        return args


def mount_plan(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    workspace: Path,
    writable: Sequence[Path] = (),
    readonly: Sequence[Path] = (),
    network: bool = False,
) -> MountPlan:
    """The file system a sandboxed command gets: system directories, a minimal /etc, toolchains, given binds.

    Args:
        command: the command; the installation directory of its program is bound read-only when it lies
            outside the system directories.
        env: the command's environment: the toolchain homes in it (`CARGO_HOME`, `RUSTUP_HOME`, `GOROOT`,
            `GOPATH`, ...) and the toolchain programs on its PATH are bound read-only (the parts they need).
        workspace: bound writable (normally it lies inside a writable run directory already).
        writable: directories bound writable (the run directory, a virtualenv being built).
        readonly: directories bound read-only (the interpreter's prefixes, a cached virtualenv).
        network: the command shares the host's network (setup steps).
    """
    home = Path.home()
    symlinks: list[tuple[str, Path]] = []
    bound: dict[Path, bool] = {}  # path -> writable
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            symlinks.append((os.readlink(path), path))
        elif path.is_dir():
            bound[path] = False
    etc = (*_ETC_ENTRIES, *(_ETC_SETUP_ENTRIES if network else ()))
    for entry in etc:
        path = Path("/etc") / entry
        if path.exists():
            bound[path] = False

    candidates: list[tuple[Path, bool]] = [(Path(p), False) for p in readonly]
    for variable, parts in _TOOLCHAIN_HOMES:
        if env.get(variable):
            candidates += [(Path(env[variable]) / part, False) for part in parts]
    candidates += [(Path(p), True) for p in (*writable, workspace)]

    def covered(path: Path, is_writable: bool) -> bool:
        # Already visible with the same access through a bound directory (or a recreated /usr symlink).
        real = path.resolve()
        nearest = max((b for b in bound if _covers(b, real)), key=lambda b: len(b.parts), default=None)
        return nearest is not None and bound[nearest] == is_writable

    def bind(path: Path, is_writable: bool) -> None:
        for variant in dict.fromkeys((path, path.resolve())):
            if _bindable(variant, home) and not covered(variant, is_writable) and variant not in bound:
                bound[variant] = is_writable

    # Parents before children, so a read-only directory inside a writable one stays read-only.
    for path, is_writable in sorted(candidates, key=lambda c: len(c[0].parts)):
        bind(path, is_writable)
    # Programs last, and only those not visible yet: cargo in CARGO_HOME/bin must not bring all of CARGO_HOME.
    programs = [shutil.which(name, path=env.get("PATH")) for name in _TOOLCHAIN_PROGRAMS]
    if command and "/" not in command[0]:
        programs.append(shutil.which(command[0], path=env.get("PATH")))
    elif command and Path(command[0]).is_absolute():
        programs.append(command[0])
    for program in filter(None, programs):
        path = Path(program)
        if not (covered(path, False) and covered(path.resolve(), False)):
            bind(_install_dir(path), False)
            bind(_install_dir(path.resolve()), False)
    ordered = sorted(bound, key=lambda b: len(b.parts))
    return MountPlan(
        symlinks=tuple(symlinks),
        readonly=tuple(b for b in ordered if not bound[b]),
        writable=tuple(b for b in ordered if bound[b]),
        network=network,
    )


def unavailable_message(why_not: str) -> str:
    """What a refused untrusted run tells the operator: why bubblewrap is missing and the two ways on."""
    return (
        f"refusing to run untrusted (model-written) code without a sandbox: {why_not}. Install bubblewrap "
        "(Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`) and, as a non-root user, "
        "allow unprivileged user namespaces; or set VIBE_SANDBOX=unsafe to run it without file system and network "
        "isolation (it can then read your files and secrets)"
    )


def bwrap_available(path_env: str | None = None) -> str | None:
    """None when bubblewrap works here, else why not (missing, or namespaces refused).

    Args:
        path_env: the PATH to look for `bwrap` on (default: this process's).
    """
    binary = shutil.which("bwrap", path=path_env)
    if binary is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    return _probe_bwrap(binary)


@functools.cache
def _probe_bwrap(binary: str) -> str | None:
    probe_dir = Path(tempfile.mkdtemp(prefix="vibe-bwrap-probe-"))
    try:
        proc = subprocess.run(
            [*mount_plan(["true"], {}, workspace=probe_dir).bwrap_args(binary, probe_dir), "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run: {exc}"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    if proc.returncode != 0:
        return f"bwrap cannot create namespaces here: {proc.stderr.decode(errors='replace').strip()}"
    return None


class _PidsCgroup:
    """A child of this process's pids cgroup (v1 or v2) with `pids.max` set; root only, best effort."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> _PidsCgroup | None:
        if os.geteuid() != 0:
            return None
        parent = cls._parent_dir()
        if parent is None:
            return None
        path = parent / f"vibe-test-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
        except OSError:
            return None
        try:
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    @staticmethod
    def _parent_dir() -> Path | None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
            membership = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        v1_mount: Path | None = None
        v2_mount: Path | None = None
        for line in mountinfo:
            head, _, tail = line.partition(" - ")
            fields = head.split()
            tail_fields = tail.split()
            if len(fields) < 5 or len(tail_fields) < 3:
                continue
            if tail_fields[0] == "cgroup" and "pids" in tail_fields[2].split(","):
                v1_mount = Path(fields[4])
            elif tail_fields[0] == "cgroup2" and v2_mount is None:
                v2_mount = Path(fields[4])
        for line in membership:
            hierarchy, controllers, rel = [*line.split(":", 2), "", ""][:3]
            if v1_mount is not None and "pids" in controllers.split(","):
                return v1_mount / rel.lstrip("/")
            if v1_mount is None and v2_mount is not None and hierarchy == "0":
                candidate = v2_mount / rel.lstrip("/")
                try:
                    enabled = (candidate / "cgroup.subtree_control").read_text().split()
                except OSError:
                    return None
                # In cgroup v2 a child only gets pids.max if the parent delegates the controller to it.
                return candidate if "pids" in enabled else None
        return None

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.procs_file.read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self) -> int:
        """SIGKILL every process left in the cgroup; returns how many there were."""
        killed = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.02)
        return killed

    def remove(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    logger.warning("could not remove cgroup %s", self.path)
                    return
                time.sleep(0.05)


def process_limit_available() -> bool:
    """Whether a cap on processes binds here: a pids cgroup we can create, or RLIMIT_NPROC for a non-root user."""
    if os.geteuid() != 0:
        return True
    cgroup = _PidsCgroup.create(16)
    if cgroup is None:
        return False
    cgroup.remove()
    return True


def _user_task_count(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(entry / "task"))
        except OSError:
            continue
    return count


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _read_tail(path: Path, max_chars: int) -> str:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            if size > max_chars * 4:
                handle.seek(size - max_chars * 4)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    return text[-max_chars:]


def run_sandboxed(
    command: Sequence[str],
    *,
    workspace: Path,
    run_dir: Path,
    env: Mapping[str, str],
    limits: Limits,
    use_bwrap: bool | None = None,
    network: bool = False,
    writable: Sequence[Path] = (),
    readonly: Sequence[Path] = (),
    output_name: str = "output.log",
    max_output_chars: int = 200_000,
) -> SandboxResult:
    """Run `command` in `workspace` inside the sandbox and wait for it (at most `limits.timeout_s`).

    Args:
        command: the program and its arguments (no shell).
        workspace: the only directory of the machine the command may write to (besides `run_dir`).
        run_dir: the run's private directory, outside the workspace; the output file is written there.
        env: the complete environment of the command (see `sandbox_env`).
        limits: resource limits.
        use_bwrap: True requires bubblewrap (`SandboxUnavailableError` when it does not work), False skips it,
            None uses it when it works here and warns when it does not.
        network: keep the network (setup steps that download dependencies); tests run without.
        writable: more directories the command may write (e.g. a virtualenv being built).
        readonly: directories the command reads besides the system ones (the interpreter's prefixes, a
            virtualenv); bound read-only under bubblewrap, where nothing else of the machine is visible.
        output_name: file name of the combined stdout/stderr inside `run_dir`.
        max_output_chars: how much of the output's end is returned.

    Returns:
        The exit code (None when killed by the timeout), whether it timed out, the wall time, the output's tail
        and a description of the isolation used. The command's processes are all gone when it returns.
    """
    layers = ["process-group", "rlimits(as,cpu,fsize)", "env-allow-list"]
    missing: list[str] = []
    prefix = _bwrap_prefix(
        command, env, workspace=workspace, run_dir=run_dir, use_bwrap=use_bwrap, network=network,
        writable=writable, readonly=readonly, layers=layers, missing=missing,
    )  # fmt: skip
    rlimits = _rlimits(limits)
    cgroup = _process_cap(limits, rlimits, layers=layers, missing=missing)
    config = {"rlimits": rlimits, "cgroup_procs": [str(cgroup.procs_file)] if cgroup else []}
    argv = [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(config), "--", *prefix, *command]
    output_path = run_dir / output_name
    started = time.monotonic()
    exit_code, timed_out, killed = _launch_and_wait(
        argv, cwd=workspace, env=env, output_path=output_path, timeout_s=limits.timeout_s, cgroup=cgroup
    )
    duration = time.monotonic() - started
    return SandboxResult(
        exit_code=None if timed_out else exit_code,
        timed_out=timed_out,
        duration_s=duration,
        output=_read_tail(output_path, max_output_chars),
        isolation=" + ".join(layers) + (f" [{'; '.join(missing)}]" if missing else ""),
        killed_leftovers=killed,
        notes=_notes(exit_code, timed_out=timed_out, timeout_s=limits.timeout_s),
    )


def _bwrap_prefix(
    command: Sequence[str], env: Mapping[str, str], *, workspace: Path, run_dir: Path, use_bwrap: bool | None,
    network: bool, writable: Sequence[Path], readonly: Sequence[Path], layers: list[str], missing: list[str],
) -> list[str]:  # fmt: skip
    """The bubblewrap command line in front of `command` ([] without it); adds to `layers` or `missing`.

    Raises:
        SandboxUnavailableError: `use_bwrap` is True and bubblewrap does not work here.
    """
    bwrap = shutil.which("bwrap", path=env.get("PATH"))
    why_not = bwrap_available(env.get("PATH")) if use_bwrap is not False else "disabled"
    if use_bwrap and why_not is not None:
        raise SandboxUnavailableError(unavailable_message(why_not))
    if why_not is None:
        plan = mount_plan(
            command, env, workspace=workspace, writable=(run_dir, *writable), readonly=readonly, network=network
        )
        layers.insert(0, "bwrap(" + ("net," if network else "no-net,") + "pid,user,mount-plan)")
        return plan.bwrap_args(str(bwrap), workspace)
    if use_bwrap is None:
        missing.append(f"no network or file system isolation: {why_not}")
        logger.warning("sandbox without bubblewrap (%s): the network and the file system are not isolated", why_not)
    return []


def _rlimits(limits: Limits) -> dict[str, tuple[int, int]]:
    """The launcher's resource limits: memory, CPU time, file size, no core files."""
    # A backstop behind the wall-clock timeout: a multi-threaded process (cargo test, rustc) may use every core
    # for the whole run, so its CPU time can reach the timeout times the number of cores.
    cpu_s = limits.cpu_s if limits.cpu_s is not None else math.ceil(limits.timeout_s * (os.cpu_count() or 1)) + 5
    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.file_size_mb * 1024 * 1024
    return {
        "RLIMIT_AS": (memory, memory),
        "RLIMIT_CPU": (cpu_s, cpu_s + 5),
        "RLIMIT_FSIZE": (file_size, file_size),
        "RLIMIT_CORE": (0, 0),
    }


def _process_cap(
    limits: Limits, rlimits: dict[str, tuple[int, int]], *, layers: list[str], missing: list[str]
) -> _PidsCgroup | None:
    """A pids cgroup where one can be made, else RLIMIT_NPROC (added to `rlimits`) for non-root, else nothing."""
    cgroup = _PidsCgroup.create(limits.max_processes)
    if cgroup is not None:
        layers.append(f"pids-cgroup(max={limits.max_processes})")
    elif os.geteuid() != 0:
        cap = _user_task_count(os.getuid()) + limits.max_processes
        rlimits["RLIMIT_NPROC"] = (cap, cap)
        layers.append(f"rlimit-nproc(+{limits.max_processes})")
    else:
        missing.append("no process limit: running as root without a writable pids cgroup")
        logger.warning("sandbox without a process limit: root, and no writable pids cgroup")
    return cgroup


def _launch_and_wait(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], output_path: Path, timeout_s: float,
    cgroup: _PidsCgroup | None,
) -> tuple[int | None, bool, int]:  # fmt: skip
    """Start the launcher, wait at most `timeout_s`, then kill whatever is left. (exit code, timed out, killed)."""
    timed_out = False
    exit_code: int | None = None
    killed = 0
    with output_path.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        try:
            try:
                exit_code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
        finally:
            # Whatever the outcome (even KeyboardInterrupt), nothing the command started may survive it.
            if proc.poll() is None:
                _kill_group(proc.pid)
                proc.wait()
            if _group_alive(proc.pid):
                killed += 1
                _kill_group(proc.pid)
            if cgroup is not None:
                killed += cgroup.kill_all()
                cgroup.remove()
    return exit_code, timed_out, killed


def _notes(exit_code: int | None, *, timed_out: bool, timeout_s: float) -> list[str]:
    notes: list[str] = []
    if exit_code is not None and exit_code < 0:
        try:
            notes.append(f"killed by signal {signal.Signals(-exit_code).name}")
        except ValueError:
            notes.append(f"killed by signal {-exit_code}")
    if timed_out:
        notes.append(f"timed out after {timeout_s:g} s; the whole process group was killed")
    return notes
