"""Tiny launcher run as `python -I -S _launch.py CONFIG_JSON -- COMMAND...` (standard library only).

It runs in the new process before the command: it joins the run's cgroup (so the process limit covers every
descendant, including ones that leave the process group), sets the resource limits, then `exec`s the command.
Doing this in a separate interpreter instead of `preexec_fn` keeps the parent, which has threads (Prefect,
logging), from running Python code between `fork` and `exec`.
"""

import json
import os
import resource
import sys


def main() -> None:
    config = json.loads(sys.argv[1])
    command = sys.argv[3:]
    for procs_file in config.get("cgroup_procs", []):
        with open(procs_file, "w") as handle:
            handle.write(str(os.getpid()))
    for name, (soft, hard) in config.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    try:
        os.execvp(command[0], command)  # noqa: S606 -- exec the sandboxed command itself, no shell
    except OSError as exc:
        sys.stderr.write(f"vibe sandbox: cannot run {command[0]!r}: {exc.strerror}\n")
        sys.exit(127)


if __name__ == "__main__":
    main()
