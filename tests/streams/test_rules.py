from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from touchstream.schemas import SignalKind
from touchstream.streams.churn import FEATURES, RiskModel
from touchstream.streams.measure import Metrics, lapse_strength
from touchstream.streams.params import TriggerParams
from touchstream.streams.risk import raisable, risk
from touchstream.streams.rules import Rules, Trigger
from touchstream.streams.scoring import decide, severity, signal_id
from touchstream.streams.wow import NO_MOMENT, wow

RULES = Rules()
unit = st.floats(0, 1)


@st.composite
def metrics(draw) -> Metrics:
    overdue_ratio = draw(st.floats(0, 100))
    silence_z = draw(st.floats(-1, 100))
    p_alive = draw(unit)
    repeat_days = draw(st.integers(0, 3) | st.integers(0, 200))
    spend = draw(st.floats(0, 1e5))
    return Metrics(
        now=1.8e9,
        expectation_gap=draw(st.floats(-10, 10)),
        worst_recent_gap=draw(st.floats(-10, 0)),
        failed=draw(st.floats(0, 50)),
        met=draw(st.floats(0, 50)),
        exceeded=draw(st.floats(0, 50)),
        consistency=draw(unit),
        quality_mean=draw(st.floats(-1, 1)),
        quality_stddev=draw(unit),
        met_or_better_share=draw(unit),
        channel_spread=draw(unit),
        streak=draw(st.integers(0, 16)),
        mean_interarrival_days=draw(st.none() | st.floats(0, 400)),
        overdue_ratio=overdue_ratio,
        silent_days=draw(st.floats(0, 400)),
        p_alive=p_alive,
        rating=draw(st.none() | unit),
        rating_trend=draw(st.floats(-1, 1)),
        open_complaints=draw(st.integers(0, 8)),
        oldest_open_complaint_days=draw(st.floats(0, 100)),
        silent_failures=draw(st.integers(0, 16)),
        channels=draw(st.integers(0, 10)),
        promises=draw(st.floats(0, 50)),
        broken_promise_rate=draw(unit),
        consecutive_misses=draw(st.integers(0, 20)),
        worst_recent_miss=draw(st.floats(0, 100)),
        mean_miss=draw(unit),
        repeat_days=repeat_days,
        spend=spend,
        silence_z=silence_z,
        lapse=lapse_strength(silence_z, p_alive, repeat_days, RULES.scoring),
        p_leave=draw(unit),
    )


@given(metrics())
def test_the_rhythm_raises_a_late_customer_only(m: Metrics) -> None:
    """A model checked at this horizon on the business's history raises once the customer
    is past their usual gap (a one-time buyer: past the business's typical gap, once one
    is learned); one that was not (the default, or one learned on a history shorter than
    the horizon) only once the silence is clearly past their rhythm."""
    n = len(FEATURES)
    learned = RiskModel(never=(0.0,) * n, rate=(0.0,) * n)
    checked = replace(learned, recalibration=(0.0, 1.0), recalibrated_for=m.horizon_days)
    with_gap = replace(checked, typical_gap=14.0)
    elsewhere = replace(with_gap, recalibrated_for=m.horizon_days + 30.0)
    one_time = m.repeat_days == 0
    for model, late in (
        (checked, m.overdue_ratio > 1.0),
        (with_gap, m.silent_days > 14.0 if one_time else m.overdue_ratio > 1.0),
        (elsewhere, m.lapse >= 0.5),
        (learned, m.lapse >= 0.5),
        (RiskModel(), m.lapse >= 0.5),
    ):
        score = risk(m, RULES.scoring, model)
        assert raisable(m, score, RULES.scoring, model) == (score.value if late else score.service)


moments = st.sampled_from(
    [
        NO_MOMENT,
        (1.0, "milestone", "their 10th purchase"),
        (0.9, "service_recovery", "their complaint was resolved in 5 hours"),
    ]
)


@given(metrics())
def test_risk_in_unit_interval_and_reasons_sum_to_score(m: Metrics) -> None:
    score = risk(m, RULES.scoring, RiskModel())
    assert 0.0 <= score.value <= 1.0
    assert sum(r.contribution for r in score.reasons) == pytest.approx(score.value, abs=1e-9)
    assert all(r.contribution > 0 for r in score.reasons)
    contributions = [r.contribution for r in score.reasons]
    assert contributions == sorted(contributions, reverse=True)


@given(metrics(), unit, moments, st.floats(-1, 1))
def test_wow_in_unit_interval_and_reasons_sum_to_score(
    m: Metrics, risk_value: float, moment: tuple, pre_incident: float
) -> None:
    score = wow(m, risk_value, moment, RULES.scoring, pre_incident)
    assert 0.0 <= score.value <= 1.0
    assert sum(r.contribution for r in score.reasons) == pytest.approx(score.value, abs=1e-9)
    if risk_value > RULES.wow.max_risk or m.lapse > RULES.wow.max_lapse:
        assert score.value == 0.0  # no wow on top of a risk or a lapse
    judged_on = pre_incident if moment[1] == "service_recovery" and pre_incident >= 0 else None
    if (m.consistency if judged_on is None else judged_on) < RULES.wow.min_consistency:
        assert score.value == 0.0  # consistency comes before wow
    if judged_on is None and m.promises > 0.5 and m.broken_promise_rate > 0.2 + 1e-9:
        assert score.value == 0.0  # and kept promises


