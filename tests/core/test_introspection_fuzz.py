"""Fuzz lum.id's reply parser: a clean verdict or `IntrospectionError`, nothing else."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lumid_core.introspection import (
    IntrospectionError,
    Verdict,
    decode_introspection,
    parse_introspection,
)

NOW = 1_700_000_000.0

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),  # st.text() includes lone surrogates
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
# Replies shaped like lum.id's, with every field allowed to go wrong.
fields = {
    "active": st.booleans() | json_values,
    "sub": st.text() | json_values,
    "email": st.text() | json_values,
    "scopes": st.lists(st.text(), max_size=4) | json_values,
    "scope": st.text() | json_values,
    "role": st.text() | json_values,
    "exp": st.floats(NOW - 10, NOW + 10) | st.integers() | json_values,
    "reason": st.text() | json_values,
}
replies = st.fixed_dictionaries({}, optional=fields)


def _check(verdict: Verdict) -> None:
    principal = verdict.principal
    if principal is None:
        verdict.reason.encode("utf-8")
        assert verdict.reason.isprintable()
        return
    for text in (principal.principal_id, principal.principal_type, *principal.scopes):
        text.encode("utf-8")  # SQLite, logs and terminals can take it
    assert principal.principal_id
    if verdict.email is not None:
        verdict.email.encode("utf-8")
    assert verdict.exp is None or verdict.exp > NOW


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, replies))
def test_any_json_value_is_a_verdict_or_an_introspection_error(body: Any) -> None:
    try:
        parsed = parse_introspection(body, "lumid", now=NOW)
    except IntrospectionError as exc:
        str(exc).encode("utf-8")
        return
    if parsed is not None:
        principal, email, exp = parsed
        _check(Verdict(principal, email, exp))


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, replies))
def test_any_json_reply_decodes_like_the_provider_decodes_it(body: Any) -> None:
    raw = json.dumps(body).encode()  # surrogates travel as \\udXXX escapes
    try:
        verdict = decode_introspection(raw, "lumid", now=NOW)
    except IntrospectionError:
        return
    _check(verdict)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_are_a_verdict_or_an_introspection_error(raw: bytes) -> None:
    try:
        verdict = decode_introspection(raw, "lumid", now=NOW)
    except IntrospectionError:
        return
    _check(verdict)


@given(st.integers(1, 300_000), st.sampled_from([b"[", b'{"a":', b'{"active":']))
@settings(max_examples=25, deadline=None)
def test_deep_nesting_is_an_introspection_error_or_a_verdict(depth: int, opener: bytes) -> None:
    try:
        verdict = decode_introspection(opener * depth, "lumid", now=NOW)
    except IntrospectionError:
        return
    _check(verdict)


def test_an_active_reply_expired_a_second_ago_is_inactive() -> None:
    now = time.time()
    body = {"active": True, "sub": "u", "exp": now - 1}
    assert parse_introspection(body, "lumid", now=now) is None
    verdict = decode_introspection(json.dumps(body).encode(), "lumid", now=now)
    assert verdict.principal is None
    assert "expired" in verdict.reason
    assert parse_introspection({**body, "exp": now + 60}, "lumid", now=now) is not None
