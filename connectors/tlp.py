"""TLP 2.0 levels and how outside formats spell them (STIX marking definitions, MISP tags).

Every connector maps markings through here so that "strictest wins" means the
same thing on the SOC side, the ISAC side and in case messages. TLP 1.0 WHITE
is TLP 2.0 CLEAR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.errors import ConfigError
from broker.vocabulary import TLP_LEVELS, tlp_avro_symbol, tlp_level

#: TLP 2.0 levels, least to most restrictive (the broker's vocabulary).
LEVELS: tuple[str, ...] = TLP_LEVELS
_RANK = {level: rank for rank, level in enumerate(LEVELS)}

#: The STIX extension definition that carries TLP 2.0 marking definitions.
TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

#: Fixed ids of the STIX TLP 1.0 marking definitions (STIX 2.0 and 2.1 share them).
STIX_TLP1_IDS: Mapping[str, str] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "CLEAR",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "GREEN",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "AMBER",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "RED",
}

#: Fixed ids of the STIX 2.1 TLP 2.0 marking definitions (the OASIS TLP 2.0 extension).
STIX_TLP2_IDS: Mapping[str, str] = {
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "CLEAR",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "GREEN",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "AMBER",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "AMBER+STRICT",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "RED",
}
_TLP2_ID_OF = {level: mid for mid, level in STIX_TLP2_IDS.items()}


def normalise(value: str) -> str:
    """'tlp:amber+strict', 'TLP:WHITE', 'amber_strict' -> the TLP 2.0 level name.

    Raises ConfigError for anything that is not a TLP level.
    """
    if not isinstance(value, str):
        raise ConfigError(f"not a TLP level: {value!r}; use one of {', '.join(LEVELS)}")
    level = tlp_level(value)
    if level is None:
        raise ConfigError(f"not a TLP level: {value!r}; use one of {', '.join(LEVELS)}")
    return level


def strictest(levels: Iterable[str | None]) -> str | None:
    """The most restrictive of `levels` (None entries ignored); None if there is none."""
    found = [normalise(level) for level in levels if level is not None]
    return max(found, key=_RANK.__getitem__) if found else None


def rank(level: str) -> int:
    """0 for CLEAR up to 4 for RED."""
    return _RANK[normalise(level)]


def avro_symbol(level: str) -> str:
    """The Labels.tlp enum symbol: AMBER+STRICT is spelled AMBER_STRICT in Avro."""
    return tlp_avro_symbol(normalise(level))


def from_misp_tag(tag: str) -> str | None:
    """The level of a MISP `tlp:` taxonomy tag, or None if the tag is not one."""
    name = tag.strip()
    if not name.lower().startswith("tlp:"):
        return None
    try:
        return normalise(name)
    except ConfigError:
        return None


def misp_tag(level: str) -> str:
    """The MISP tag for a level: 'tlp:clear', 'tlp:amber+strict'..."""
    return "tlp:" + normalise(level).lower()


def from_stix_marking(marking_id: str, definitions: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The TLP level a STIX marking reference stands for, or None (e.g. a statement).

    Knows the fixed TLP 1.0 and 2.0 ids, and reads marking-definition objects
    carried in the bundle: STIX 2.0/2.1 `definition_type: tlp` and the TLP 2.0
    property extension.
    """
    level = STIX_TLP2_IDS.get(marking_id) or STIX_TLP1_IDS.get(marking_id)
    if level is not None:
        return level
    definition = definitions.get(marking_id)
    if not isinstance(definition, Mapping):
        return None
    body = definition.get("definition")
    if definition.get("definition_type") == "tlp" and isinstance(body, Mapping):
        tlp = body.get("tlp")
        if isinstance(tlp, str):
            try:
                return normalise(tlp)
            except ConfigError:
                return None
    extensions = definition.get("extensions")
    extension = extensions.get(TLP2_EXTENSION_ID) if isinstance(extensions, Mapping) else None
    tlp2 = extension.get("tlp_2_0") if isinstance(extension, Mapping) else None
    if isinstance(tlp2, str):
        try:
            return normalise(tlp2)
        except ConfigError:
            return None
    return None


def stix_marking_id(level: str) -> str:
    """The STIX 2.1 TLP 2.0 marking-definition id for a level."""
    return _TLP2_ID_OF[normalise(level)]


def stix_marking_definition(level: str) -> dict[str, Any]:
    """The OASIS TLP 2.0 marking-definition object for a level, to ship inside a bundle."""
    name = normalise(level)
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": _TLP2_ID_OF[name],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{name}",
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": name.lower()}
        },
    }
