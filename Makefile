# Two entry points for a fresh machine; both install what they need first (uv, then the locked environment).
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: demo test bootstrap

bootstrap:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || python3 -m pip install --quiet --user uv
	@$(UV) sync --frozen --quiet

demo: bootstrap
	@$(UV) run --frozen vibe demo

test: bootstrap
	$(UV) run --frozen pytest
