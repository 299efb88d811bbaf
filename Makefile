# The two Quick start commands. Each installs what it needs first: uv (from PyPI, if missing), then the
# locked environment in .venv (`uv sync --frozen`), then runs.
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: demo test bootstrap

bootstrap:
	@test -x "$(UV)" || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@"$(UV)" sync --frozen --quiet

demo: bootstrap
	@"$(UV)" run --frozen vibe demo

test: bootstrap
	"$(UV)" run --frozen pytest
