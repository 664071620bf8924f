"""The node's keystore, unlocking from the process's first moments.

scrypt at the keystore's cost (about a quarter of a second, never lowered)
takes longer than a verb takes to load its code and connect to Kafka, so it is
what `jcu publish` waits for before its first object. For the verbs that open
the node's keys, `unlock_early` starts it before the verb's code is even
imported, with the passphrase from the environment; `node_context` takes that
keystore when it is the node's own (same directory, same environment). Without
a passphrase in the environment nothing starts here: a prompt comes in its
place, when the verb opens the keystore. What goes wrong (no keystore, a bad
passphrase file) is said there too, as without this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.trust.keystore import Keystore

#: Verbs that open the node's keys at once and whose start a user waits for.
OPENS_KEYS = frozenset({"publish", "soc", "subscribe"})
#: The group's own options that take a value (what comes before the verb).
_VALUED = frozenset({"--log-format", "--log-level"})


def verb_of(args: Sequence[str]) -> str | None:
    """The verb `args` (the command line after `jcu`) runs; None for --help, --version."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            return arg
        elif arg.partition("=")[0] not in _VALUED:
            return None
    return None


def unlock_early(args: Sequence[str], env: Mapping[str, str] | None = None) -> Keystore | None:
    """The node's keystore, already unlocking, if `args` run a verb that opens its keys and
    the environment holds the passphrase; else None."""
    if verb_of(args) not in OPENS_KEYS or {"-h", "--help"} & set(args):
        return None  # nothing more is imported for the other verbs (`jcu --help` stays quick)
    from broker import config
    from broker.errors import KeystoreError
    from broker.trust.keystore import Keystore
    from broker.trust.passphrase import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, passphrase_from_env

    e = os.environ if env is None else env
    if not (e.get(PASSPHRASE_ENV) or e.get(PASSPHRASE_FILE_ENV)):
        return None
    try:
        passphrase = passphrase_from_env(e, interactive=False)
    except KeystoreError:
        return None  # said when the verb opens the keystore
    keystore = Keystore(config.keystore_dir(config.home_dir(e)), passphrase)
    keystore.unlock_ahead()
    return keystore
