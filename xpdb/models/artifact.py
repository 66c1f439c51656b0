"""The framing of xpdb's own model artifacts: an 8-byte magic, a length-prefixed JSON header, a payload.

The PCA baseline, the transformer, and the XGBoost kinds store their artifacts this way; the
magic says which kind wrote the bytes, so loading the wrong one is a clear error.
"""

from __future__ import annotations

import json

MAGIC_LENGTH = 8


def pack(magic: bytes, header: dict, payload: bytes) -> bytes:
    """``magic`` (8 bytes) + the header's JSON length (4 bytes, little-endian) + the JSON + ``payload``."""
    if len(magic) != MAGIC_LENGTH:
        raise ValueError(f"an artifact magic has {MAGIC_LENGTH} bytes, not {len(magic)}")
    head = json.dumps(header).encode()
    return magic + len(head).to_bytes(4, "little") + head + payload


def unpack(data: bytes, magic: bytes, what: str) -> tuple[dict, bytes]:
    """(header, payload) of an artifact written by ``pack`` with ``magic``; ValueError naming ``what`` otherwise."""
    if not data.startswith(magic):
        raise ValueError(f"not an xpdb {what} artifact")
    start = MAGIC_LENGTH + 4
    size = int.from_bytes(data[MAGIC_LENGTH:start], "little")
    return json.loads(data[start:start + size]), data[start + size:]
