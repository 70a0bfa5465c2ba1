"""Encryption at rest: AES-256-GCM of state bytes, so a stolen database file reveals no state.

Stores hold bytes only; the runtime's persister encrypts a state after encoding it and decrypts
it before decoding. The key is 32 bytes, given as a parameter or, as in upstream Spawn, as the
base64 text in the environment variable ``SPAWN_STATESTORE_KEY``.

Layout of an encrypted ``data`` column (our own format, not Spawn's Cloak vault)::

    byte 0       format version (1)
    bytes 1-12   random 96-bit GCM nonce
    bytes 13-    ciphertext followed by the 16-byte GCM tag

The associated data (authenticated, not stored) is ``b"spawn-lab/1\\0" + actor + b"\\0" +
type_url``, so a row copied onto another actor, or relabelled with another type, fails to
decrypt. The system name is deliberately *not* bound: ``fork`` copies rows verbatim into a new
system, and those rows must stay readable there.

An encrypted row is marked by the prefix :data:`ENCRYPTED_PREFIX` on its type URL (the real type
URL follows it). A system without a key that meets such a row therefore reports "encrypted, set
SPAWN_STATESTORE_KEY" instead of failing to parse ciphertext as a protobuf.

Errors never contain key material: not the key, not its base64, not its length-derived hints.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from spawn_lab.core.errors import CorruptStateError, StoreError

__all__ = ("ENCRYPTED_PREFIX", "KEY_ENV", "StateCipher", "cipher_from", "is_encrypted")

#: The environment variable upstream Spawn reads its statestore key from.
KEY_ENV: Final = "SPAWN_STATESTORE_KEY"
#: Type URLs of encrypted rows start with this; the original type URL follows.
ENCRYPTED_PREFIX: Final = "spawn-lab:aes-256-gcm:"

_VERSION: Final = 1
_NONCE: Final = 12
_TAG: Final = 16
_AAD_HEAD: Final = b"spawn-lab/1\0"


def _parse_key(key: bytes | str, source: str) -> bytes:
    if isinstance(key, str):
        try:
            raw = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise StoreError(
                f"{source} is not valid base64 (expected base64 of 32 bytes)"
            ) from None
    else:
        raw = bytes(key)
    if len(raw) != 32:
        raise StoreError(f"{source} must be 32 bytes for AES-256-GCM (base64 of 32 random bytes)")
    return raw


class StateCipher:
    """Encrypts and decrypts state bytes with one AES-256-GCM key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes | str, *, source: str = "the encryption key") -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # an optional extra
            raise StoreError(
                "encryption at rest needs the 'cryptography' package: "
                "pip install 'spawn-lab[crypto]'"
            ) from exc
        self._aead = AESGCM(_parse_key(key, source))

    @classmethod
    def from_env(cls) -> StateCipher | None:
        """A cipher from ``SPAWN_STATESTORE_KEY``, or ``None`` when it is unset or empty."""
        text = os.environ.get(KEY_ENV, "")
        return cls(text, source=KEY_ENV) if text else None

    def encrypt(self, actor: str, type_url: str, data: bytes) -> tuple[str, bytes]:
        """``(marked type URL, header + ciphertext + tag)`` for one state."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, data, _aad(actor, type_url))
        return ENCRYPTED_PREFIX + type_url, bytes((_VERSION,)) + nonce + sealed

    def decrypt(self, actor: str, revision: int, type_url: str, data: bytes) -> tuple[str, bytes]:
        """``(original type URL, plaintext)`` of an encrypted row; CorruptStateError if not ours."""
        from cryptography.exceptions import InvalidTag

        real_url = type_url.removeprefix(ENCRYPTED_PREFIX)
        where = f"stored state of actor {actor!r} (revision {revision})"
        if len(data) < 1 + _NONCE + _TAG or data[0] != _VERSION:
            version = data[0] if data else None
            raise CorruptStateError(
                f"{where} is marked encrypted but has no valid header (format version "
                f"{version!r}, {len(data)} bytes)",
                actor=actor,
            )
        try:
            plain = self._aead.decrypt(
                data[1 : 1 + _NONCE], data[1 + _NONCE :], _aad(actor, real_url)
            )
        except InvalidTag:
            raise CorruptStateError(
                f"{where} cannot be decrypted: wrong encryption key, or the row was altered or "
                "copied from another actor",
                actor=actor,
            ) from None
        return real_url, plain

    def __repr__(self) -> str:
        return "<StateCipher AES-256-GCM>"


def _aad(actor: str, type_url: str) -> bytes:
    return _AAD_HEAD + actor.encode() + b"\0" + type_url.encode()


def cipher_from(key: bytes | str | StateCipher | None) -> StateCipher | None:
    """The cipher for an ``encryption_key=`` argument: the key (or cipher) given, else the
    environment's ``SPAWN_STATESTORE_KEY``, else none (no encryption)."""
    if key is None:
        return StateCipher.from_env()
    if isinstance(key, StateCipher):
        return key
    return StateCipher(key)


def is_encrypted(type_url: str) -> bool:
    """Whether a stored row's type URL marks it as encrypted."""
    return type_url.startswith(ENCRYPTED_PREFIX)
