"""Schemathesis hooks of `.ci/schemathesis`: what keeps the run's own credential usable,
and the values whose validity the document cannot state.

The run authenticates with the bootstrap credential of a fresh server (every scope, no
expiry). Two things could take it away, both answers the document declares, and both would
leave the rest of the run answering 401 or 403:

- an operation on that credential itself (revoke, disable, rotate, or a change of its
  allowlist or scopes): its id is swapped for a well-formed id no credential has, which
  answers 404;
- an IP rule change confirmed past the lockout guard (`confirm_lockout`), which may shut
  out 127.0.0.1: the confirmation is withdrawn, so the guard answers 409 `lockout` instead;
- `POST /v1/keys/self/revoke`, which revokes the key that calls it: each call is made with
  a key of its own, made for it.

Some values are valid or not by what the server holds or by the clock, which JSON Schema
cannot say: an expiry must be in the future, a role must exist, a usage window must end
after it starts and span at most 1,500 buckets. The document describes these rules and
declares their 4xx; a request generated as valid gets such values made valid here, so that
"valid data is accepted" tests everything else. Requests generated as invalid are left as
they are, and are sent as generated.
"""

import json
import os
import urllib.request
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.core.parameters import ParameterLocation

ROOT_KEY_ID = os.environ["KEYWARD_ROOT_KEY_ID"]
ROOT_KEY = os.environ["KEYWARD_ROOT_KEY"]
BASE_URL = os.environ["KEYWARD_BASE_URL"]

# A well-formed credential id (`api_key_` and 26 base32 characters) that no credential has.
ABSENT_KEY_ID = "api_key_" + "0" * 26

# Roles every deployment has (`GET /v1/roles`); custom roles exist only once made.
BUILTIN_ROLES = {"admin", "viewer", "domain_manager", "dns_manager", "billing_manager"}

# The widest usage window of each granularity that stays within 1,500 buckets.
WINDOW = {"minute": timedelta(hours=24), "hour": timedelta(days=60), "day": timedelta(days=1_400)}


def _valid_at(case, location):
    """Whether the part of `case` at `location` was generated as valid."""
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


def _parse(value):
    """An RFC 3339 time as an aware datetime, or None when Python cannot hold it."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        return None


def _text(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _credential_times(body, now):
    """`not_before` in the past and `expires_at` in the future, kept when already so: they
    are valid against any stored expiry, which is always in the future."""
    if _parse(body.get("expires_at")) is not None:
        expires = _parse(body["expires_at"])
        if not now + timedelta(hours=1) < expires < datetime(9000, 1, 1, tzinfo=timezone.utc):
            body["expires_at"] = _text(now + timedelta(days=30))
    if _parse(body.get("not_before")) is not None:
        start = _parse(body["not_before"])
        if not datetime(1, 1, 2, tzinfo=timezone.utc) < start < now - timedelta(minutes=1):
            body["not_before"] = _text(now - timedelta(days=1))


def _usage_window(query, now):
    """A window that ends after it starts and spans at most 1,500 buckets."""
    span = WINDOW.get(query.get("granularity") or "hour")
    if span is None:
        return
    end = _parse(query.get("to"))
    if "to" in query and (end is None or end.year < 2 or end.year > 9000):
        end = now
        query["to"] = _text(end)
    if "from" in query:
        start = _parse(query["from"])
        end = end or now
        if start is None or not end - span < start < end:
            query["from"] = _text(end - timedelta(hours=1))


@schemathesis.hook
def map_case(context, case):
    if case.path_parameters.get("id") == ROOT_KEY_ID:
        case.path_parameters = {**case.path_parameters, "id": ABSENT_KEY_ID}
    if isinstance(case.body, dict) and case.body.get("confirm_lockout") is True:
        case.body = {**case.body, "confirm_lockout": False}
    if case.query and case.query.get("confirm_lockout") in (True, "true"):
        case.query = {**case.query, "confirm_lockout": "false"}

    now = datetime.now(timezone.utc)
    path = case.operation.path
    if path in ("/v1/keys", "/v1/keys/{id}") and _valid_at(case, ParameterLocation.BODY):
        if isinstance(case.body, dict):
            body = dict(case.body)
            _credential_times(body, now)
            if isinstance(body.get("role"), str) and body["role"] not in BUILTIN_ROLES:
                body["role"] = "viewer"
            case.body = body
    if path == "/v1/keys/{id}/usage" and _valid_at(case, ParameterLocation.QUERY):
        query = dict(case.query or {})
        _usage_window(query, now)
        case.query = query
    return case


@schemathesis.auth(refresh_interval=None)
class RunCredential:
    """The run's own key, and for the operation that revokes its caller a fresh key for
    each call, made with the run's key."""

    def get(self, case, context):
        if case.operation.path != "/v1/keys/self/revoke":
            return ROOT_KEY
        body = json.dumps({"name": "revokes itself"}).encode()
        headers = {"X-Api-Key": ROOT_KEY, "Content-Type": "application/json"}
        request = urllib.request.Request(f"{BASE_URL}/v1/keys", body, headers)
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)["key"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "X-Api-Key": data}
