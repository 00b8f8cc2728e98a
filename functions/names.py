"""Every orchestrator and activity name, in one place (triggers, orchestrators and tests use these)."""

from __future__ import annotations

__all__ = [
    "APPLY_SNAPSHOT_RETENTION",
    "DISCOVER_VMS",
    "POLICY_SESSION",
    "POLL_BACKUP_JOBS",
    "RECORD_RESTORE_POINTS",
    "RECORD_SESSION",
    "SNAPSHOT_DISK",
    "START_BACKUP_JOB",
    "STOP_BACKUP_JOBS",
    "VM_BACKUP",
]

# Orchestrators
POLICY_SESSION = "policy_session_orchestrator"
VM_BACKUP = "vm_backup_orchestrator"

# Activities
DISCOVER_VMS = "discover_vms"
SNAPSHOT_DISK = "snapshot_disk"
START_BACKUP_JOB = "start_backup_job"
POLL_BACKUP_JOBS = "poll_backup_jobs"
STOP_BACKUP_JOBS = "stop_backup_jobs"
RECORD_RESTORE_POINTS = "record_restore_points"
APPLY_SNAPSHOT_RETENTION = "apply_snapshot_retention"
RECORD_SESSION = "record_session"
