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

# SQL (BACPAC) backup: orchestrator and activities. Its worker jobs are polled and stopped with
# POLL_BACKUP_JOBS / STOP_BACKUP_JOBS, like the VM slice's.
SQL_BACKUP = "sql_backup_orchestrator"
DISCOVER_SQL_DATABASES = "discover_sql_databases"
SQL_PREFLIGHT = "sql_preflight"
SQL_COPY_TO_STAGING = "sql_copy_to_staging"
SQL_EXPORT_BACPAC = "sql_export_bacpac"
SQL_POLL_EXPORT = "sql_poll_export"
START_BACPAC_JOB = "start_bacpac_job"
RECORD_BACPAC_POINT = "record_bacpac_point"
SQL_CLEANUP = "sql_cleanup"

__all__ += [
    "DISCOVER_SQL_DATABASES",
    "RECORD_BACPAC_POINT",
    "SQL_BACKUP",
    "SQL_CLEANUP",
    "SQL_COPY_TO_STAGING",
    "SQL_EXPORT_BACPAC",
    "SQL_POLL_EXPORT",
    "SQL_PREFLIGHT",
    "START_BACPAC_JOB",
]

# Image-level repository retention after an image-level session: its worker job (kind
# repository-maintenance) is polled with POLL_BACKUP_JOBS, like a backup's.
PLAN_IMAGE_RETENTION = "plan_image_retention"
START_MAINTENANCE_JOB = "start_maintenance_job"
RECORD_FORGOTTEN_POINTS = "record_forgotten_points"

__all__ += ["PLAN_IMAGE_RETENTION", "RECORD_FORGOTTEN_POINTS", "START_MAINTENANCE_JOB"]

# VM and disk restore: orchestrator and activities. Its worker jobs are polled with POLL_BACKUP_JOBS
# and stopped with STOP_BACKUP_JOBS (the launcher and job-status table are the same).
RESTORE_VM = "restore_vm_orchestrator"
CREATE_RESTORE_DISK = "create_restore_disk"
START_RESTORE_JOB = "start_restore_job"
CREATE_RESTORED_VM = "create_restored_vm"
DELETE_RESTORE_DISKS = "delete_restore_disks"

__all__ += ["CREATE_RESTORED_VM", "CREATE_RESTORE_DISK", "DELETE_RESTORE_DISKS", "RESTORE_VM", "START_RESTORE_JOB"]

# SQL restore: orchestrator and activities. Its worker jobs (kind bacpac-restore) are polled and
# stopped with POLL_BACKUP_JOBS / STOP_BACKUP_JOBS.
SQL_RESTORE = "sql_restore_orchestrator"
SQL_RESTORE_VALIDATE = "sql_restore_validate"
START_SQL_RESTORE_JOB = "start_sql_restore_job"
SQL_RESTORE_IMPORT = "sql_restore_import"
SQL_RESTORE_POLL_IMPORT = "sql_restore_poll_import"
SQL_RESTORE_SWAP = "sql_restore_swap"
SQL_RESTORE_CLEANUP = "sql_restore_cleanup"

__all__ += [
    "SQL_RESTORE",
    "SQL_RESTORE_CLEANUP",
    "SQL_RESTORE_IMPORT",
    "SQL_RESTORE_POLL_IMPORT",
    "SQL_RESTORE_SWAP",
    "SQL_RESTORE_VALIDATE",
    "START_SQL_RESTORE_JOB",
]