@given(metrics(), unit)
def test_a_likelier_lapse_never_lowers_risk(m: Metrics, more: float) -> None:
    from dataclasses import replace

    quieter = replace(m, p_leave=m.p_leave + (1.0 - m.p_leave) * more)
    model = RiskModel()
    assert risk(quieter, RULES.scoring, model).value >= risk(m, RULES.scoring, model).value - 1e-12


@given(
    st.integers(0, 60),
    st.floats(0, 400),
    st.floats(0, 400),
    st.floats(1, 400),
    st.floats(1, 400),
)
def test_the_default_models_lapse_grows_with_silence_and_shrinks_with_horizon(
    x: int, t_x: float, silent: float, more: float, horizon: float
) -> None:
    model = RiskModel()
    t_x = t_x if x else 0.0
    p = model.p_no_contact(x, t_x, t_x + silent, horizon)
    assert 0.0 <= p <= 1.0
    assert model.p_no_contact(x, t_x, t_x + silent + more, horizon) >= p - 1e-12
    # a longer horizon leaves more time to come back
    assert model.p_no_contact(x, t_x, t_x + silent, horizon + more) <= p + 1e-12


TRIGGER = TriggerParams(Trigger(raise_at=0.5, clear_below=0.3, cooldown_days=10))
DAY = 86_400.0


@pytest.mark.parametrize(
    ("active", "last", "score", "now", "expected"),
    [
        (False, None, 0.49, 0, "hold"),  # below the threshold
        (False, None, 0.50, 0, "raise"),  # crossing up
        (True, 0.0, 0.90, 1, "hold"),  # already raised: no repeat while high
        (True, 0.0, 0.40, 1, "hold"),  # inside the hysteresis band: stays active
        (True, 0.0, 0.29, 1, "clear"),  # below the band: re-armed
        (False, 0.0, 0.90, 5 * DAY, "hold"),  # re-armed but still cooling down
        (False, 0.0, 0.90, 11 * DAY, "raise"),  # after the cooldown
    ],
)
def test_hysteresis_and_cooldown(active, last, score, now, expected) -> None:
    assert decide(active, last, score, now, TRIGGER) == expected


def test_trigger_band_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="hysteresis"):
        Trigger(raise_at=0.3, clear_below=0.5, cooldown_days=1)


def test_signal_id_is_deterministic() -> None:
    a = signal_id("c1", SignalKind.about_to_defect, 1.8e9, "v1")
    assert a == signal_id("c1", SignalKind.about_to_defect, 1.8e9, "v1")
    assert a != signal_id("c1", SignalKind.about_to_defect, 1.8e9 + 1, "v1")
    assert a != signal_id("c1", SignalKind.wow_opportunity, 1.8e9, "v1")
    assert a != signal_id("c1", SignalKind.about_to_defect, 1.8e9, "v2")


def test_severity_bands() -> None:
    assert [severity(s).value for s in (0.5, 0.6, 0.75, 0.9)] == [
        "low",
        "medium",
        "high",
        "critical",
    ]


def test_rules_files_yaml_and_toml(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rules.yaml"
    yaml_file.write_text(
        "version: tuned-2\nrisk:\n  trigger: {raise_at: 0.6, clear_below: 0.4, cooldown_days: 7}\n"
    )
    assert Rules.load(yaml_file).risk.trigger.raise_at == 0.6
    toml_file = tmp_path / "rules.toml"
    toml_file.write_text('version = "t"\nhalf_life_days = 60\n[wow]\nmin_consistency = 0.7\n')
    loaded = Rules.load(toml_file)
    assert loaded.half_life_days == 60 and loaded.wow.min_consistency == 0.7
    assert Rules.load(None) == Rules()


def test_rules_file_errors_are_explained(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("risk:\n  weights: {broken_promises: 1.5}\n")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Rules.load(bad)
    bad.write_text("wow:\n  weights: {moment: 0.9}\n")
    with pytest.raises(ValidationError, match="sum to 1"):
        Rules.load(bad)
    bad.write_text("risk:\n  horizon_days: 0\n")
    with pytest.raises(ValidationError, match="horizon_days"):
        Rules.load(bad)
    bad.write_text("risk:\n  actions: {lapse: 'call {customer}'}\n")
    with pytest.raises(ValidationError, match=r"only \{team\}, \{channel\} and \{metric\}"):
        Rules.load(bad)
    bad.write_text("risk:\n  surprise: 1\n")
    with pytest.raises(ValidationError, match="surprise"):
        Rules.load(bad)


def test_a_rules_file_changes_only_the_table_entries_it_names(tmp_path: Path) -> None:
    """Overriding one action text or one cooldown keeps every other default: an operator
    rewording the lapse check-in must not leave the broken promise without an action."""
    path = tmp_path / "rules.toml"
    path.write_text(
        '[risk.actions]\nlapse = "call them on {channel}"\n'
        "[wow.moment_cooldown_days]\nadvocacy = 90\n"
    )
    rules = Rules.load(path)
    assert rules.risk.actions["lapse"] == "call them on {channel}"
    assert rules.risk.actions.keys() == RULES.risk.actions.keys()
    assert rules.risk.actions["broken_promises"] == RULES.risk.actions["broken_promises"]
    assert rules.wow.moment_cooldown_days == {**RULES.wow.moment_cooldown_days, "advocacy": 90}
