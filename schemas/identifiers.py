"""Typed customer identifiers: what they are, how a value is normalised and pseudonymised.

Every channel knows a customer by its own key (a login, a loyalty card, a phone number, an
e-mail address, an order). Identifiers seen together on one touchpoint say that they belong
to one customer (streams/identity.py links them). Before they leave the publishing service,
values are normalised (the same address written two ways is one identifier) and, by default,
replaced by an HMAC of a configured secret, so no raw personal data reaches Kafka or
ClickHouse and the same value still gives the same identifier everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum
from typing import Final

MAX_IDENTIFIER_CHARS: Final = 256  # longer values are refused, not cut
PSEUDONYM_PREFIX: Final = "h1:"  # marks a value that is already an HMAC (version 1)
_PSEUDONYM = re.compile(r"h1:[0-9a-f]{32}\Z")
_SPACES = re.compile(r"\s+")


class IdentifierType(StrEnum):
    """What kind of key a value is. `external` ids carry a name (`external:<name>`)."""

    customer = "customer"  # an id a publisher already resolved (a CRM's, a shop's account)
    email = "email"
    phone = "phone"
    device = "device"
    loyalty_card = "loyalty_card"
    crm_id = "crm_id"
    order_id = "order_id"
    external = "external"


class IdentifierRefused(ValueError):
    """A value that cannot be an identifier of its type (the message says why)."""


def normalise(kind: IdentifierType, value: str, default_region: str = "") -> str:
    """The canonical spelling of `value`: e-mail trimmed and lower-cased, phone in E.164
    (a number without a country code is read in `default_region`, e.g. "DE"), other ids
    trimmed with inner spaces removed. Raises IdentifierRefused."""
    if len(value) > MAX_IDENTIFIER_CHARS:
        raise IdentifierRefused(
            f"{kind.value} is {len(value)} characters, at most {MAX_IDENTIFIER_CHARS}"
        )
    if _PSEUDONYM.match(value):
        return value  # already pseudonymised upstream: only the secret's holder could redo it
    text = value.strip()
    if kind is IdentifierType.email:
        text = text.lower()
        local, at, domain = text.partition("@")
        if not (local and at and "." in domain) or _SPACES.search(text):
            raise IdentifierRefused(f"not an e-mail address: {value!r}")
        return text
    if kind is IdentifierType.phone:
        return _e164(text, default_region)
    text = _SPACES.sub("", text)
    if not text:
        raise IdentifierRefused(f"an empty {kind.value}")
    return text


def _e164(text: str, default_region: str) -> str:
    import phonenumbers  # phonenumberslite: only when a phone number is given

    try:
        number = phonenumbers.parse(text, default_region.upper() or None)
    except phonenumbers.NumberParseException as error:
        raise IdentifierRefused(f"not a phone number: {text!r} ({error})") from None
    if not phonenumbers.is_valid_number(number):
        raise IdentifierRefused(f"not a valid phone number: {text!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def pseudonym(kind: IdentifierType, value: str, secret: bytes, name: str = "") -> str:
    """`h1:` and 32 hex digits of HMAC-SHA256(secret, type, name, normalised value). The type
    is part of the message: a card number and a CRM id that happen to be equal stay apart."""
    if _PSEUDONYM.match(value):
        return value
    message = f"{kind.value}\x1f{name}\x1f{value}".encode()
    return PSEUDONYM_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def is_pseudonym(value: str) -> bool:
    return _PSEUDONYM.match(value) is not None
