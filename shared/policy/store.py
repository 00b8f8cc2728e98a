"""Where policies are kept: the PolicyStore port, and an in-memory store for tests.

Every stored policy carries an ETag. ``update`` and ``delete`` may pass the ETag they read; if the
policy changed since, they fail with PolicyConflictError instead of overwriting someone else's change
(optimistic concurrency). Stores validate a policy before writing it, so nothing invalid is stored.
The Azure Table storage adapter is :class:`shared.policy.table_store.AzureTablePolicyStore`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Protocol

from shared.core.errors import PolicyConflictError, PolicyExistsError, PolicyNotFoundError
from shared.policy.document import policy_from_dict, policy_to_dict
from shared.policy.model import Policy

__all__ = ["InMemoryPolicyStore", "PolicyStore", "StoredPolicy"]


@dataclass(frozen=True)
class StoredPolicy:
    policy: Policy
    etag: str
    """Opaque; pass it back to update() or delete()."""


class PolicyStore(Protocol):
    def create(self, policy: Policy) -> StoredPolicy:
        """Store a new policy; PolicyExistsError if its id is taken, PolicyValidationError if invalid."""
        ...

    def update(self, policy: Policy, *, etag: str) -> StoredPolicy:
        """Replace the policy with ``policy.id`` if it still has ``etag``; else PolicyConflictError
        (re-read and retry). PolicyNotFoundError if there is none."""
        ...

    def get(self, policy_id: str) -> StoredPolicy:
        """PolicyNotFoundError if there is none."""
        ...

    def list(self) -> list[StoredPolicy]:
        """Every policy, by id."""
        ...

    def delete(self, policy_id: str, *, etag: str | None = None) -> None:
        """Delete a policy (only if it still has ``etag``, when given). PolicyNotFoundError if there is none."""
        ...


class InMemoryPolicyStore:
    """The PolicyStore contract in a dict: documents are stored as JSON-shaped copies, like a real store."""

    def __init__(self) -> None:
        self._documents: dict[str, tuple[dict[str, Any], str]] = {}
        self._versions = itertools.count(1)

    def create(self, policy: Policy) -> StoredPolicy:
        document = _checked(policy)
        if policy.id in self._documents:
            raise PolicyExistsError(policy.id)
        return self._put(policy.id, document)

    def update(self, policy: Policy, *, etag: str) -> StoredPolicy:
        document = _checked(policy)
        current = self._documents.get(policy.id)
        if current is None:
            raise PolicyNotFoundError(policy.id)
        if current[1] != etag:
            raise PolicyConflictError(policy.id)
        return self._put(policy.id, document)

    def get(self, policy_id: str) -> StoredPolicy:
        current = self._documents.get(policy_id)
        if current is None:
            raise PolicyNotFoundError(policy_id)
        return StoredPolicy(policy_from_dict(current[0]), current[1])

    def list(self) -> list[StoredPolicy]:
        return [self.get(policy_id) for policy_id in sorted(self._documents)]

    def delete(self, policy_id: str, *, etag: str | None = None) -> None:
        current = self._documents.get(policy_id)
        if current is None:
            raise PolicyNotFoundError(policy_id)
        if etag is not None and current[1] != etag:
            raise PolicyConflictError(policy_id)
        del self._documents[policy_id]

    def _put(self, policy_id: str, document: dict[str, Any]) -> StoredPolicy:
        etag = f'W/"{next(self._versions)}"'
        self._documents[policy_id] = (document, etag)
        return StoredPolicy(policy_from_dict(document), etag)


def _checked(policy: Policy) -> dict[str, Any]:
    """The policy's document, after the same validation a document from outside gets."""
    document = policy_to_dict(policy)
    policy_from_dict(document)
    return document


_: type[PolicyStore] = InMemoryPolicyStore
