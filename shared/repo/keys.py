"""Key slots: the master key wrapped by each secret that may open the repository.

Each slot is a plaintext JSON object at ``keys/<slot id>`` (docs/format.md §Keys). Slots of kind
``passphrase`` derive the key-encryption key with scrypt; the format leaves room for other kinds
(e.g. ``azure-keyvault``, wrapping with a Key Vault key) without changing existing slots.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from shared.core.crypto import (
    DecryptionFailed,
    MasterKey,
    ScryptParams,
    derive_kek,
    unwrap_key,
    wrap_key,
)

__all__ = ["KEYS_PREFIX", "KeySlot", "new_passphrase_slot", "open_slot"]

KEYS_PREFIX = "keys/"
_SALT_SIZE = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _aad(slot_id: str) -> bytes:
    return f"bulwark-key-v1:{slot_id}".encode()


@dataclass(frozen=True)
class KeySlot:
    slot_id: str
    kind: str
    kdf: dict[str, object]
    nonce: bytes
    wrapped: bytes
    created: str

    @property
    def key_name(self) -> str:
        return KEYS_PREFIX + self.slot_id

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": "bulwark-key",
                "version": 1,
                "slot": self.slot_id,
                "kind": self.kind,
                "kdf": self.kdf,
                "nonce": _b64(self.nonce),
                "wrapped_key": _b64(self.wrapped),
                "created": self.created,
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> KeySlot:
        doc = json.loads(data)
        if doc.get("format") != "bulwark-key" or doc.get("version") != 1:
            raise ValueError("not a version-1 Bulwark key slot")
        return cls(
            slot_id=str(doc["slot"]),
            kind=str(doc["kind"]),
            kdf=dict(doc["kdf"]),
            nonce=_unb64(doc["nonce"]),
            wrapped=_unb64(doc["wrapped_key"]),
            created=str(doc["created"]),
        )


def new_passphrase_slot(
    master: MasterKey, passphrase: str, *, created: str, params: ScryptParams | None = None
) -> KeySlot:
    params = params or ScryptParams()
    slot_id = os.urandom(8).hex()
    salt = os.urandom(_SALT_SIZE)
    kek = derive_kek(passphrase.encode(), salt, params)
    nonce, wrapped = wrap_key(kek, master.secret, _aad(slot_id))
    kdf: dict[str, object] = {
        "name": "scrypt",
        "n": params.n,
        "r": params.r,
        "p": params.p,
        "salt": _b64(salt),
    }
    return KeySlot(slot_id, "passphrase", kdf, nonce, wrapped, created)


def open_slot(slot: KeySlot, passphrase: str) -> MasterKey | None:
    """The master key if ``passphrase`` opens this slot, else None."""
    if slot.kind != "passphrase" or slot.kdf.get("name") != "scrypt":
        return None
    params = ScryptParams(n=int(str(slot.kdf["n"])), r=int(str(slot.kdf["r"])), p=int(str(slot.kdf["p"])))
    kek = derive_kek(passphrase.encode(), _unb64(str(slot.kdf["salt"])), params)
    try:
        return MasterKey(unwrap_key(kek, slot.nonce, slot.wrapped, _aad(slot.slot_id)))
    except DecryptionFailed:
        return None
