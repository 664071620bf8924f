"""Observables <-> STIX patterns: build a pattern for one value, read the value back out of one.

Indicator records carry both a pattern and, when the pattern tests exactly one
value for equality, that value and its STIX cyber-observable type; this module
is where both directions are decided, so SOC input and ISAC output agree.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from stix2patterns.v21.pattern import Pattern  # type: ignore[import-untyped]

#: Hash algorithm names as STIX writes them, keyed by lower-case short name.
HASH_NAMES: dict[str, str] = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha512": "SHA-512",
}
_HASH_HEX_LEN = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_HASH_BY_STIX = {v.upper(): k for k, v in HASH_NAMES.items()} | {
    "SHA1": "sha1",
    "SHA256": "sha256",
    "SHA512": "sha512",
}

_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class Observable:
    """One value of one kind: ('ipv4-addr', '10.0.0.1') or ('file', 'ab..', hash='sha256')."""

    observable_type: str
    value: str
    hash_name: str | None = None  # md5/sha1/sha256/sha512 for file hashes


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unquote(literal: str) -> str | None:
    if len(literal) < 2 or literal[0] != "'" or literal[-1] != "'":
        return None
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def to_pattern(obs: Observable) -> str:
    """The STIX 2.1 pattern that matches exactly this observable."""
    if obs.observable_type == "file":
        if obs.hash_name:
            return f"[file:hashes.{_quote(HASH_NAMES[obs.hash_name])} = {_quote(obs.value)}]"
        return f"[file:name = {_quote(obs.value)}]"
    if obs.observable_type == "windows-registry-key":
        return f"[windows-registry-key:key = {_quote(obs.value)}]"
    if obs.observable_type == "mutex":
        return f"[mutex:name = {_quote(obs.value)}]"
    if obs.observable_type == "autonomous-system":
        return f"[autonomous-system:number = {int(obs.value)}]"
    return f"[{obs.observable_type}:value = {_quote(obs.value)}]"


@dataclass(frozen=True, slots=True)
class PatternSummary:
    """What a STIX pattern tests: its object types, and the value if it is a single equality."""

    observable_types: tuple[str, ...]
    single: Observable | None


def summarise(pattern: str) -> PatternSummary:
    """Read a STIX 2.1 pattern (raises ValueError-like errors from stix2patterns if invalid)."""
    inspection = Pattern(pattern).inspect()
    comparisons = inspection.comparisons
    types = tuple(comparisons)
    single: Observable | None = None
    if len(types) == 1 and not inspection.observation_ops:
        (otype,) = types
        tests = comparisons[otype]
        if len(tests) == 1:
            path, op, literal = tests[0]
            value = _unquote(literal) if isinstance(literal, str) else None
            if op == "=" and value is not None:
                single = _single(otype, path, value)
    return PatternSummary(types, single)


def _single(otype: str, path: list[object], value: str) -> Observable | None:
    if path == ["value"]:
        return Observable(otype, value)
    if otype == "file" and len(path) == 2 and path[0] == "hashes":
        hash_name = _HASH_BY_STIX.get(str(path[1]).upper())
        return Observable("file", value, hash_name) if hash_name else None
    if otype == "file" and path == ["name"]:
        return Observable("file", value)
    if (otype, tuple(path)) in {("windows-registry-key", ("key",)), ("mutex", ("name",))}:
        return Observable(otype, value)
    return None


def check_value(obs: Observable) -> str | None:
    """Why this value is not a valid observable of its type; None when it is."""
    v = obs.value
    if not v or v != v.strip():
        return "empty value or surrounding whitespace"
    kind = obs.observable_type
    if kind in ("ipv4-addr", "ipv6-addr"):
        try:
            net = ipaddress.ip_network(v, strict=False)
        except ValueError:
            return f"not an IP address or CIDR: {v!r}"
        if (net.version == 4) != (kind == "ipv4-addr"):
            return f"{v!r} is not an {kind}"
        return None
    if kind == "domain-name":
        return None if _DOMAIN.match(v) else f"not a domain name: {v!r}"
    if kind == "url":
        return None if _URL.match(v) else f"not a URL (scheme://...): {v!r}"
    if kind == "email-addr":
        return None if _EMAIL.match(v) else f"not an e-mail address: {v!r}"
    if kind == "autonomous-system":
        return None if v.isdigit() else f"not an AS number: {v!r}"
    if kind == "mac-addr":
        return None if _MAC.match(v) else f"not a MAC address: {v!r}"
    if (
        kind == "file"
        and obs.hash_name
        and (len(v) != _HASH_HEX_LEN[obs.hash_name] or not _HEX.match(v))
    ):
        return f"not a {obs.hash_name} hex digest: {v!r}"
    return None
