"""One validator for every URL setting: scheme, host, port, characters, and parts refused.

`check_url` accepts only URLs that an HTTP client can always send a request to
(for http(s) schemes) or that a database driver parses (for `postgresql://`), so a
bad value fails at install naming its variable instead of failing on a request.
It is deliberately stricter than RFC 3986: ASCII host names only (IDNA names go in
their `xn--` form), no zone ids, no whitespace or control characters anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

from .errors import LumidError

__all__ = [
    "HTTP_SCHEMES",
    "LOOPBACK_HOSTS",
    "MAX_URL_LENGTH",
    "POSTGRES_SCHEMES",
    "UrlError",
    "UrlPartRefused",
    "check_url",
    "host_of",
    "is_cleartext_remote",
    "is_loopback_host",
    "redact_url",
]

HTTP_SCHEMES: Final = frozenset({"http", "https"})
POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres"})
MAX_URL_LENGTH: Final = 2048

LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts an `http://` URL that carries a credential may name (the host's own rule)."""

_UNRESERVED: Final = r"A-Za-z0-9._~\-"
_SUB_DELIMS: Final = "!$&'()*+,;="
_PCT: Final = "%[0-9A-Fa-f]{2}"
_PATH: Final = re.compile(rf"(?:[{_UNRESERVED}{re.escape(_SUB_DELIMS)}:@/]|{_PCT})*")
_QUERY_RE: Final = re.compile(rf"(?:[{_UNRESERVED}{re.escape(_SUB_DELIMS)}:@/?]|{_PCT})*")
_USERINFO: Final = re.compile(rf"(?:[{_UNRESERVED}{re.escape(_SUB_DELIMS)}:]|{_PCT})*")
_LABEL: Final = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_IPV4_LIKE: Final = re.compile(r"[0-9.]+")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_REDACT_USERINFO: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_REDACT_QUERY: Final = re.compile(r"(?P<mark>[?#])\S*")


class UrlError(LumidError, ValueError):
    """The URL is not acceptable; the message says why (never echoing credentials)."""


class UrlPartRefused(UrlError):
    """The URL is well formed but has a part its setting refuses.

    The part is credentials, a query or a fragment: the caller may say where that
    part belongs instead.
    """


def _check_host(host: str) -> str:
    """Validate a host (bracketed IPv6 literal, IPv4 or DNS name); return it bare."""
    if not host:
        raise UrlError("has no host")
    if host.startswith("["):
        if not host.endswith("]"):
            raise UrlError("has an unterminated IPv6 literal ('[' without ']')")
        inner = host[1:-1]
        if "%" in inner:
            raise UrlError("has an IPv6 zone id, which is not supported")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise UrlError("has an invalid IPv6 address") from None
        return inner.lower()
    if "[" in host or "]" in host:
        raise UrlError("has a misplaced '[' or ']' in its host")
    if _IPV4_LIKE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise UrlError("has an invalid IPv4 address") from None
        return host
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise UrlError(
            "has an invalid host name (ASCII letters, digits, '-' and '_' in dot-separated "
            "labels of at most 63; write an international name in its xn-- form)"
        )
    return host.lower()


def _split_netloc(netloc: str) -> tuple[str | None, str, str | None]:
    """(userinfo, host, port) of an authority; port None when absent."""
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        userinfo_opt: str | None = None
    else:
        userinfo_opt = userinfo
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return userinfo_opt, hostport, None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if not rest:
            return userinfo_opt, host, None
        if not rest.startswith(":"):
            raise UrlError("has characters after its IPv6 literal")
        return userinfo_opt, host, rest[1:]
    host, colon, port = hostport.partition(":")
    return userinfo_opt, host, port if colon else None


def check_url(
    value: str,
    *,
    schemes: Collection[str] = HTTP_SCHEMES,
    credentials: bool = False,
    query: bool = False,
    keep_trailing_slash: bool = False,
) -> str:
    """Return `value`, stripped, once it is an acceptable URL; raise `UrlError` if not.

    Acceptable: one of `schemes`, a valid host and port, and only RFC 3986
    characters. Surrounding blanks are stripped, and trailing slashes unless
    `keep_trailing_slash`. The `UrlError` says what is wrong.

    `credentials` allows a `user:password@` part, `query` a `?query`; a `#fragment`
    is never allowed (a client never sends it). The error never repeats the value.
    """
    if not isinstance(value, str):
        raise UrlError("must be a string")
    url = value.strip()
    allowed = " or ".join(f"{s}://" for s in sorted(schemes))
    if not url:
        raise UrlError(f"must be a {allowed} URL, not empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlError(f"is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise UrlError("must not contain whitespace or control characters")
    if not url.isascii():
        raise UrlError("must be ASCII (percent-encode the path; xn-- for host names)")
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        raise UrlError(f"must be a {allowed} URL")
    try:
        parts = urlsplit(url)
    except ValueError:
        if "[" in url:
            raise UrlError("has an unterminated IPv6 literal ('[' without ']')") from None
        raise UrlError("is not a valid URL") from None
    if "#" in url:
        raise UrlPartRefused("must have no #fragment")
    if "?" in url and not query:
        raise UrlPartRefused("must have no ?query")
    userinfo, host, port = _split_netloc(parts.netloc)
    if userinfo is not None:
        if not credentials:
            raise UrlPartRefused("must not embed credentials (user:password@)")
        if not _USERINFO.fullmatch(userinfo):
            raise UrlError("has invalid characters in its credentials (percent-encode them)")
    _check_host(host)
    if port is not None and (not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535):
        raise UrlError("has an invalid port (a number from 1 to 65535)")
    if not _PATH.fullmatch(parts.path):
        raise UrlError("has characters in its path that must be percent-encoded")
    if parts.query and not _QUERY_RE.fullmatch(parts.query):
        raise UrlError("has characters in its query that must be percent-encoded")
    return url if keep_trailing_slash else url.rstrip("/")


def host_of(url: str) -> str:
    """The bare host of a URL `check_url` accepted (IPv6 without brackets, lower case)."""
    _userinfo, host, _port = _split_netloc(urlsplit(url).netloc)
    return _check_host(host)


def is_loopback_host(host: str) -> bool:
    """Whether `host` (bare, as `host_of` returns it) is this machine's loopback."""
    return host.lower() in LOOPBACK_HOSTS


def is_cleartext_remote(url: str) -> bool:
    """Whether a URL `check_url` accepted would send a credential unencrypted off-host.

    True for `http://` to anything but a loopback host.
    """
    return urlsplit(url).scheme.lower() == "http" and not is_loopback_host(host_of(url))


def redact_url(text: str) -> str:
    """`text` with every URL's `user:password@` part, query and fragment hidden.

    `https://user:pass@host/p?key=k#f` becomes `https://***@host/p?***`: URLs are
    printed and logged, credentials never, and a query or fragment may hold a key.
    It works on any text (an invalid value, a URL inside a message), never raises.
    """
    return _REDACT_QUERY.sub(r"\g<mark>***", _REDACT_USERINFO.sub(r"\g<scheme>***@", text))
