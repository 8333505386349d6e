"""`make bench`'s paired measurements: both sides run in each round, in
alternating order, and the round with the median ratio is reported."""

from __future__ import annotations

from bench.harness import interleave


def test_rounds_alternate_the_order_and_report_the_median_ratio_round() -> None:
    calls: list[str] = []
    rates = {"ours": iter([10.0, 30.0, 20.0]), "base": iter([40.0, 40.0, 40.0])}

    def measure(name: str) -> float:
        calls.append(name)
        return next(rates[name])

    chosen = interleave(
        {"ours": lambda: measure("ours"), "base": lambda: measure("base")},
        3,
        score=lambda run: run["ours"] / run["base"],
    )
    assert calls == ["ours", "base", "base", "ours", "ours", "base"]
    assert chosen == {"ours": 20.0, "base": 40.0}  # ratios 0.25, 0.75, 0.5: the median
