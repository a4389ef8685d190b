"""Turning a spec's value-set references into the codes the mapper matches on.

The loader expands every reference once, at load time, so that facts, extraction and the bulk
reader keep working on plain ``system|code`` strings and cannot tell a bound feature from a listed
one. What was bound stays on the spec (canonical urls), for the terminology table, the profiler
and a site's extensions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from fhir_mappers.valuesets.registry import ValueSetError, resolve


def bind_codes(codes: tuple[str, ...], ref: Any) -> tuple[tuple[str, ...], str | None]:
    """The value set's codes followed by the listed ones (no duplicates), and its canonical url."""
    if ref is None:
        return codes, None
    if not isinstance(ref, str) or not ref:
        raise ValueSetError("value_set must name a bundled value set (name or canonical url)")
    vs = resolve(ref)
    return tuple(dict.fromkeys((*vs.keys, *codes))), vs.url


def is_value_set_key(key: str) -> bool:
    """A value_map key without ``|`` names a value set; with it, it is one ``system|code``."""
    return "|" not in key


def expand_value_map(raw: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """``system|code -> number`` for every listed or bound code, and ``url -> number`` per set.

    One code may not mean two numbers: a code listed in two value sets (or in a set and on its
    own) with different numbers is refused, because which one applied would depend on order.
    """
    codes: dict[str, float] = {}
    origin: dict[str, str] = {}
    sets: dict[str, float] = {}
    for key, number in raw.items():
        members: Iterable[str]
        if is_value_set_key(key):
            vs = resolve(key)
            sets[vs.url] = number
            members, source = vs.keys, vs.name
        else:
            members, source = (key,), key
        for member in members:
            if member in codes and codes[member] != number:
                raise ValueSetError(
                    f"value_map: {member} means {codes[member]:g} ({origin[member]}) "
                    f"and {number:g} ({source})"
                )
            codes[member], origin[member] = number, source
    return codes, sets


def expansion_digest(urls: Iterable[str]) -> dict[str, list[str]]:
    """What each bound value set expands to, for the spec hash: a changed value set is a changed
    spec, so a model trained on the old expansion is refused like one trained on an old spec."""
    return {url: sorted(resolve(url).keys) for url in sorted(set(urls))}


def content_hash(doc: dict[str, Any], bound: Iterable[str]) -> str:
    """Over the parsed spec and, when it binds value sets, what they expand to: editing a bundled
    value set changes what the model sees, so it changes the hash the manifest checks."""
    urls = set(bound)
    content: Any = doc if not urls else {"spec": doc, "value_sets": expansion_digest(urls)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
