"""Per-touchpoint math: expectation gaps, service level and quality. Pure functions.

See docs/metrics.md for the formulas and the reasons behind each default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from touchstream.schemas import Direction, Kind, Outcome, RatingScale
from touchstream.schemas.decoder import Expectation, Rating, Touchpoint
from touchstream.schemas.touchpoint import RATING_BOUNDS

GAP_CAP: Final = 10.0  # tolerance units; one absurd promise must not dominate a customer's mean
# A broken promise's size is kept apart, uncapped in `miss` (how many times the promise it
# missed by: promised 1 day, took 5 = 4.0) and scored on a log scale that reaches 1 at
# MISS_FULL: 2x late = 0.43, 3x = 0.68, 5x = 1.0. Losses weigh more than gains: a broken
# promise scores quality -(0.5 + 0.5 * strength), whatever else the touchpoint said.
MISS_FULL: Final = 4.0
_LOG_MISS_FULL: Final = math.log2(1.0 + MISS_FULL)

# Kinds the company initiates: they say nothing about whether the customer is still talking.
COMPANY_INITIATED: Final = frozenset({Kind.delivery, Kind.notification})
FEEDBACK_KINDS: Final = frozenset({Kind.survey, Kind.feedback, Kind.review})
ADVOCACY_KINDS: Final = frozenset({Kind.referral, Kind.review})
PURCHASE_KINDS: Final = frozenset({Kind.purchase, Kind.order})

_OUTCOME_QUALITY: Final = {
    Outcome.success: 0.5,
    Outcome.partial: -0.3,
    Outcome.cancelled: -0.5,
    Outcome.failure: -1.0,
}


class Level(IntEnum):
    """Service level of one touchpoint. `none` = nothing to judge (a plain visit)."""

    none = 0
    failed = 1
    met = 2
    exceeded = 3


@dataclass(slots=True, init=False)
class Gap:
    metric: str
    units: float  # signed, in tolerance units, positive = better than promised, capped
    relative: float | None  # (actual - promised) / |promised|, sign-adjusted; None for 0

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(self, metric: str, units: float, relative: float | None) -> None:
        self.metric, self.units, self.relative = metric, units, relative


@dataclass(slots=True, init=False)
class Assessment:
    """What one touchpoint says about the service, before any customer history."""

    gaps: tuple[Gap, ...]
    gap: float | None  # the worst gap of the touchpoint (a broken promise dominates)
    miss: float  # size of the largest broken promise (multiples of the promise), 0 if none
    level: Level
    quality: float | None  # in [-1, 1], None when nothing could be judged
    rating: float | None  # normalised to [0, 1], 1 = best
    promoter: bool
    detractor: bool

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        gaps: tuple[Gap, ...],
        gap: float | None,
        miss: float,
        level: Level,
        quality: float | None,
        rating: float | None,
        promoter: bool,
        detractor: bool,
    ) -> None:
        self.gaps, self.gap, self.miss, self.level, self.quality = gaps, gap, miss, level, quality
        self.rating, self.promoter, self.detractor = rating, promoter, detractor


# enum members as module constants, for every compiled module: compiled code reads a class
# attribute (`Level.failed`) through a generic lookup, ~900 instructions
LEVEL_FAILED: Final = Level.failed
LEVEL_EXCEEDED: Final = Level.exceeded
LEVEL_NONE: Final = Level.none
LEVEL_MET: Final = Level.met
COMPLAINT: Final = Kind.complaint
COMPLAINT_RESOLVED: Final = Kind.complaint_resolved
REVIEW: Final = Kind.review
REFERRAL: Final = Kind.referral
_FAILURE: Final = Outcome.failure
_NPS_10: Final = RatingScale.nps_10
_CES_7: Final = RatingScale.ces_7
_HIGHER_IS_BETTER: Final = Direction.higher_is_better


def expectation_gap(expectation: Expectation) -> Gap:
    sign = 1.0 if expectation.direction is _HIGHER_IS_BETTER else -1.0
    delta = sign * (expectation.actual - expectation.promised)
    tolerance = expectation.tolerance
    if tolerance.kind == "absolute":
        width = tolerance.value
    else:
        width = tolerance.value * abs(expectation.promised)
    units = max(-GAP_CAP, min(GAP_CAP, delta / width))
    relative = delta / abs(expectation.promised) if expectation.promised else None
    return Gap(expectation.metric, units, relative)


def miss_size(gap: Gap) -> float:
    """How far a broken promise missed, in multiples of the promise (0: kept). A promise of
    0 (no relative size) counts its tolerances beyond the first: GAP_CAP of them = MISS_FULL."""
    if gap.units >= -1.0:
        return 0.0
    if gap.relative is not None:
        return max(0.0, -gap.relative)
    return (-gap.units - 1.0) / (GAP_CAP - 1.0) * MISS_FULL


def miss_strength(miss: float) -> float:
    """A miss's weight in [0, 1], log-scaled: each doubling of lateness counts the same."""
    if miss <= 0.0:
        return 0.0
    return min(1.0, math.log2(1.0 + miss) / _LOG_MISS_FULL)


def _normalised(scale: RatingScale, value: float) -> float:
    """`Rating.normalised`, compiled (the struct's property is interpreted Python)."""
    low, high = RATING_BOUNDS[scale]
    share = (value - low) / (high - low)
    return 1.0 - share if scale is _CES_7 else share


def _rating_extremes(rating: Rating | None) -> tuple[bool, bool]:
    """(promoter, detractor) by each scale's usual convention."""
    if rating is None:
        return False, False
    value, scale = rating.value, rating.scale
    if scale is _NPS_10:
        return value >= 9, value <= 6
    if scale is _CES_7:
        return value <= 2, value >= 5
    return value >= 5, value <= 2  # csat_5, stars_5


def assess(event: Touchpoint, wow_margin: float = 1.0) -> Assessment:
    """Gap, level and quality of one touchpoint.

    failed: a gap below -1 (promise broken beyond tolerance), a failure outcome, a complaint,
    or a detractor rating. exceeded: no failure and a gap above `wow_margin` or a promoter
    rating. met: anything else that can be judged.
    """
    rated, outcome, sentiment = event.rating, event.outcome, event.sentiment
    gaps = tuple([expectation_gap(e) for e in event.expectations])
    worst: float | None = None
    miss = 0.0
    for g in gaps:
        worst = g.units if worst is None else min(worst, g.units)
        miss = max(miss, miss_size(g))
    promoter, detractor = _rating_extremes(rated)
    rating = _normalised(rated.scale, rated.value) if rated else None

    parts: list[float] = []
    if worst is not None:
        parts.append(math.tanh(worst / 2.0))
    if rating is not None:
        parts.append(2.0 * rating - 1.0)
    if outcome is not None:
        parts.append(_OUTCOME_QUALITY[outcome])
    if sentiment is not None:
        parts.append(sentiment)
    complaint = event.kind is COMPLAINT
    if complaint:
        parts.append(-1.0)
    quality = max(-1.0, min(1.0, sum(parts) / len(parts))) if parts else None
    if quality is not None and worst is not None and worst < -1.0:
        quality = min(quality, -(0.5 + 0.5 * miss_strength(miss)))  # losses weigh more

    if quality is None:
        level = LEVEL_NONE
    elif (worst is not None and worst < -1.0) or outcome is _FAILURE or complaint or detractor:
        level = LEVEL_FAILED
    elif (worst is not None and worst > wow_margin) or promoter:
        level = LEVEL_EXCEEDED
    else:
        level = LEVEL_MET
    return Assessment(gaps, worst, miss, level, quality, rating, promoter, detractor)
