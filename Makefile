# The two Quick start commands. Each installs what it needs first: uv (from PyPI, if missing), bubblewrap (the
# test sandbox; where it can), then the locked environment in .venv (`uv sync --frozen`), then runs.
# `=`, not `:=`: looked up again for each target, so `demo` and `test` find a uv that `bootstrap` installed.
UV = $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: demo test bootstrap sandbox

# uv from PyPI: into the active virtualenv when there is one (`pip install --user` is refused inside one),
# else into the user's site (~/.local/bin), else with pipx, else past an externally managed system Python.
bootstrap:
	@test -x "$(UV)" || { \
		if [ -n "$$VIRTUAL_ENV" ]; then python3 -m pip install --quiet uv; \
		else python3 -m pip install --quiet --user uv 2>/dev/null \
			|| { command -v pipx >/dev/null 2>&1 && pipx install --quiet uv; } \
			|| python3 -m pip install --quiet --user --break-system-packages uv; fi; }
	@# Looked up in the shell: make expands a recipe's lines before running the first one.
	@uv="$$(command -v uv 2>/dev/null || echo "$$HOME/.local/bin/uv")"; \
		test -x "$$uv" || { echo "error: could not install uv; see https://docs.astral.sh/uv/ and run make again" >&2; exit 1; }; \
		"$$uv" sync --frozen --quiet

# bubblewrap isolates the tests the model writes; without it they are refused (unless VIBE_SANDBOX=unsafe).
# Installed quietly where that needs no questions (root with apt-get); otherwise one line says how.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1 \
			|| { apt-get update -qq >/dev/null 2>&1 \
				&& apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1; } \
			|| echo "note: could not install bubblewrap (apt-get install bubblewrap failed); model-written tests will be refused"; \
		else echo "note: bubblewrap is not installed: run 'sudo apt-get install bubblewrap' (or your system's package) so model-written tests can run sandboxed"; fi; }

demo: bootstrap sandbox
	@"$(UV)" run --frozen vibe demo

test: bootstrap sandbox
	"$(UV)" run --frozen pytest
