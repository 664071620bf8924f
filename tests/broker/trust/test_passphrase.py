"""Where a passphrase comes from (variable, private file, prompt) and what a new one must be."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import KeystoreError
from broker.trust.passphrase import check_strength, passphrase_from_env

STRONG = "correct horse battery staple, unguessed"


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_from_the_variable_or_a_private_file(tmp_path: Path) -> None:
    assert passphrase_from_env({"JCU_KEY_PASSPHRASE": "abc"}) == b"abc"
    f = _private(tmp_path / "pw", "from-file\n")
    assert passphrase_from_env({"JCU_KEY_PASSPHRASE_FILE": str(f)}) == b"from-file"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    f = _private(tmp_path / "pw", "secret words here")
    f.chmod(mode)
    with pytest.raises(KeystoreError) as caught:
        passphrase_from_env({"JCU_KEY_PASSPHRASE_FILE": str(f)})
    assert f"chmod 600 {f}" in str(caught.value)
    assert "secret words" not in str(caught.value)


def test_missing_passphrase_names_both_variables_and_the_prompt() -> None:
    with pytest.raises(KeystoreError) as caught:
        passphrase_from_env({}, interactive=False)
    message = str(caught.value)
    assert "JCU_KEY_PASSPHRASE" in message and "JCU_KEY_PASSPHRASE_FILE" in message
    assert "terminal" in message


def test_unreadable_or_empty_passphrase_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read"):
        passphrase_from_env({"JCU_KEY_PASSPHRASE_FILE": str(tmp_path / "none")})
    empty = _private(tmp_path / "empty", "")
    with pytest.raises(KeystoreError, match="empty"):
        passphrase_from_env({"JCU_KEY_PASSPHRASE_FILE": str(empty)})


def test_a_terminal_is_asked_and_a_new_passphrase_twice() -> None:
    answers = iter([STRONG, STRONG])
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return next(answers)

    got = passphrase_from_env({}, new=True, prompt=prompt, interactive=True, purpose="X")
    assert got == STRONG.encode()
    assert len(asked) == 2 and all("X" in a for a in asked)
    assert passphrase_from_env({}, prompt=lambda _: "old one", interactive=True) == b"old one"


def test_two_different_answers_make_nothing() -> None:
    answers = iter([STRONG, STRONG + "!"])
    with pytest.raises(KeystoreError, match="differ"):
        passphrase_from_env({}, new=True, prompt=lambda _: next(answers), interactive=True)


@pytest.mark.parametrize(
    ("weak", "why"),
    [("tiny", "too short"), ("passwordpassword", "too weak"), ("qwertyuiopasdf", "too weak")],
)
def test_a_weak_new_passphrase_is_refused_with_the_reason(weak: str, why: str) -> None:
    with pytest.raises(KeystoreError, match=why) as caught:
        check_strength(weak.encode())
    assert weak not in str(caught.value)
    with pytest.raises(KeystoreError, match=why):
        passphrase_from_env({"JCU_KEY_PASSPHRASE": weak}, new=True)
    # an existing keystore is opened with whatever it was made with
    assert passphrase_from_env({"JCU_KEY_PASSPHRASE": weak}) == weak.encode()


def test_a_strong_passphrase_passes() -> None:
    check_strength(STRONG.encode())
    check_strength(b"test-only passphrase, not a secret")
