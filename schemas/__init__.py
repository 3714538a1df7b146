"""Wire models of touchstream. Depends only on pydantic, orjson and the standard library."""

from touchstream.schemas.dead_letter import DeadLetter, FieldError
from touchstream.schemas.promise import PromiseAlert
from touchstream.schemas.signal import (
    Attribution,
    MetricsSnapshot,
    Reason,
    Severity,
    Signal,
    SignalKind,
)
from touchstream.schemas.touchpoint import (
    SCHEMA_VERSION,
    Channel,
    Direction,
    Expectation,
    Kind,
    Money,
    Outcome,
    Rating,
    RatingScale,
    Tolerance,
    TouchpointEvent,
)
from touchstream.schemas.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    InputLimits,
    TouchpointRejected,
    dead_letter_for,
    parse_touchpoint,
    validate_touchpoint,
)

WIRE_MODELS = {
    "touchpoint": TouchpointEvent,
    "signal": Signal,
    "metrics_snapshot": MetricsSnapshot,
    "dead_letter": DeadLetter,
    "promise_alert": PromiseAlert,
}

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "SCHEMA_VERSION",
    "WIRE_MODELS",
    "Attribution",
    "Channel",
    "DeadLetter",
    "Direction",
    "Expectation",
    "FieldError",
    "InputLimits",
    "Kind",
    "MetricsSnapshot",
    "Money",
    "Outcome",
    "PromiseAlert",
    "Rating",
    "RatingScale",
    "Reason",
    "Severity",
    "Signal",
    "SignalKind",
    "Tolerance",
    "TouchpointEvent",
    "TouchpointRejected",
    "dead_letter_for",
    "parse_touchpoint",
    "validate_touchpoint",
]
