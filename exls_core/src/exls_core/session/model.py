"""The stored session: tokens plus what is needed to use them. Its repr never shows a token."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

SESSION_FORMAT = 1
DEFAULT_LIFETIME = 3600.0  # when a provider omits expires_in (RFC 6749 5.1 lets it)
PERSON, WORKLOAD = "person", "workload"  # Session.kind


def expiry(now: float, expires_in: float | None) -> float:
    """When an access token expires: ``expires_in`` 0 means now, not the default hour."""
    return now + (DEFAULT_LIFETIME if expires_in is None else expires_in)


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
    audience: str | None = None  # the API the access token is for (EXLS_AUTH_AUDIENCE)
    kind: str = PERSON  # PERSON, or WORKLOAD (a CI job: subject and identity_issuer name it)
    identity_issuer: str | None = None  # a workload's own issuer (its CI platform)

    @property
    def is_workload(self) -> bool:
        return self.kind == WORKLOAD

    @property
    def display_name(self) -> str:
        if self.is_workload:
            return f"workload {self.subject}"
        return self.email or self.subject

    def expires_within(self, seconds: float, now: float) -> bool:
        return not self.expires_at - now > seconds  # a NaN expiry counts as expired

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
            # Fields with a default may be missing: a session stored by an older exls.
            values = {
                f.name: data[f.name] if f.default is MISSING else data.get(f.name, f.default)
                for f in fields(cls)
            }
            values["scopes"] = tuple(values["scopes"])
            session = cls(**values)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError("not a session") from exc
        texts = (session.issuer, session.client_id, session.access_token, session.flow)
        if (
            not all(isinstance(t, str) and t for t in texts)
            or not isinstance(session.expires_at, int | float)
            or session.kind not in (PERSON, WORKLOAD)
        ):
            raise ValueError("not a session")
        return session

    def __repr__(self) -> str:
        return (
            f"Session(issuer={self.issuer!r}, subject={self.subject!r}, "
            f"expires_at={self.expires_at!r}, flow={self.flow!r})"
        )


def _finite_number(value: object) -> bool:
    try:
        return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond float range
        return False


def binding(issuer: str, client_id: str) -> str:
    """A short digest naming the issuer and client a token belongs to (not a secret)."""
    import hashlib

    pair = json.dumps([issuer, client_id], ensure_ascii=True)
    return hashlib.sha256(pair.encode()).hexdigest()[:16]


@dataclass(frozen=True, repr=False)
class HotRecord:
    """The part of a session ``exls auth token`` needs, kept in the keyring's pointer entry.

    With it, a still-valid token costs one keyring read instead of one per chunk. It names the
    issuer and client by a digest (:func:`binding`) to leave room for long access tokens; when
    the digest does not match the settings, callers load the full session (which says which
    issuer it is for). Its repr never shows the token.
    """

    access_token: str
    expires_at: float
    binding: str

    @classmethod
    def of(cls, session: Session) -> HotRecord | None:
        """None when the session cannot have one (an expiry that is not a finite number)."""
        if not _finite_number(session.expires_at):
            return None
        return cls(
            session.access_token, session.expires_at, binding(session.issuer, session.client_id)
        )

    def is_for(self, issuer: str, client_id: str) -> bool:
        return self.binding == binding(issuer, client_id)

    def expires_within(self, seconds: float, now: float) -> bool:
        return not self.expires_at - now > seconds  # a NaN expiry counts as expired

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.access_token, "exp": self.expires_at, "for": self.binding}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HotRecord:
        """ValueError when data is not a hot record."""
        try:
            record = cls(data["at"], data["exp"], data["for"])
        except (TypeError, KeyError) as exc:
            raise ValueError("not a hot record") from exc
        if not (
            isinstance(record.access_token, str)
            and record.access_token
            and _finite_number(record.expires_at)
            and isinstance(record.binding, str)
        ):
            raise ValueError("not a hot record")
        return record

    def __repr__(self) -> str:
        return f"HotRecord(expires_at={self.expires_at!r}, binding={self.binding!r})"
