#!/usr/bin/env python3
"""Stores COUNT usable API keys in a Keyward SQLite database, for the benchmarks that must
fill the verification cache and not only the store's index: each key is made as Keyward
makes one (`kw_live_`, 32 random base62 characters, the CRC32 checksum in 6), stored as
its lookup digest (SHA-256) and salted hash (SHA-256 over a 16-byte salt and the key),
with `dns:read` and the deployment's default rate limit. The keys are written to
KEYS_OUT, one a line, for the wrk scripts to send.

    benches/fill_keys.py DATABASE COUNT KEYS_OUT
"""

import hashlib
import os
import sqlite3
import sys
import zlib

BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Bytes below 248 map to base62 characters (248 = 4 × 62, so every character is equally
# likely); the others are dropped, as Keyward's own generator drops them.
TO_BASE62 = bytes(BASE62[b % 62] if b < 248 else 0 for b in range(256))
DROPPED = bytes(range(248, 256))
BODY_LEN = 32
# Crockford base32 in lowercase: the alphabet of the ids' 26-character suffix.
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def credential_id(i: int) -> str:
    """A well-formed credential id whose suffix encodes `i` (sorting before any id made
    from a clock)."""
    return "api_key_" + "".join(ID_ALPHABET[(i >> (5 * (25 - k))) & 31] for k in range(26))


def checksum(text: bytes) -> bytes:
    """The 6 base62 characters of the CRC32 of `text`, most significant first."""
    value = zlib.crc32(text)
    digits = bytearray(b"0" * 6)
    for i in range(5, -1, -1):
        digits[i] = BASE62[value % 62]
        value //= 62
    return bytes(digits)


def new_key() -> bytes:
    body = b""
    while len(body) < BODY_LEN:
        body += os.urandom(48).translate(TO_BASE62, DROPPED)
    text = b"kw_live_" + body[:BODY_LEN]
    return text + checksum(text)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    database, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    db = sqlite3.connect(database)
    (organization,) = db.execute("SELECT id FROM organizations LIMIT 1").fetchone()
    credentials, secrets, keys = [], [], []
    for i in range(1, count + 1):
        key = new_key()
        cid = credential_id(i)
        salt = os.urandom(16)
        credentials.append((cid, organization, f"filler {i}", key[-4:].decode()))
        secrets.append((hashlib.sha256(key).digest(), cid, salt, hashlib.sha256(salt + key).digest()))
        keys.append(key)
    with db:
        db.executemany(
            """INSERT INTO credentials (id, organization_id, environment, name, description,
                 permissions, role, ip_allowlist, rate_limit_override, not_before, expires_at,
                 metadata, owner_id, status, prefix, hint, created_at, created_by, updated_at,
                 revoked_at, last_used_at, last_used_ip, version)
               VALUES (?, ?, 'live', ?, NULL, '["dns:read"]', NULL, '[]', NULL, NULL, NULL,
                 '{}', NULL, 'active', 'kw_live_', ?, 0, 'bench', 0, NULL, NULL, NULL, 1)""",
            credentials,
        )
        db.executemany(
            """INSERT INTO credential_secrets (lookup_digest, credential_id, kind, salt,
                 salted_hash, created_at, expires_at)
               VALUES (?, ?, 'api_key', ?, ?, 0, NULL)""",
            secrets,
        )
    db.close()
    with open(out, "wb") as file:
        file.write(b"\n".join(keys) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
