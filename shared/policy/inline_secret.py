"""Find secrets pasted into a document where only references belong.

Policies name secrets (a Key Vault secret, or a file in local mode); they never hold one. Every
string in the raw document, known field or not, is checked before anything else reads it, and a
finding is reported by path and by *kind* only: the value is never repeated in the message.

What counts as a secret: ``key=value`` pairs whose key names a credential (``password=``,
``AccountKey=``, ``sig=``, ``SharedAccessSignature=`` …), PEM private keys, JSON Web Tokens, and
long high-entropy base64 or hex blobs (account keys, SAS signatures, raw keys). ARM ids and paths
are tested segment by segment, so a long camel-case VM name is not mistaken for a key.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from shared.core.errors import FieldProblem
from shared.policy.codec import join_path

__all__ = ["FIX", "find_inline_secrets"]

FIX = (
    'store the secret in Key Vault and reference it by name, e.g. {"key_vault_secret": "bulwark-repo-key"} '
    '(in local mode, {"file": "/etc/bulwark/secret"})'
)

_CREDENTIAL_KEY = re.compile(
    r"(?i)(?<![a-z0-9_])(password|passwd|pwd|passphrase|accountkey|sharedaccesskey|sharedaccesssignature"
    r"|sig|client_secret|clientsecret|api_?key|access_?token|secret)\s*="
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{48,}(?![0-9A-Fa-f])")
_MIN_ENTROPY = 4.3
"""Bits per character: random base64 of 40+ characters scores about 4.9, plain words about 3.5 to 4.1."""
_MAX_WORDINESS = 4.0
"""Mean length of the lowercase runs: about 1.7 in random base64 (below 3.9 in 99.99 % of 40-character
keys), above 5 in camel-case names made of words (``ProductionWebServer01WestEurope``)."""


def find_inline_secrets(document: object, path: str = "") -> list[FieldProblem]:
    """Every string in ``document`` (parsed JSON) that looks like a secret, by path."""
    problems: list[FieldProblem] = []
    _walk(document, path, problems)
    return problems


def _walk(value: object, path: str, problems: list[FieldProblem]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = join_path(path, str(key))
            kind = _secret_kind(str(key))
            if kind:
                problems.append(FieldProblem(item_path, f"the field name looks like an inline secret ({kind})", FIX))
            _walk(item, item_path, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, join_path(path, index), problems)
    elif isinstance(value, str):
        kind = _secret_kind(value)
        if kind:
            problems.append(FieldProblem(path, f"looks like an inline secret ({kind})", FIX))


def _secret_kind(text: str) -> str | None:
    match = _CREDENTIAL_KEY.search(text)
    if match:
        return f"it contains '{match.group(1)}='"
    if _PEM.search(text):
        return "a PEM private key"
    if _JWT.search(text):
        return "an access token"
    # ARM ids and paths are tested segment by segment (a key has one or two slashes, an id eight).
    pieces = text.split("/") if text.startswith("/") and text.count("/") > 3 else [text]
    for piece in pieces:
        for run in _BASE64_RUN.findall(piece):
            body = run.rstrip("=")
            if _mixed(body) and _entropy(body) >= _MIN_ENTROPY and _mean_lowercase_run(body) < _MAX_WORDINESS:
                return f"a {len(run)}-character base64 blob"
    for run in _HEX_RUN.findall(text):
        if _entropy(run) >= 3.0:
            return f"a {len(run)}-digit hex key"
    return None


def _mixed(text: str) -> bool:
    return any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)


def _mean_lowercase_run(text: str) -> float:
    runs = [len(run) for run in re.findall(r"[a-z]+", text)]
    return sum(runs) / len(runs) if runs else 0.0


def _entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())
