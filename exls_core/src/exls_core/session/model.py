"""The stored session: tokens plus what is needed to use them. Its repr never shows a token."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SESSION_FORMAT = 1
DEFAULT_LIFETIME = 3600.0  # when a provider omits expires_in (RFC 6749 5.1 lets it)


@dataclass(frozen=True, repr=False)
class Session:
    issuer: str
    client_id: str
    access_token: str
    expires_at: float  # seconds since the epoch
    refresh_token: str | None
    id_token: str | None
    scopes: tuple[str, ...]
    flow: str
    subject: str
    email: str | None
    logged_in_at: float

    @property
    def display_name(self) -> str:
        return self.email or self.subject

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at - now <= seconds

    def with_tokens(
        self,
        *,
        access_token: str,
        expires_at: float,
        refresh_token: str | None,
        id_token: str | None,
        email: str | None,
    ) -> Session:
        return replace(
            self,
            access_token=access_token,
            expires_at=expires_at,
            refresh_token=refresh_token,
            id_token=id_token,
            email=email,
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {"format": SESSION_FORMAT, **asdict(self)}
        data["scopes"] = list(self.scopes)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> Session:
        """Parse a stored session; ValueError when it is not one."""
        try:
            data = json.loads(text)
            if data["format"] != SESSION_FORMAT:
                raise ValueError("unknown session format")
            # Unknown keys are ignored: a newer exls may have added some.
            values = {f.name: data[f.name] for f in fields(cls)}
            values["scopes"] = tuple(values["scopes"])
            session = cls(**values)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError("not a session") from exc
        texts = (session.issuer, session.client_id, session.access_token, session.flow)
        if not all(isinstance(t, str) and t for t in texts) or not isinstance(
            session.expires_at, int | float
        ):
            raise ValueError("not a session")
        return session

    def __repr__(self) -> str:
        return (
            f"Session(issuer={self.issuer!r}, subject={self.subject!r}, "
            f"expires_at={self.expires_at!r}, flow={self.flow!r})"
        )
