"""Splitting a stored value into keyring-sized chunks, and the pointer that commits them.

Windows Credential Locker refuses secrets over 2560 bytes and stores them as UTF-16, so a
value may hold at most 1280 UTF-16 code units. The session is ASCII-only JSON (non-ASCII is
escaped), so one character is one code unit: 1000 characters is 2000 bytes, well under the
limit even if a backend adds a terminator or some framing of its own.

The pointer names the slot holding the chunks and carries their count, total length and
SHA-256, so a torn, truncated or mixed set of chunks is detected instead of being parsed.

It may also carry a small ``hot`` record (what ``exls auth token`` needs, see
:class:`exls_core.session.model.HotRecord`) when that fits: then a valid token costs one
keyring read. The pointer is at most POINTER_MAX characters (2500 bytes as UTF-16, under the
2560-byte limit even with a terminator; the store retries the commit without the hot record
should a backend refuse it) and ends with ``sum``, a checksum of its own text, so a damaged
pointer is detected even when no chunk is read. Readers ignore a hot record they cannot read
(the chunks decide), so changing what it means takes a new key, not a new shape under ``hot``.
A pointer without ``sum`` is damaged (no released exls wrote one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

CHUNK_SIZE = 1000
POINTER_MAX = 1250  # characters; only the optional hot record can make a pointer this large
SUM_LENGTH = 32  # hex digits of SHA-256 in the pointer's own checksum (corruption, not attacks)
MAX_CHUNKS = 64  # 64 KB of tokens; far beyond any real session, and bounds every probe
SLOTS = ("a", "b")
POINTER_FORMAT = 1


class ChunkError(ValueError):
    """The stored chunks or pointer are not what the pointer promised."""


@dataclass(frozen=True)
class Pointer:
    slot: str
    generation: str  # changes on every store, so readers notice a concurrent commit
    chunks: int
    length: int
    sha256: str
    # What `exls auth token` needs (an access token!); None when it did not fit. Not in repr.
    hot: dict[str, Any] | None = field(default=None, repr=False)

    def encode(self) -> str:
        fields: dict[str, Any] = {
            "format": POINTER_FORMAT,
            "slot": self.slot,
            "gen": self.generation,
            "chunks": self.chunks,
            "length": self.length,
            "sha256": self.sha256,
        }
        if self.hot is not None:
            fields["hot"] = self.hot
        body = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
        return body[:-1] + _sum_suffix(_pointer_sum(body))

    @classmethod
    def decode(cls, raw: str) -> Pointer:
        try:
            data = json.loads(raw)
            hot = data.get("hot")
            pointer = cls(
                slot=data["slot"],
                generation=data["gen"],
                chunks=data["chunks"],
                length=data["length"],
                sha256=data["sha256"],
                hot=hot if isinstance(hot, dict) else None,  # else: not ours to read
            )
            valid = (
                data["format"] == POINTER_FORMAT
                and pointer.slot in SLOTS
                and isinstance(pointer.generation, str)
                and type(pointer.chunks) is int
                and 1 <= pointer.chunks <= MAX_CHUNKS
                and type(pointer.length) is int
                and isinstance(pointer.sha256, str)
                and _sum_matches(raw, data["sum"])
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            valid = False
        if not valid:
            raise ChunkError("unreadable pointer")
        return pointer

    def without_hot(self) -> Pointer:
        return Pointer(self.slot, self.generation, self.chunks, self.length, self.sha256)


def _pointer_sum(body: str) -> str:
    return digest(body)[:SUM_LENGTH]


def _sum_suffix(value: str) -> str:
    return f',"sum":"{value}"}}'


def _sum_matches(raw: str, value: object) -> bool:
    """The sum is the last member and covers the exact text before it (no re-encoding)."""
    if not isinstance(value, str) or len(value) != SUM_LENGTH:
        return False
    suffix = _sum_suffix(value)
    return raw.endswith(suffix) and _pointer_sum(raw[: -len(suffix)] + "}") == value


def other_slot(slot: str) -> str:
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


def chunk_name(slot: str, index: int) -> str:
    return f"session.{slot}.{index}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split(text: str, size: int = CHUNK_SIZE) -> list[str]:
    """Cut text into pieces of at most size characters (at least one piece)."""
    if not text.isascii():
        raise ChunkError("only ASCII text is chunked (its UTF-16 size must be predictable)")
    pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    if len(pieces) > MAX_CHUNKS:
        raise ChunkError(f"the session is too large ({len(text)} characters)")
    return pieces


def make_pointer(
    slot: str, text: str, pieces: list[str], hot: dict[str, Any] | None = None
) -> Pointer:
    """The pointer committing pieces; it carries hot only when it then fits POINTER_MAX."""
    import secrets

    pointer = Pointer(slot, secrets.token_hex(8), len(pieces), len(text), digest(text), hot)
    if hot is not None and len(pointer.encode()) > POINTER_MAX:
        pointer = pointer.without_hot()
    return pointer


def join(pointer: Pointer, pieces: list[str | None]) -> str:
    """The original text, or ChunkError when a piece is missing, short, long or altered."""
    if len(pieces) != pointer.chunks or any(p is None for p in pieces):
        raise ChunkError("missing chunk")
    text = "".join(p for p in pieces if p is not None)
    if len(text) != pointer.length or digest(text) != pointer.sha256:
        raise ChunkError("chunks do not match their checksum")
    return text
