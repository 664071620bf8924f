"""Where a keystore passphrase comes from, and what a new one must be.

In order: `JCU_KEY_PASSPHRASE`, then the file named by `JCU_KEY_PASSPHRASE_FILE`
(refused if group or others may read it: a passphrase in a world-readable file
is a passphrase shared with every account on the host), then an interactive
prompt when a terminal is attached. A passphrase that protects new keys must
be strong: at least `MIN_LENGTH` characters and a zxcvbn score of at least
`MIN_SCORE` (zxcvbn estimates guesses from dictionaries, keyboard patterns,
dates and repeats, which a length rule alone does not see).
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from broker.errors import KeystoreError

PASSPHRASE_ENV = "JCU_KEY_PASSPHRASE"  # noqa: S105 - the variable's name
PASSPHRASE_FILE_ENV = "JCU_KEY_PASSPHRASE_FILE"  # noqa: S105 - the variable's name
MIN_LENGTH = 12
#: zxcvbn's 0-4 scale; 3 is "safely unguessable: moderate protection from an
#: offline slow-hash attack", which is what scrypt at N=2**17 is.
MIN_SCORE = 3

Prompt = Callable[[str], str]


def _from_file(path: str) -> bytes:
    p = Path(path)
    try:
        mode = p.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise KeystoreError(
                f"{PASSPHRASE_FILE_ENV}={path} may be read by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
            )
        text = p.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise KeystoreError(f"cannot read {PASSPHRASE_FILE_ENV}={path}: {exc.strerror}") from None
    if not text:
        raise KeystoreError(f"{PASSPHRASE_FILE_ENV}={path} is empty")
    return text.encode()


def passphrase_from_env(
    env: Mapping[str, str] | None = None,
    *,
    purpose: str = "the keystore",
    new: bool = False,
    prompt: Prompt | None = None,
    interactive: bool | None = None,
) -> bytes:
    """The passphrase for `purpose`, from the environment, a file, or a prompt.

    `new`: it will protect keys about to be made, so it is asked twice at a
    prompt and must pass `check_strength`. `prompt` and `interactive` exist for
    tests; by default the prompt is getpass and only used when stdin is a terminal.
    """
    e = os.environ if env is None else env
    value: bytes | None = None
    if e.get(PASSPHRASE_ENV):
        value = e[PASSPHRASE_ENV].encode()
    elif e.get(PASSPHRASE_FILE_ENV):
        value = _from_file(e[PASSPHRASE_FILE_ENV])
    else:
        ask = prompt or getpass.getpass
        tty = sys.stdin.isatty() if interactive is None else interactive
        if not tty:
            raise KeystoreError(
                f"no passphrase for {purpose}: set {PASSPHRASE_ENV}, or {PASSPHRASE_FILE_ENV} "
                "(a file only you can read), or run it at a terminal to be asked"
            )
        value = ask(f"passphrase for {purpose}: ").encode()
        if new:
            check_strength(value)
            if ask(f"the same passphrase again, for {purpose}: ").encode() != value:
                raise KeystoreError("the two passphrases differ; nothing was created")
    if new:
        check_strength(value)
    return value


def check_strength(passphrase: bytes) -> None:
    """Refuse a passphrase too weak to protect private keys; the error says why."""
    try:
        text = passphrase.decode()
    except UnicodeDecodeError:
        raise KeystoreError("the passphrase is not valid UTF-8 text") from None
    if len(text) < MIN_LENGTH:
        raise KeystoreError(
            f"the passphrase is too short ({len(text)} characters; at least {MIN_LENGTH}): "
            "several unrelated words make a strong one"
        )
    from zxcvbn import zxcvbn

    result = zxcvbn(text[:100])  # its cost grows with length; 100 characters judge enough
    if int(result["score"]) < MIN_SCORE:
        hint = result.get("feedback", {}).get("warning") or "it is easy to guess"
        raise KeystoreError(
            f"the passphrase is too weak (strength {result['score']} of 4, at least "
            f"{MIN_SCORE} needed): {hint.rstrip('.')}"
        )
