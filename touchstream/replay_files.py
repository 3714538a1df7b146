"""What `touchstream replay` writes to its --out directory, as JSON lines and counts.

A replay in one process (`ReplayResult`) and one in several (`touchstream.replay_parallel`)
give the same `ReplayFiles`, byte for byte: the lines are encoded by the functions below
wherever they are made.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import BaseModel

from touchstream.replay import ReplayResult
from touchstream.streams.offers import OVER_CAPACITY, Offer
from touchstream.streams.resolve import merge_json

NAMES = ("signals", "customers", "dead_letters", "offers", "merges")


def json_line(model: BaseModel) -> bytes:
    """A signal, a customer's final metrics or a dead letter, as its line."""
    return model.model_dump_json().encode()


def offer_line(offer: Offer) -> bytes:
    line = {"decision": offer.decision, "rank": offer.rank, "capacity": offer.capacity}
    return orjson.dumps({**line, "signal": offer.signal.model_dump(mode="json")})


@dataclass
class ReplayFiles:
    """The lines of each file (NAMES), and what the summary table counts."""

    signals: list[bytes] = field(default_factory=list)
    customers: list[bytes] = field(default_factory=list)  # final metrics, by customer id
    dead_letters: list[bytes] = field(default_factory=list)
    offers: list[bytes] = field(default_factory=list)  # every wow offer, decided
    merges: list[bytes] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # signals published, by kind
    over_capacity: int = 0

    @classmethod
    def of(cls, result: ReplayResult) -> ReplayFiles:
        return cls(
            signals=[json_line(s) for s in result.signals],
            customers=[json_line(m) for m in result.final],
            dead_letters=[json_line(d) for d in result.dead_letters],
            offers=[offer_line(o) for o in result.offers],
            merges=[merge_json(m) for resolved, _ in result.identity for m in resolved.merges],
            applied=result.applied,
            duplicates=result.duplicates,
            late=result.late,
            kinds=Counter(s.kind.value for s in result.signals),
            over_capacity=sum(1 for o in result.offers if o.decision == OVER_CAPACITY),
        )

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in NAMES:
            path = out / f"{name}.jsonl"
            with path.open("wb") as handle:
                for line in getattr(self, name):
                    handle.write(line)
                    handle.write(b"\n")
            written.append(path)
        return written
