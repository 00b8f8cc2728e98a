"""Keys and authenticated encryption for the repository (format in docs/format.md).

A repository has one random 32-byte master key. Two subkeys are derived from it with
HKDF-SHA256: the *data key* (AES-256-GCM for every stored byte) and the *id key* (HMAC-SHA256
that names blocks, so block ids reveal nothing about content to someone without the key).
Key slots wrap the master key with a key-encryption key derived from a passphrase by scrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = [
    "NONCE_SIZE",
    "TAG_SIZE",
    "DecryptionFailed",
    "MasterKey",
    "ScryptParams",
    "derive_kek",
    "new_master_key",
]

NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32


class DecryptionFailed(Exception):
    """Authentication failed: wrong key, or the bytes were altered. Callers map it to a domain error."""


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost. 2**15 * 8 * 128 B = 32 MiB of memory, ~0.1 s: the interactive-login tier."""

    n: int = 2**15
    r: int = 8
    p: int = 1


def derive_kek(passphrase: bytes, salt: bytes, params: ScryptParams) -> bytes:
    return Scrypt(salt=salt, length=KEY_SIZE, n=params.n, r=params.r, p=params.p).derive(passphrase)


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(master)


class MasterKey:
    """The repository's master key and the ciphers derived from it. Thread-safe."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_SIZE:
            raise ValueError("master key must be 32 bytes")
        self.secret = secret
        self._aead = AESGCM(_hkdf(secret, b"bulwark data key v1"))
        self._id_key = _hkdf(secret, b"bulwark block id v1")

    def block_id(self, data: bytes | memoryview) -> bytes:
        """The keyed id of a block's plaintext (HMAC-SHA256, 32 bytes)."""
        return hmac.digest(self._id_key, data, hashlib.sha256)

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytearray:
        """nonce || ciphertext || tag. Nonces are random 96-bit values (see docs/format.md).

        Encrypts straight into one buffer: concatenating a nonce to a 1 MiB ciphertext would
        copy every block once more.
        """
        nonce = os.urandom(NONCE_SIZE)
        out = bytearray(NONCE_SIZE + len(plaintext) + TAG_SIZE)
        out[:NONCE_SIZE] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad, memoryview(out)[NONCE_SIZE:])
        return out

    def open(self, sealed: bytes | memoryview, aad: bytes) -> bytes:
        view = memoryview(sealed)
        if len(view) < NONCE_SIZE + TAG_SIZE:
            raise DecryptionFailed("sealed object is shorter than nonce and tag")
        try:
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], aad)
        except InvalidTag as exc:
            raise DecryptionFailed("authentication tag does not match") from exc


def new_master_key() -> MasterKey:
    return MasterKey(os.urandom(KEY_SIZE))


def wrap_key(kek: bytes, secret: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt the master secret under a key-encryption key; returns (nonce, wrapped)."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce, AESGCM(kek).encrypt(nonce, secret, aad)


def unwrap_key(kek: bytes, nonce: bytes, wrapped: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(nonce, wrapped, aad)
    except InvalidTag as exc:
        raise DecryptionFailed("key slot does not open with this secret") from exc
