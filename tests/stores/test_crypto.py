"""Encryption at rest: AES-256-GCM states in a real SQLite file, through the persister."""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spawn_lab.core.clock import ManualClock
from spawn_lab.core.effects import Load, Save, Status
from spawn_lab.core.errors import CorruptStateError, StoreError
from spawn_lab.core.model import ActorId
from spawn_lab.runtime.persist import Persister
from spawn_lab.stores.crypto import ENCRYPTED_PREFIX, KEY_ENV, StateCipher, cipher_from
from spawn_lab.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(30)

Opener = Callable[..., Persister]
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SECRET = {"card": "4111 1111 1111 1111"}


def key_texts(key: bytes) -> list[str]:
    """Every way key material could leak into a message."""
    return [base64.b64encode(key).decode(), key.hex(), repr(key)[2:-1]]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'secret.db'}"


@pytest.fixture
def open_persister(db: str) -> Iterator[Opener]:
    opened: list[Persister] = []

    def make(cipher: StateCipher | None, system: str = "vault") -> Persister:
        persister = Persister(
            SQLiteStore(db), system, ManualClock(), lambda *_: None, cipher=cipher
        )
        opened.append(persister)
        return persister

    yield make
    for persister in opened:
        persister.close()


def save(persister: Persister, actor: str, revision: int, state: object) -> None:
    persister.save(
        Save(ActorId(actor, persister.system), actor, revision, state, {}, Status.ACTIVATED, True)
    )


def load(persister: Persister, actor: str) -> object:
    loaded = persister.load(Load(ActorId(actor, persister.system), actor))
    return None if loaded is None else loaded[0]


def raw_rows(db: str) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT actor, type_url, data FROM spawn_lab_snapshots").fetchall()


def test_cipher_round_trips_bytes_and_marks_the_type_url() -> None:
    cipher = StateCipher(KEY)
    url, sealed = cipher.encrypt("a", "type.googleapis.com/x.Y", b"plain")
    assert url == ENCRYPTED_PREFIX + "type.googleapis.com/x.Y"
    assert sealed[0] == 1 and len(sealed) == 1 + 12 + 5 + 16
    assert cipher.decrypt("a", 1, url, sealed) == ("type.googleapis.com/x.Y", b"plain")


def test_cipher_uses_a_fresh_nonce_for_every_encryption() -> None:
    cipher = StateCipher(KEY)
    assert cipher.encrypt("a", "t", b"same")[1] != cipher.encrypt("a", "t", b"same")[1]


def test_encrypted_state_never_reaches_the_file_in_clear(open_persister: Opener, db: str) -> None:
    """Checklist E48: the stored data is AES-GCM ciphertext; tags stay clear JSON."""
    persister = open_persister(StateCipher(KEY))
    save(persister, "wallet", 1, SECRET)
    (actor, type_url, data), *_ = raw_rows(db)
    assert actor == "wallet" and type_url.startswith(ENCRYPTED_PREFIX)
    assert b"4111" not in data
    assert load(persister, "wallet") == SECRET


def test_wrong_key_fails_naming_the_actor_without_key_material(
    open_persister: Opener, db: str
) -> None:
    save(open_persister(StateCipher(KEY)), "wallet", 1, SECRET)
    before = raw_rows(db)
    with pytest.raises(CorruptStateError, match=r"'wallet'.*wrong encryption key") as caught:
        load(open_persister(StateCipher(OTHER_KEY)), "wallet")
    assert caught.value.actor == "wallet"
    text = f"{caught.value!s} {caught.value!r} {caught.value.__cause__!r}"
    assert not any(k in text for k in key_texts(KEY) + key_texts(OTHER_KEY))
    assert raw_rows(db) == before  # nothing overwritten


def test_missing_key_says_the_row_is_encrypted_and_how_to_read_it(
    open_persister: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    save(open_persister(StateCipher(KEY)), "wallet", 1, SECRET)
    with pytest.raises(CorruptStateError, match=f"'wallet'.*encrypted; set {KEY_ENV}"):
        load(open_persister(cipher_from(None)), "wallet")


def test_row_copied_onto_another_actor_fails_to_decrypt(open_persister: Opener, db: str) -> None:
    persister = open_persister(StateCipher(KEY))
    save(persister, "alice", 1, {"balance": 1})
    save(persister, "mallory", 1, {"balance": 0})
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "UPDATE spawn_lab_snapshots SET data = "
            "(SELECT data FROM spawn_lab_snapshots WHERE actor = 'alice') WHERE actor = 'mallory'"
        )
    with pytest.raises(CorruptStateError, match="'mallory'"):
        load(open_persister(StateCipher(KEY)), "mallory")


def test_tampered_ciphertext_fails_to_decrypt(open_persister: Opener, db: str) -> None:
    save(open_persister(StateCipher(KEY)), "wallet", 1, SECRET)
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        (data,) = conn.execute("SELECT data FROM spawn_lab_snapshots").fetchone()
        flipped = data[:-1] + bytes([data[-1] ^ 1])
        conn.execute("UPDATE spawn_lab_snapshots SET data = ?", (flipped,))
    with pytest.raises(CorruptStateError, match="'wallet'"):
        load(open_persister(StateCipher(KEY)), "wallet")


def test_forked_system_reads_encrypted_rows_with_the_same_key(open_persister: Opener) -> None:
    persister = open_persister(StateCipher(KEY))
    save(persister, "wallet", 1, SECRET)
    assert persister.store.fork("vault", "vault-copy") == 1
    assert load(open_persister(StateCipher(KEY), "vault-copy"), "wallet") == SECRET


def test_plain_rows_stay_readable_after_turning_encryption_on(open_persister: Opener) -> None:
    save(open_persister(None), "old", 1, {"v": 1})
    assert load(open_persister(StateCipher(KEY)), "old") == {"v": 1}


def test_key_comes_from_the_environment_as_base64(
    open_persister: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    save(open_persister(cipher_from(None)), "wallet", 1, SECRET)
    assert load(open_persister(StateCipher(KEY)), "wallet") == SECRET


@pytest.mark.parametrize(
    "bad", [base64.b64encode(os.urandom(16)).decode(), "not base64!!", os.urandom(31)]
)
def test_invalid_key_is_refused_without_echoing_it(bad: str | bytes) -> None:
    with pytest.raises(StoreError, match="32 bytes") as caught:
        StateCipher(bad)
    text = str(caught.value)
    assert (bad if isinstance(bad, str) else base64.b64encode(bad).decode()) not in text
    assert caught.value.__cause__ is None or "base64" not in repr(caught.value.__cause__)


def test_invalid_key_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "c2hvcnQ=")
    with pytest.raises(StoreError, match=KEY_ENV):
        cipher_from(None)
