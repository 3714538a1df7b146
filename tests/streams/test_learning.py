"""The risk model: learned from a history whose truth is known, refused when it cannot be
trusted, and the same signals whatever order a file comes in."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from scipy.optimize import check_grad

from touchstream.inputs import InputRecord
from touchstream.learner import parse_model
from touchstream.replay import replay
from touchstream.streams.bgnbd import BGNBDParams
from touchstream.streams.churn import FEATURES, RiskModel, gap_spread
from touchstream.streams.customer_state import RECENT_KEEP
from touchstream.streams.learning import Examples, _objective, examples, learn
from touchstream.streams.rules import Rules


def simulated_days(customers: int, days: int, seed: int = 1) -> dict[str, list[int]]:
    """A BG/NBD business: Poisson buyers who drop out after a purchase with some chance."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {}
    for i in range(customers):
        start = int(rng.integers(0, days // 3))
        rate = rng.gamma(0.8, 1 / 8.0)  # a purchase every ~10 days on average
        drop = rng.beta(1.0, 6.0)
        t, bought = float(start), [start]
        while True:
            t += rng.exponential(1 / max(rate, 1e-6))
            if t >= days:
                break
            bought.append(int(t))
            if rng.random() < drop:
                break
        out[f"c{i}"] = sorted(set(bought))
    return out


def test_the_gradient_is_the_likelihoods() -> None:
    rng = np.random.default_rng(0)
    n = len(FEATURES)
    ex = Examples(
        rng.normal(size=(300, n)),
        rng.uniform(0.5, 60, 300),
        rng.random(300) < 0.6,
        rng.uniform(0, 90, 300),
    )
    theta = rng.normal(scale=0.2, size=2 * n + 1)
    error = check_grad(lambda t: _objective(t, ex)[0], lambda t: _objective(t, ex)[1], theta)
    assert error < 1e-4
    # with a shift of each part per checkpoint (the calendar's effect)
    ex.period = rng.integers(0, 4, 300)
    theta = rng.normal(scale=0.2, size=2 * n + 1 + 2 * 4)
    error = check_grad(lambda t: _objective(t, ex)[0], lambda t: _objective(t, ex)[1], theta)
    assert error < 1e-4


def test_the_calendar_is_not_read_as_the_customers_age() -> None:
    """A business whose customers all buy less from day 80 on (a season ends), whatever
    their age: later checkpoints see older one-time buyers *and* a quieter calendar. The
    learned P must not rise with a one-time buyer's age, which is here no evidence at all.
    Pooled without a shift per checkpoint it rose from 0.30 to 0.65 across these ages (and
    from 0.26 to 0.58 across Ta-Feng's one-time buyers, who came back equally at any age)."""
    rng = np.random.default_rng(5)
    days: dict[str, list[int]] = {}
    for i in range(6000):
        first = int(rng.integers(0, 160))
        bought, t = [first], float(first)
        while True:
            t += rng.exponential(10.0 if t < 80 else 50.0)
            if t >= 200:
                break
            bought.append(int(t))
        days[f"c{i}"] = sorted(set(bought))
    model = learn(days, 200, horizon_days=30.0)
    assert model.learned
    p = [model.p_no_contact(0, 0.0, age, 30.0) for age in (3.0, 30.0, 60.0, 120.0, 190.0)]
    assert max(p) - min(p) < 0.03, p


def test_learned_probabilities_match_what_the_customers_then_did() -> None:
    """Learn on days [0, 300), predict at 300 for a 60-day horizon, compare with days 300-360
    of the same simulated customers: calibrated by decile, and ranking well. The history
    holds moments whose whole 60-day horizon it has seen, so the model is recalibrated."""
    everything = simulated_days(4000, 360)
    model = learn(everything, 300, horizon_days=60.0)
    assert model.learned and model.version.startswith("m-")
    assert model.recalibrated_for == 60.0 and len(model.recalibration) == 2
    p, left = [], []
    for days in everything.values():
        before = [d for d in days if d < 300]
        x, t_x, age = len(before) - 1, before[-1] - before[0], 300 - before[0]
        spread = gap_spread(before[-RECENT_KEEP:], t_x / x) if x else 0.0
        p.append(model.p_no_contact(x, t_x, age, 60.0, spread))
        left.append(not any(300 <= d < 360 for d in days))
    p_arr, y = np.array(p), np.array(left)
    for part in np.array_split(np.argsort(p_arr), 10):
        assert abs(p_arr[part].mean() - y[part].mean()) < 0.08
    order = np.argsort(p_arr)
    assert y[order[-400:]].mean() > y[order[:400]].mean() + 0.5


def test_examples_look_only_before_the_cutoff() -> None:
    days = {"a": [0, 10, 20, 400], "b": [5, 200]}
    ex = examples(days, 100, BGNBDParams())
    assert len(ex) > 0
    # nothing at or after day 100 is an outcome: a's 400 and b's 200 are never seen
    assert ex.wait.max() <= 100
    assert not ex.came[ex.wait > 20].any()


@pytest.mark.parametrize(
    ("history", "why"),
    [
        ({"only": [1, 5, 9]}, "too little history: 1 customers"),
        ({f"c{i}": [i % 50] for i in range(500)}, "0 who came back"),
    ],
)
def test_an_unlearnable_history_keeps_the_default_and_says_why(
    history: dict, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="touchstream.learning"):
        model = learn(history, 100)
    assert not model.learned and model.version == "default"
    assert why in model.quality["fallback"] and why in caplog.text
    assert "default model (too little history" in model.describe()


def test_a_corrupt_or_stale_model_row_falls_back_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = learn(simulated_days(800, 200), 200)
    assert parse_model(good.to_json(), "test").to_json() == good.to_json()
    stale = orjson.loads(good.to_json())
    stale["features"] = ["intercept", "something_else"]
    broken = good.to_json().replace('"shape": ', '"shape": -')
    for text, problem in (
        ("{not json", "unusable"),
        (orjson.dumps(stale).decode(), "other features"),
        (broken, "shape must be positive"),
        ('{"population": {"r": 1}}', "unusable"),
    ):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="touchstream.learner"):
            model = parse_model(text, "risk_models row")
        assert not model.learned, text
        assert problem in caplog.text and "the default model instead" in caplog.text


def test_the_recalibration_is_learned_only_where_the_history_saw_whole_horizons() -> None:
    """A 300-day horizon after 300 days of history: no moment's outcome is known, so no
    map; a 30-day one: a map, applied at that horizon only, that keeps the order."""
    history = simulated_days(1500, 300)
    long = learn(history, 300, horizon_days=300.0)
    assert long.learned and long.recalibration == () and long.quality["horizon_moments"] == 0
    short = learn(history, 300, horizon_days=30.0)
    assert short.recalibrated_for == 30.0 and short.recalibration[1] > 0
    assert short.quality["horizon_moments"] >= 1_000
    assert 5.0 < short.typical_gap < 20.0  # its buyers come back every ~10 days
    raw = replace(short, recalibration=(), recalibrated_for=0.0)
    rhythms = [(0, 0.0, 40.0), (3, 30.0, 45.0), (8, 80.0, 200.0), (2, 10.0, 150.0)]
    for x, t_x, age in rhythms:
        assert short.p_no_contact(x, t_x, age, 60.0) == raw.p_no_contact(x, t_x, age, 60.0)
    at_30 = [short.p_no_contact(x, t_x, age, 30.0) for x, t_x, age in rhythms]
    raw_30 = [raw.p_no_contact(x, t_x, age, 30.0) for x, t_x, age in rhythms]
    assert at_30 != raw_30 and np.argsort(at_30).tolist() == np.argsort(raw_30).tolist()
    assert RiskModel.from_json(short.to_json()).to_json() == short.to_json()
    with pytest.raises(ValueError, match="recalibration"):
        replace(short, recalibrated_for=0.0).check()


def test_the_default_model_is_bgnbds_own_answer() -> None:
    model = RiskModel()
    p = model.population
    # a one-time buyer is alive by construction: only the waiting counts
    expected = ((p.alpha + 30) / (p.alpha + 30 + 90)) ** p.r
    assert model.p_no_contact(0, 0.0, 30.0, 90.0) == pytest.approx(expected)
    assert 0.0 < model.p_no_contact(5, 50.0, 200.0, 90.0) <= 1.0
    # no time to come back: certain; a long time: unlikely for a regular just seen
    assert math.isclose(model.p_no_contact(5, 50.0, 50.0, 1e-9), 1.0)
    assert model.p_no_contact(5, 50.0, 50.0, 365.0) < 0.2


def _file(customer_order: bool) -> list[InputRecord]:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    events = []
    for c in range(30):
        rhythm = 3 + c % 7
        stop = 40 + (c * 11) % 80
        for n, day in enumerate(range(c % 5, stop, rhythm)):
            events.append(
                {
                    "event_id": f"{c}-{n}",
                    "customer_id": f"cust-{c}",
                    "occurred_at": (start + timedelta(days=day)).isoformat(),
                    "channel": "web",
                    "kind": "purchase",
                    "value": {"amount": 20.0 + c, "currency": "EUR"},
                }
            )
    if not customer_order:
        events.sort(key=lambda e: e["occurred_at"])
    return [InputRecord(i, orjson.dumps(e)) for i, e in enumerate(events, 1)]


def test_a_file_grouped_by_customer_gives_the_time_ordered_signals() -> None:
    as_of = datetime(2026, 7, 1, tzinfo=UTC)

    def ids(records: list[InputRecord], **kwargs: object) -> list[str]:
        result = replay(
            records,
            rules=Rules(),
            model=RiskModel(),
            partitions=4,
            source="t",
            as_of=as_of,
            **kwargs,  # type: ignore[arg-type]
        )
        return sorted(s.signal_id for s in result.signals)

    in_time = ids(_file(customer_order=False))
    assert len(in_time) >= 20, "the silent customers are found"
    assert ids(_file(customer_order=True)) == in_time
    # kept in customer order, the silence checks of everyone before are skipped
    assert ids(_file(customer_order=True), sort_by_time=False) != in_time


def test_a_longer_silence_never_lowers_the_learned_probability() -> None:
    """A history whose customers were never silent long (regular buyers, three months):
    beyond the silences it has shown, the learned P of no contact keeps rising with the
    silence instead of turning over (the demo's model put a customer silent nine usual gaps
    at 0.002 before the bounds)."""
    rng = np.random.default_rng(3)
    days: dict[str, list[int]] = {}
    for i in range(1500):
        cadence = rng.uniform(6.0, 14.0)
        t, bought = rng.uniform(0, cadence), []
        while t < 92:
            bought.append(int(t))
            t += rng.exponential(cadence)
        days[f"c{i}"] = sorted(set(bought)) or [0]
    model = learn(days, 92, horizon_days=90.0)
    assert model.learned
    for x, t_x in [(8, 80.0), (12, 88.0), (3, 30.0), (0, 0.0)]:
        gap = t_x / x if x else 10.0
        spread = gap * 0.5
        start = 92.0 - t_x
        p = [
            model.p_no_contact(x, t_x, start + t_x + silence, 90.0, spread)
            for silence in np.linspace(0.0, 15 * gap, 60)
        ]
        assert all(b >= a - 1e-12 for a, b in itertools.pairwise(p)), (x, p)


def test_a_one_time_buyer_is_late_after_the_business_s_typical_gap() -> None:
    """Where the model was checked at the horizon, a one-time buyer is raised once silent
    past the business's typical gap (a week here), found by the silence timer on that day,
    not at the 30-day default gap; a model that learned no typical gap waits for that."""
    start = datetime(2026, 3, 2, 12, tzinfo=UTC)
    events = [("once", 0)] + [("daily", day) for day in range(40)]  # moves the watermark
    records = [
        InputRecord(
            n,
            orjson.dumps(
                {
                    "event_id": f"e{n}",
                    "customer_id": customer,
                    "occurred_at": (start + timedelta(days=day)).isoformat(),
                    "channel": "store",
                    "kind": "purchase",
                    "value": {"amount": 30.0, "currency": "EUR"},
                }
            ),
        )
        for n, (customer, day) in enumerate(events, 1)
    ]
    n = len(FEATURES)
    leaves = RiskModel(  # P(no contact within 90 days) ~0.99 for everyone: the gate decides
        never=(5.0,) + (0.0,) * (n - 1),
        rate=(0.0,) * n,
        recalibration=(0.0, 1.0),
        recalibrated_for=90.0,
        typical_gap=7.0,
    )

    def raised(model: RiskModel) -> list[tuple[int, str]]:
        result = replay(records, rules=Rules(), model=model, partitions=1, source="t")
        return [
            (math.floor((s.raised_at - start).total_seconds() / 86_400), s.reasons[0].detail)
            for s in result.signals
            if s.customer_id == "once" and s.kind == "about_to_defect"
        ]

    [(day, why)] = raised(leaves)
    assert day == 7, "raised on the day the typical gap has passed"
    assert "one visit, 8 days ago; the business's customers typically come back within 7.0" in why
    [(day, why)] = raised(replace(leaves, typical_gap=0.0))
    assert day == 30 and "silent 1.0x their usual gap" in why
