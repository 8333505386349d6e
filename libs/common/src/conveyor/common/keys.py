"""API keys: `cvk_<lookup>_<secret>`. Only SHA-256(secret) is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "cvk"


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    lookup: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> NewKey:
    lookup = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewKey(f"{PREFIX}_{lookup}_{secret}", lookup, hash_secret(secret))


def split_key(plaintext: str) -> tuple[str, str] | None:
    """Return (lookup, secret), or None when the token is not shaped like a key."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    # Constant time, so response timing reveals nothing about the stored hash.
    return hmac.compare_digest(hash_secret(secret), stored_hash)
