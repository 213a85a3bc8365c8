"""The fan-out benchmark's verdicts (bench/fanout_peers.py): p99 is only compared at
comparable offered loads, and a loss where Tandem was offered no more load counts."""

from __future__ import annotations

import pytest

from bench.fanout_peers import same_load, targets


def side(sent: int | None, p99: int, delivered: int = 100_000) -> dict:
    return {"sent_per_s": sent, "p99_ms": p99, "delivered_per_s": delivered}


@pytest.mark.parametrize(
    ("tandem", "hocuspocus", "verdict"),
    [
        (side(2000, 45), side(2000, 54), True),  # same load, lower p99
        (side(2000, 58), side(1960, 52), False),  # same load (within 5%), higher p99
        (side(4000, 70), side(3000, 85), True),  # more load and still lower p99
        (side(4000, 74), side(3177, 67), None),  # more load, higher p99: not comparable
        (side(3000, 90), side(4000, 80), False),  # less load and still higher p99
        (side(3000, 70), side(4000, 80), None),  # less load, lower p99: not comparable
        (side(None, 4800), side(None, 4900), True),  # one burst (M = 1) on both
    ],
)
def test_p99_verdict_depends_on_the_offered_loads(tandem, hocuspocus, verdict):
    assert targets(tandem, hocuspocus, paced=True)["p99_no_worse_than_hocuspocus"] is verdict


def test_rate_is_judged_at_full_speed_only():
    assert "rate_at_least_hocuspocus" not in targets(side(2000, 1), side(2000, 1), paced=True)
    full = targets(side(9000, 200, 400_000), side(3000, 170, 160_000), paced=False)
    assert full == {"rate_at_least_hocuspocus": True, "p99_no_worse_than_hocuspocus": None}
    assert not targets(side(9000, 1, 99_999), side(9000, 2, 100_000), paced=False)[
        "rate_at_least_hocuspocus"
    ]


def test_same_load_is_within_five_percent():
    assert same_load(1000, 951) and same_load(951, 1000)
    assert not same_load(1000, 949)
    assert not same_load(1000, None) and not same_load(None, 1000)
