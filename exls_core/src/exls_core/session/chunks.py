"""Splitting a stored value into keyring-sized chunks, and the pointer that commits them.

Windows Credential Locker refuses secrets over 2560 bytes and stores them as UTF-16, so a
value may hold at most 1280 UTF-16 code units. The session is ASCII-only JSON (non-ASCII is
escaped), so one character is one code unit: 1000 characters is 2000 bytes, well under the
limit even if a backend adds a terminator or some framing of its own.

The pointer names the slot holding the chunks and carries their count, total length and
SHA-256, so a torn, truncated or mixed set of chunks is detected instead of being parsed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

CHUNK_SIZE = 1000
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

    def encode(self) -> str:
        return json.dumps(
            {
                "format": POINTER_FORMAT,
                "slot": self.slot,
                "gen": self.generation,
                "chunks": self.chunks,
                "length": self.length,
                "sha256": self.sha256,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, raw: str) -> Pointer:
        try:
            data = json.loads(raw)
            pointer = cls(
                slot=data["slot"],
                generation=data["gen"],
                chunks=data["chunks"],
                length=data["length"],
                sha256=data["sha256"],
            )
            valid = (
                data["format"] == POINTER_FORMAT
                and pointer.slot in SLOTS
                and isinstance(pointer.generation, str)
                and type(pointer.chunks) is int
                and 1 <= pointer.chunks <= MAX_CHUNKS
                and type(pointer.length) is int
                and isinstance(pointer.sha256, str)
            )
        except (ValueError, TypeError, KeyError):
            valid = False
        if not valid:
            raise ChunkError("unreadable pointer")
        return pointer


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


def make_pointer(slot: str, text: str, pieces: list[str]) -> Pointer:
    return Pointer(slot, secrets.token_hex(8), len(pieces), len(text), digest(text))


def join(pointer: Pointer, pieces: list[str | None]) -> str:
    """The original text, or ChunkError when a piece is missing, short, long or altered."""
    if len(pieces) != pointer.chunks or any(p is None for p in pieces):
        raise ChunkError("missing chunk")
    text = "".join(p for p in pieces if p is not None)
    if len(text) != pointer.length or digest(text) != pointer.sha256:
        raise ChunkError("chunks do not match their checksum")
    return text
