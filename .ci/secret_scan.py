#!/usr/bin/env python3
"""Fails when a secret the test suite was shown is in anything the suite left behind.

The suite runs with `KEYWARD_TEST_KEEP=DIR` and leaves there every test database as it was
dropped (`sqlite/`: the SQLite file and its write-ahead log; `postgres/`: a `pg_dump`), the
logs of the servers it ran (`logs/`), and the secrets its tests were shown (`secrets/`: API
keys, client secrets, access tokens, session tokens, passwords). This scan looks through
every file but `secrets/` for

- the shapes of the secrets Keyward issues: an API key or a client secret
  (`{prefix}_{live|test|cs}_{base62}`) and a signed access token (a JWT), whether or not
  the tests recorded it;
- each recorded secret, whole, and the signature of each recorded access token.

It prints where a secret was found by its first characters only, never whole, and fails
when it finds one, or when there is nothing to scan (the suite did not keep its files).
Before scanning it checks that it finds a secret of each kind planted in a sample.

    .ci/secret_scan.py DIR
"""

import re
import sys
from pathlib import Path

# An API key (38 characters after the marker: 32 random, 6 of checksum) or a client secret
# (40 + 6), with the deployment prefix of 2-8 lowercase letters or digits.
SHAPES = {
    "API key": re.compile(rb"(?<![0-9A-Za-z])[a-z0-9]{2,8}_(?:live|test)_[0-9A-Za-z]{38}(?![0-9A-Za-z])"),
    "client secret": re.compile(rb"(?<![0-9A-Za-z])[a-z0-9]{2,8}_cs_[0-9A-Za-z]{46}(?![0-9A-Za-z])"),
    "access token": re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"),
}
# A stretch of text that may hold a recorded secret: what `find_recorded` compares.
TOKEN = re.compile(rb"[A-Za-z0-9_.-]{16,}")


def recorded_secrets(directory: Path) -> tuple[set[bytes], list[bytes]]:
    """The recorded secrets: those made of token characters (compared as whole tokens,
    with each access token's signature too), and the others (passwords with spaces, say),
    looked for as substrings."""
    tokens, others = set(), []
    for file in sorted((directory / "secrets").glob("*.txt")):
        for line in file.read_bytes().splitlines():
            secret = line.strip()
            if not secret:
                continue
            if re.fullmatch(rb"[A-Za-z0-9_.-]+", secret):
                tokens.add(secret)
                if secret.count(b".") == 2:
                    # An access token: its signature is the part no other text shares.
                    tokens.add(secret.rsplit(b".", 1)[1])
            else:
                others.append(secret)
    return tokens, sorted(set(others))


def find_recorded(data: bytes, tokens: set[bytes], others: list[bytes]) -> list[bytes]:
    """The recorded secrets `data` holds: as a stretch of token characters of its own, or
    as one of the `.`-separated parts of one (an access token's signature)."""
    found = []
    for candidate in TOKEN.findall(data):
        if candidate in tokens:
            found.append(candidate)
        if b"." in candidate:
            found += [part for part in candidate.split(b".") if part in tokens]
    found += [secret for secret in others if secret in data]
    return found


def find_shapes(data: bytes) -> list[tuple[str, bytes]]:
    """The issued-secret shapes `data` holds."""
    return [(kind, m.group(0)) for kind, shape in SHAPES.items() for m in shape.finditer(data)]


def shown(secret: bytes) -> str:
    """A secret as the report shows it: its first characters."""
    return secret[:12].decode("ascii", "replace") + "…"


def self_check(tokens: set[bytes], others: list[bytes]) -> None:
    """Plants secrets of each kind in binary noise and checks that the scan finds them."""
    noise = bytes(range(256)) * 4
    planted = {
        "API key": b"kw_live_" + b"A1b2C3d4" * 4 + b"Zz9Yy8",
        "client secret": b"kw_cs_" + b"A1b2C3d4" * 5 + b"Zz9Yy8",
        "access token": b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0." + b"s1gn4tur3" * 4,
    }
    for kind, secret in planted.items():
        kinds = [k for k, _ in find_shapes(noise + b'"' + secret + b'"' + noise)]
        assert kind in kinds, f"the scan misses a planted {kind}"
    examples = sorted(tokens, key=len)[-3:] + others[:1]
    for secret in examples:
        for haystack in (noise + secret + noise, noise + b"x=" + secret + b";" + noise):
            assert secret in find_recorded(haystack, tokens, others), (
                f"the scan misses the recorded secret {shown(secret)}"
            )


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    directory = Path(sys.argv[1])
    tokens, others = recorded_secrets(directory)
    folders = {name: sorted(p for p in (directory / name).rglob("*") if p.is_file())
               for name in ("sqlite", "postgres", "logs")}
    counts = ", ".join(f"{len(files)} in {name}/" for name, files in folders.items())
    print(f"{len(tokens) + len(others)} recorded secrets; files: {counts}")
    if not tokens or any(not files for files in folders.values()):
        print("nothing to scan in one of them: did the suite run with KEYWARD_TEST_KEEP?",
              file=sys.stderr)
        return 1
    self_check(tokens, others)

    leaks = 0
    scanned = 0
    for files in folders.values():
        for file in files:
            data = file.read_bytes()
            scanned += len(data)
            hits = [(kind, secret) for kind, secret in find_shapes(data)]
            hits += [("recorded secret", secret) for secret in find_recorded(data, tokens, others)]
            for kind, secret in sorted(set(hits)):
                print(f"LEAK {file.relative_to(directory)}: {kind} {shown(secret)}")
                leaks += 1
    print(f"scanned {scanned / 1e6:.1f} MB: {leaks} leaks")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
