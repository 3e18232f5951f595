"""Validation of secrets that travel as HTTP header values (bearers, bridge secrets).

h11 echoes an illegal header value in its exception message, which would put the
secret into retry reasons and log lines, and a non-ASCII value raises outside
httpx's errors. Such values are refused when the settings load, without repeating
them.
"""

from __future__ import annotations

from pydantic import AfterValidator, SecretStr

__all__ = ["header_secret"]


def header_secret(*, spaces: bool, sent_as: str) -> AfterValidator:
    """A pydantic validator for an optional `SecretStr` sent as a header value.

    Surrounding whitespace (a secret file's trailing newline) is dropped; what is
    left must be visible ASCII, plus inner spaces and tabs when `spaces` is true.
    `sent_as` says how it travels ("a bearer", "an HTTP header") in the error.
    """

    def allowed(c: str) -> bool:
        return "!" <= c <= "~" or (spaces and c in " \t")

    def check(value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value().strip()
        if not all(allowed(c) for c in secret):
            kind = "printable ASCII" if spaces else "visible ASCII without spaces"
            raise ValueError(f"must be {kind} (it is sent as {sent_as})")
        return SecretStr(secret)

    return AfterValidator(check)
