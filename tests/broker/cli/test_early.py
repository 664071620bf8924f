"""`jcu` starts the node's scrypt before loading a verb that opens its keys, and the verb
takes that keystore only when it is the node's own (no Kafka; a weak keystore)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest

from broker.cli._early import OPENS_KEYS, unlock_early, verb_of
from broker.cli._node import _early_keystore
from broker.errors import KeystoreError
from broker.trust.keystore import Keystore
from broker.trust.passphrase import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV


@pytest.mark.parametrize(
    ("args", "verb"),
    [
        (["publish", "--stix", "x.json"], "publish"),
        (["--log-level", "INFO", "publish"], "publish"),
        (["--log-format=json", "subscribe", "--once"], "subscribe"),
        (["--log-format", "json", "--log-level=DEBUG", "soc", "watch"], "soc"),
        (["--help"], None),
        (["--version"], None),
        ([], None),
        (["--log-level"], None),
    ],
)
def test_the_verb_is_read_past_the_groups_own_options(args: list[str], verb: str | None) -> None:
    assert verb_of(args) == verb


def _home(tmp_path: Path) -> dict[str, str]:
    return {"JCU_HOME": str(tmp_path / "home"), PASSPHRASE_ENV: "correct horse battery staple"}


def test_a_verb_that_opens_keys_gets_the_nodes_keystore_unlocking(tmp_path: Path) -> None:
    keystore = unlock_early(["publish", "--csv", "x.csv"], _home(tmp_path))
    assert isinstance(keystore, Keystore)
    assert keystore.directory == tmp_path / "home" / "keys"


@pytest.mark.parametrize(
    "args",
    [["audit", "verify"], ["--help"], ["publish", "--help"], ["subscribe", "-h"], ["kafka", "up"]],
)
def test_other_verbs_and_help_start_nothing(tmp_path: Path, args: list[str]) -> None:
    assert unlock_early(args, _home(tmp_path)) is None


def test_without_a_passphrase_in_the_environment_nothing_starts(tmp_path: Path) -> None:
    # The verb asks at its prompt, in its turn, as without this.
    assert unlock_early(["publish"], {"JCU_HOME": str(tmp_path)}) is None


def test_a_passphrase_file_others_may_read_is_left_for_the_verb_to_refuse(tmp_path: Path) -> None:
    loose = tmp_path / "passphrase"
    loose.write_text("correct horse battery staple")
    loose.chmod(0o644)
    env = {"JCU_HOME": str(tmp_path), PASSPHRASE_FILE_ENV: str(loose)}
    assert unlock_early(["publish"], env) is None


def test_what_goes_wrong_is_said_when_the_verb_opens_a_key(tmp_path: Path) -> None:
    """The early thread's failure (here: a keystore below today's scrypt cost) is raised
    where it was without it, at the first key opened."""
    env = _home(tmp_path)
    weak = Keystore(tmp_path / "home" / "keys", env[PASSPHRASE_ENV].encode(), scrypt_n=2**10,
                    min_scrypt_n=2**10)  # fmt: skip
    kid, _ = weak.generate_signing_key("soc-fr")
    keystore = unlock_early(["publish"], env)
    assert keystore is not None
    with pytest.raises(KeystoreError, match="below the minimum"):
        keystore.signing_key("soc-fr", kid)


def test_the_node_takes_the_early_keystore_only_when_it_is_its_own(tmp_path: Path) -> None:
    early = Keystore(tmp_path / "home" / "keys", b"correct horse battery staple")
    own: Any = SimpleNamespace(keystore_dir=tmp_path / "home" / "keys")
    other: Any = SimpleNamespace(keystore_dir=tmp_path / "elsewhere" / "keys")
    with click.Context(click.Command("publish"), obj=early):
        assert _early_keystore(own) is early
        assert _early_keystore(other) is None
    with click.Context(click.Command("publish"), obj=None):
        assert _early_keystore(own) is None
    assert _early_keystore(own) is None  # no click context at all (a library caller)


def test_the_verbs_that_unlock_early_are_verbs() -> None:
    from broker.cli import _VERBS

    assert set(OPENS_KEYS) <= set(_VERBS)
