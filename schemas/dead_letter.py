"""Dead letters: input that could not be accepted, kept with the reason and where it came from."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints


class FieldError(BaseModel):
    """One rule a payload broke, shaped like a pydantic error so publishers can act on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loc: str = Field(description="Dotted path of the field, empty for the payload as a whole.")
    type: str = Field(description="Machine-readable error type, e.g. missing, enum, json_invalid.")
    msg: str
    input: str | None = Field(default=None, description="The offending value, shortened.")

    def describe(self) -> str:
        where = self.loc or "payload"
        shown = f" (got {self.input})" if self.input is not None else ""
        return f"{where}: {self.msg}{shown}"


class DeadLetter(BaseModel):
    """A rejected payload. `payload` keeps the raw text (shortened when it was oversized)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dead_letter_id: Annotated[str, StringConstraints(min_length=8, max_length=64)]
    received_at: AwareDatetime
    source: Annotated[str, StringConstraints(max_length=256)]
    partition: int | None = None
    offset: int | None = None
    line: int | None = None
    error_kind: str
    errors: list[FieldError]
    payload: str
    payload_bytes: int = Field(ge=0)
    truncated: bool = False

    @property
    def reason(self) -> str:
        return "; ".join(error.describe() for error in self.errors)
