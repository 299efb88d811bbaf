"""A per-run spending cap in tokens and/or USD, and the usage tally per provider that the summary reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from vibe.errors import BudgetExceededError


@dataclass
class ProviderUsage:
    """Tokens, cost and calls billed by one provider during a run."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    cached_calls: int = 0
    # Answers a replay cassette gave: they cost nothing; `list_cost_usd` is what they would have cost live.
    replayed_calls: int = 0
    list_cost_usd: float = 0.0


@dataclass
class Budget:
    """What a run may spend and what it has spent.

    A cap of None means no cap. `check` is called before every LLM call: once spending has reached a cap (or the
    call's estimated input alone would cross it) the run stops with `BudgetExceededError` before calling.

    Attributes:
        max_tokens: cap on input + output tokens over the run.
        max_usd: cap on the run's cost in USD (calls with an unknown price count as free, and say so).
    """

    max_tokens: int | None = None
    max_usd: float | None = None
    by_provider: dict[str, ProviderUsage] = field(default_factory=dict)
    unpriced_calls: int = 0

    @property
    def tokens(self) -> int:
        return sum(u.input_tokens + u.output_tokens for u in self.by_provider.values())

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.by_provider.values())

    @property
    def list_cost_usd(self) -> float:
        """What the replayed answers would have cost at list prices (they cost nothing)."""
        return sum(u.list_cost_usd for u in self.by_provider.values())

    def check(self, *, estimated_input_tokens: int = 0, input_price_per_mtok: float | None = None) -> None:
        """Raise `BudgetExceededError` when the next call would start past a cap.

        Args:
            estimated_input_tokens: the size of the prompt about to be sent.
            input_price_per_mtok: the model's input price, to estimate the call's minimum cost.
        """
        if self.max_tokens is not None and self.tokens + estimated_input_tokens > self.max_tokens:
            raise BudgetExceededError(
                f"token budget reached: {self.tokens} tokens spent, the next call needs about "
                f"{estimated_input_tokens} more, the cap is {self.max_tokens} (raise VIBE_BUDGET_TOKENS to go on)"
            )
        if self.max_usd is not None:
            estimate = estimated_input_tokens * (input_price_per_mtok or 0.0) / 1_000_000
            if self.cost_usd + estimate > self.max_usd:
                raise BudgetExceededError(
                    f"USD budget reached: ${self.cost_usd:.4f} spent, the next call costs at least ${estimate:.4f}, "
                    f"the cap is ${self.max_usd:.4f} (raise VIBE_BUDGET_USD to go on)"
                )

    def charge(
        self, provider: str, *, input_tokens: int, output_tokens: int, cost_usd: float | None, cached: bool = False,
        list_cost_usd: float | None = None,
    ) -> None:  # fmt: skip
        """Record one call's usage (a cache hit is recorded as a call that cost nothing; a replayed answer too,
        with `list_cost_usd` what it would have cost live)."""
        usage = self.by_provider.setdefault(provider, ProviderUsage())
        usage.calls += 1
        if list_cost_usd is not None:
            usage.replayed_calls += 1
            usage.list_cost_usd += list_cost_usd
        if cached:
            usage.cached_calls += 1
            return
        usage.input_tokens += input_tokens
        usage.output_tokens += output_tokens
        if cost_usd is None:
            self.unpriced_calls += 1
        else:
            usage.cost_usd += cost_usd
