"""Control records: what the worker itself puts on the touchpoints topic (clock ticks,
forget requests), and the forget marker it passes on to the output topics.

Wire formats, so subscribers of the output topics can recognise a marker too.
"""

from __future__ import annotations

from datetime import datetime

import orjson

CLOCK_KEY = b"__clock__"
FORGET_KEY = b"__forget__"
FORGET_PREFIX = b'{"forget"'


def forget_marker(customer_id: str, requested_at: datetime) -> bytes:
    return orjson.dumps({"forget": customer_id, "requested_at": requested_at.isoformat()})


def parse_marker(raw: bytes) -> tuple[str, datetime]:
    data = orjson.loads(raw)
    return str(data["forget"]), datetime.fromisoformat(data["requested_at"])
