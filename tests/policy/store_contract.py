"""The PolicyStore contract (shared/policy/store.py) as one suite for every implementation.

Subclass :class:`PolicyStoreContract` in a ``test_*.py`` module and provide a ``store`` fixture: an
empty store.
"""

from __future__ import annotations

import dataclasses

import pytest

from shared.core.errors import (
    PolicyConflictError,
    PolicyExistsError,
    PolicyNotFoundError,
    PolicyValidationError,
)
from shared.policy.document import policy_from_dict
from shared.policy.model import Policy, SnapshotSettings
from shared.policy.store import PolicyStore
from tests.policy.documents import minimal_document, valid_document


def make(policy_id: str = "prod-vms", *, keep: int = 14) -> Policy:
    document = valid_document()
    document["id"] = policy_id
    document["snapshots"]["keep"] = keep
    return policy_from_dict(document)


class PolicyStoreContract:
    def test_create_then_get(self, store: PolicyStore) -> None:
        policy = make()
        created = store.create(policy)
        assert created.policy == policy
        assert created.etag
        got = store.get("prod-vms")
        assert got.policy == policy
        assert got.etag == created.etag

    def test_create_refuses_a_taken_id(self, store: PolicyStore) -> None:
        store.create(make())
        with pytest.raises(PolicyExistsError, match="'prod-vms' exists already") as caught:
            store.create(make(keep=3))
        assert caught.value.code == "policy_exists"
        assert store.get("prod-vms").policy.snapshots == SnapshotSettings(14)

    def test_update_with_the_current_etag(self, store: PolicyStore) -> None:
        first = store.create(make())
        second = store.update(make(keep=20), etag=first.etag)
        assert second.etag != first.etag
        assert store.get("prod-vms") == second
        assert second.policy.snapshots == SnapshotSettings(20)

    def test_update_with_a_stale_etag_is_a_conflict(self, store: PolicyStore) -> None:
        first = store.create(make())
        store.update(make(keep=20), etag=first.etag)
        with pytest.raises(PolicyConflictError, match="re-read the policy") as caught:
            store.update(make(keep=30), etag=first.etag)
        assert caught.value.policy_id == "prod-vms"
        assert store.get("prod-vms").policy.snapshots == SnapshotSettings(20)

    def test_update_of_a_missing_policy(self, store: PolicyStore) -> None:
        stale = store.create(make("other")).etag
        with pytest.raises(PolicyNotFoundError, match="No policy has the id 'prod-vms'"):
            store.update(make(), etag=stale)

    def test_get_of_a_missing_policy(self, store: PolicyStore) -> None:
        with pytest.raises(PolicyNotFoundError) as caught:
            store.get("nothing-here")
        assert caught.value.policy_id == "nothing-here"
        assert caught.value.code == "policy_not_found"

    def test_list_by_id(self, store: PolicyStore) -> None:
        assert store.list() == []
        for policy_id in ("b-policy", "a-policy", "c-policy"):
            store.create(make(policy_id))
        listed = store.list()
        assert [stored.policy.id for stored in listed] == ["a-policy", "b-policy", "c-policy"]
        assert all(stored == store.get(stored.policy.id) for stored in listed)

    def test_delete(self, store: PolicyStore) -> None:
        store.create(make())
        store.delete("prod-vms")
        with pytest.raises(PolicyNotFoundError):
            store.get("prod-vms")
        with pytest.raises(PolicyNotFoundError):
            store.delete("prod-vms")
        store.create(make())  # the id is free again

    def test_delete_with_etags(self, store: PolicyStore) -> None:
        first = store.create(make())
        second = store.update(make(keep=20), etag=first.etag)
        with pytest.raises(PolicyConflictError):
            store.delete("prod-vms", etag=first.etag)
        store.get("prod-vms")
        store.delete("prod-vms", etag=second.etag)
        assert store.list() == []

    def test_nothing_invalid_is_stored(self, store: PolicyStore) -> None:
        invalid = dataclasses.replace(make(), snapshots=SnapshotSettings(499))
        with pytest.raises(PolicyValidationError, match=r"snapshots\.keep"):
            store.create(invalid)
        assert store.list() == []
        first = store.create(make())
        with pytest.raises(PolicyValidationError):
            store.update(invalid, etag=first.etag)
        assert store.get("prod-vms") == first

    def test_minimal_policy_round_trips(self, store: PolicyStore) -> None:
        policy = policy_from_dict(minimal_document())
        store.create(policy)
        assert store.get(policy.id).policy == policy

    def test_large_policy_is_split_across_properties(self, store: PolicyStore) -> None:
        document = valid_document()
        group = document["scope"]["resource_groups"][0]
        document["scope"]["resources"] = [
            f"{group}/providers/Microsoft.Compute/virtualMachines/vm-{i:04d}-{'x' * 40}" for i in range(2000)
        ]
        document["scope"]["exclude"]["resources"] = []
        policy = policy_from_dict(document)
        store.create(policy)
        assert store.get(policy.id).policy == policy
