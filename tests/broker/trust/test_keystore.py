"""Private keys at rest: encrypted PKCS#8, mode 0600, scrypt of at least N=2**17."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from broker.errors import KeystoreError
from broker.trust.keystore import MIN_SCRYPT_N, Keystore, open_keystore
from broker.trust.material import key_id, load_kem_public

PW = b"correct horse battery staple"


def _ks(path: Path, pw: bytes = PW) -> Keystore:
    return Keystore(path, pw, scrypt_n=2**10, min_scrypt_n=2**10)


def test_key_files_are_encrypted_pkcs8_with_mode_0600(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    kid, _ = ks.generate_signing_key("cert-eu")
    hid, _ = ks.generate_kem_key("eda", "mlkem768x25519")
    files = sorted(tmp_path.rglob("*.pem"))
    assert {f.name for f in files} == {
        f"{kid}.ed25519.pem",
        f"{hid}.mlkem768.pem",
        f"{hid}.x25519.pem",
    }
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert f.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):  # encrypted: no loading without a password
            serialization.load_pem_private_key(f.read_bytes(), password=None)
    assert stat.S_IMODE((tmp_path / "cert-eu").stat().st_mode) == 0o700


def test_keys_load_back_in_a_new_instance(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    kid, public = ks.generate_signing_key("cert-eu")
    xid, xpub = ks.generate_kem_key("enisa", "x25519")
    hid, hpub = ks.generate_kem_key("eda", "mlkem768x25519")
    again = _ks(tmp_path)
    sk = again.signing_key("cert-eu", kid)
    assert isinstance(sk, ed25519.Ed25519PrivateKey)
    assert sk.public_key().public_bytes_raw() == public
    assert key_id("ed25519", public) == kid
    xk = again.kem_key("enisa", xid)
    assert isinstance(xk, x25519.X25519PrivateKey)
    hk = again.kem_key("eda", hid)
    assert isinstance(hk, hpke.MLKEM768X25519PrivateKey)
    # the reloaded hybrid key decrypts what its registered public key encrypts
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    ct = suite.encrypt(b"k" * 32, load_kem_public("mlkem768x25519", hpub), info=b"i")
    assert suite.decrypt(ct, hk, info=b"i") == b"k" * 32
    assert len(hpub) == 1184 + 32 and len(xpub) == 32


def test_mlkem_seed_is_standard_pkcs8_under_the_derived_password(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    hid, _ = ks.generate_kem_key("eda", "mlkem768x25519")
    pem = (tmp_path / "eda" / f"{hid}.mlkem768.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=ks._pkcs8_password(create=False))
    assert isinstance(key, mlkem.MLKEM768PrivateKey)


def test_wrong_passphrase_is_one_clear_error_without_the_secret(tmp_path: Path) -> None:
    kid, _ = _ks(tmp_path).generate_signing_key("cert-eu")
    with pytest.raises(KeystoreError) as caught:
        _ks(tmp_path, b"wrong guess").signing_key("cert-eu", kid)
    message = str(caught.value)
    assert "wrong passphrase" in message
    assert "wrong guess" not in message and PW.decode() not in message
    assert PW.decode() not in repr(_ks(tmp_path))


def test_refuses_bad_names_and_missing_keys(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    with pytest.raises(KeystoreError):
        ks.generate_signing_key("../etc")
    with pytest.raises(KeystoreError):
        ks.signing_key("cert-eu", "0123456789abcdef")
    with pytest.raises(KeystoreError, match="jcu init"):
        _ks(tmp_path / "nothing").signing_key("cert-eu", "0123456789abcdef")


def test_a_keystore_below_the_minimum_scrypt_cost_is_refused(tmp_path: Path) -> None:
    assert MIN_SCRYPT_N >= 2**17
    kid, _ = _ks(tmp_path).generate_signing_key("cert-eu")
    with pytest.raises(KeystoreError, match=r"scrypt N=1024, below the minimum"):
        Keystore(tmp_path, PW).signing_key("cert-eu", kid)
    with pytest.raises(KeystoreError, match="below the minimum"):
        Keystore(tmp_path / "new", PW, scrypt_n=2**16)


def test_a_new_keystore_uses_the_minimum_cost(tmp_path: Path) -> None:
    import json

    Keystore(tmp_path, PW).generate_signing_key("cert-eu")
    assert json.loads((tmp_path / "kdf.json").read_text())["n"] == MIN_SCRYPT_N


def test_open_keystore_takes_the_environment(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError):
        open_keystore(tmp_path, env={})
    assert open_keystore(tmp_path, env={"JCU_KEY_PASSPHRASE": "x"}).directory == tmp_path


def test_change_passphrase_re_encrypts_every_key_at_todays_cost(tmp_path: Path) -> None:
    import json

    from broker.trust.keystore import change_passphrase

    old = _ks(tmp_path / "keys")
    kid, public = old.generate_signing_key("cert-eu")
    hid, _ = old.generate_kem_key("cert-eu", "mlkem768x25519")
    new_words = b"a brand new and strong passphrase"
    assert change_passphrase(tmp_path / "keys", PW, new_words) == 3
    assert json.loads((tmp_path / "keys" / "kdf.json").read_text())["n"] == MIN_SCRYPT_N
    again = Keystore(tmp_path / "keys", new_words)
    assert again.signing_key("cert-eu", kid).public_key().public_bytes_raw() == public
    assert isinstance(again.kem_key("cert-eu", hid), hpke.MLKEM768X25519PrivateKey)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        Keystore(tmp_path / "keys", PW).signing_key("cert-eu", kid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys"]  # nothing old left behind
    for f in (tmp_path / "keys").rglob("*.pem"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


class _CountingScrypt:
    """`Scrypt` that counts its derivations (scrypt's cost is the security parameter: it
    must run once per keystore and process, never more, never with lower cost)."""

    calls: ClassVar[list[int]] = []

    def __init__(self, **params: int | bytes) -> None:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        assert isinstance(params["n"], int)
        _CountingScrypt.calls.append(params["n"])
        self._kdf = Scrypt(**params)  # type: ignore[arg-type]

    def derive(self, data: bytes) -> bytes:
        return self._kdf.derive(data)


def test_unlocking_ahead_derives_once_and_opens_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    maker = _ks(tmp_path)
    kid, public = maker.generate_signing_key("cert-eu")
    xid, _ = maker.generate_kem_key("cert-eu", "x25519")
    monkeypatch.setattr("broker.trust.keystore.Scrypt", _CountingScrypt)
    _CountingScrypt.calls = []
    ks = _ks(tmp_path)
    ks.unlock_ahead()
    ks.unlock_ahead()  # a second call starts nothing more
    assert ks.signing_key("cert-eu", kid).public_key().public_bytes_raw() == public
    assert isinstance(ks.kem_key("cert-eu", xid), x25519.X25519PrivateKey)
    assert _CountingScrypt.calls == [2**10]  # the keystore's own cost, once


def test_unlocking_ahead_with_the_wrong_passphrase_fails_at_the_first_key(tmp_path: Path) -> None:
    kid, _ = _ks(tmp_path).generate_signing_key("cert-eu")
    wrong = _ks(tmp_path, b"wrong guess")
    wrong.unlock_ahead()
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        wrong.signing_key("cert-eu", kid)


def test_a_damaged_kdf_file_found_ahead_is_raised_where_a_key_is_opened(tmp_path: Path) -> None:
    kid, _ = _ks(tmp_path).generate_signing_key("cert-eu")
    (tmp_path / "kdf.json").write_text("{not json")
    ks = _ks(tmp_path)
    ks.unlock_ahead()  # no error from the thread: it is kept for the first key
    with pytest.raises(KeystoreError, match="damaged"):
        ks.signing_key("cert-eu", kid)


def test_unlocking_ahead_a_keystore_not_made_yet_does_nothing(tmp_path: Path) -> None:
    ks = _ks(tmp_path / "none")
    ks.unlock_ahead()
    with pytest.raises(KeystoreError, match="no key file"):
        ks.signing_key("cert-eu", "0123456789abcdef")


def test_a_key_when_needed_is_opened_at_its_first_use_and_signs_as_the_key(
    tmp_path: Path,
) -> None:
    kid, public = _ks(tmp_path).generate_signing_key("cert-eu")
    ks = _ks(tmp_path)
    ks.unlock_ahead()
    key = ks.signing_key_when_needed("cert-eu", kid)
    assert ("cert-eu", kid) not in ks._cache  # not opened yet
    assert "PRIVATE" not in repr(key)
    signature = key.sign(b"checkpoint")
    assert ("cert-eu", kid) in ks._cache
    ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, b"checkpoint")
    assert key.public_key().public_bytes_raw() == public
    assert ks.signing_key_when_needed("cert-eu", kid) is ks.signing_key("cert-eu", kid)


def test_a_key_when_needed_with_the_wrong_passphrase_fails_where_it_is_used(
    tmp_path: Path,
) -> None:
    kid, _ = _ks(tmp_path).generate_signing_key("cert-eu")
    key = _ks(tmp_path, b"wrong guess").signing_key_when_needed("cert-eu", kid)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        key.sign(b"checkpoint")
