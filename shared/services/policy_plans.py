"""The Policies port over ``shared.policy``: stored policies as the plans, slots and snapshot
retention a backup session uses.

* scope: VMs are listed per resource group named in the scope (or across the subscription when
  the scope names subscriptions), plus the VMs it names; ``scope_includes`` then decides each VM
  (tags, exclusions, kinds);
* encryption: a ``file`` secret stays a file reference; a ``key_vault_secret`` names a secret of
  the app's Key Vault (``BULWARK_KEY_VAULT``);
* schedule: ``policy_slots`` over ``(after, until]``, instance ids from ``slot_id``; a slot of the
  image-backup schedule is an image-level session;
* snapshot retention: ``select_snapshots_to_delete`` (each disk's ``snapshots.keep`` newest, plus
  the base of its last image-level backup).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence

from shared.azure.model import VmSelection
from shared.core.clock import format_time
from shared.core.errors import UsageError
from shared.policy.azure_ids import ResourceKind, resource_kind
from shared.policy.model import Policy, WorkerPlacement
from shared.policy.model import SecretRef as PolicySecretRef
from shared.policy.retention import DiskSnapshot, select_snapshots_to_delete
from shared.policy.scope import scope_includes
from shared.policy.slots import policy_slots, slot_id
from shared.policy.store import PolicyStore

from .job_spec import RepositoryRef, SecretRef
from .plan import BackupPlan, DueSession, Policies, SnapshotRef

__all__ = ["PolicyStorePolicies", "plan_of"]

DEFAULT_SNAPSHOTS_TO_KEEP = 7


class PolicyStorePolicies(Policies):
    def __init__(self, store: PolicyStore, *, subscription_id: str, key_vault: str | None = None) -> None:
        self._store = store
        self._subscription = subscription_id
        self._key_vault = key_vault

    def get_plan(self, policy_id: str) -> BackupPlan:
        return plan_of(self._store.get(policy_id).policy, subscription_id=self._subscription, key_vault=self._key_vault)

    def due_sessions(self, after: dt.datetime, until: dt.datetime) -> list[DueSession]:
        due: list[DueSession] = []
        for stored in self._store.list():
            policy = stored.policy
            for slot in policy_slots(policy, after, until):
                due.append(DueSession(slot_id(policy.id, slot.at), policy.id, format_time(slot.at), slot.image_backup))
        return due

    def snapshots_to_delete(
        self, policy_id: str, snapshots: Sequence[SnapshotRef], now: dt.datetime, protected: Collection[str]
    ) -> list[str]:
        policy = self._store.get(policy_id).policy
        chain = [DiskSnapshot(s.snapshot_id, s.disk_id, s.created) for s in snapshots]
        return list(select_snapshots_to_delete(chain, policy, now, protected).to_delete)


def plan_of(policy: Policy, *, subscription_id: str, key_vault: str | None = None) -> BackupPlan:
    scope = policy.scope
    mine = f"/subscriptions/{subscription_id}/".lower()
    if scope.subscriptions:
        selection = VmSelection()  # the whole subscription; scope_includes keeps the right VMs
    else:
        groups = tuple(sorted({_group_name(g) for g in scope.resource_groups if g.lower().startswith(mine)}))
        vms = tuple(r for r in scope.resources if r.lower().startswith(mine) and resource_kind(r) is ResourceKind.VM)
        selection = VmSelection(resource_groups=groups, vm_ids=vms)

    def includes(vm_id: str, tags: Mapping[str, str]) -> bool:
        return scope_includes(scope, vm_id, tags).included

    return BackupPlan(
        policy_id=policy.id,
        selection=selection,
        includes=includes,
        repository=RepositoryRef(policy.repository.location, _secret(policy.encryption.passphrase, key_vault)),
        repository_region=policy.repository.region,
        worker_placement="source" if policy.workers.placement is WorkerPlacement.SOURCE_REGION else "repository",
        image_level=policy.image_backup.enabled,
        snapshots_to_keep=policy.snapshots.keep if policy.snapshots else DEFAULT_SNAPSHOTS_TO_KEEP,
        concurrency=policy.concurrency.resources_in_flight,
        workers_in_flight=policy.concurrency.workers_in_flight,
        image_retention=policy.image_backup.retention if policy.image_backup.enabled else None,
    )


def _group_name(group_id: str) -> str:
    """``/subscriptions/<s>/resourceGroups/<name>`` -> ``<name>``."""
    return group_id.strip("/").split("/")[3]


def _secret(reference: PolicySecretRef, key_vault: str | None) -> SecretRef:
    if reference.file:
        return SecretRef("file", path=reference.file)
    if reference.key_vault_secret:
        if not key_vault:
            raise UsageError(
                f"the policy names the Key Vault secret '{reference.key_vault_secret}' but the app has no Key Vault",
                hint="set BULWARK_KEY_VAULT to the vault's name (the deployment does), or use a secret file locally",
            )
        return SecretRef("keyvault", vault=key_vault, name=reference.key_vault_secret)
    raise UsageError("the policy's encryption.passphrase names no secret", hint="give key_vault_secret or file")
