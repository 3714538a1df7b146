"""API keys for the worker's HTTP endpoints, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any


def key_allowed(presented: str | None, keys: list[str]) -> bool:
    """No keys configured = open (the web server binds 127.0.0.1 by default)."""
    if not keys:
        return True
    if not presented:
        return False
    matched = False
    for key in keys:  # compare against every key: timing says nothing about which matched
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def presented_key(headers: Any) -> str | None:
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip()
    return headers.get("X-API-Key")
