"""OpenAPI paths and schemas of VM and disk restore (``functions/triggers/http_restore.py``),
merged into the document by ``functions/triggers/openapi.py``."""

from __future__ import annotations

from typing import Any

__all__ = ["restore_paths", "restore_schemas"]

_REF = "#/components/schemas/"


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def restore_schemas() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "RestoreTarget": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {**text, "description": "the new VM's (or disk's) name; ignored when replacing"},
                "resource_group": {**text, "description": "default: the original VM's"},
                "region": {**text, "description": "default: the original VM's; snapshots restore in their region"},
                "vm_size": {**text, "description": "default: the original VM's"},
                "nic_ids": {
                    "type": "array",
                    "items": text,
                    "description": "a new VM's network interfaces (Azure needs one no other VM uses); "
                    "replacing: the original's",
                },
            },
        },
        "VmRestoreRequest": {
            "type": "object",
            "required": ["vm_id", "point_id"],
            "additionalProperties": False,
            "properties": {
                "vm_id": {**text, "description": "the VM the point belongs to (ARM id)"},
                "point_id": {**text, "description": "a catalog point of the VM: snap-... or img-..."},
                "lun": {
                    "type": ["string", "integer"],
                    "description": "disk restores: 'os' or the data disk's LUN",
                },
                "source": {
                    "enum": ["auto", "snapshot", "repository"],
                    "default": "auto",
                    "description": "snapshot: disks copied from the point's snapshots (fast, same region); "
                    "repository: written from the image-level point by a worker; auto: snapshots while they exist",
                },
                "target": {"$ref": _REF + "RestoreTarget"},
                "replace_original": {
                    "type": "boolean",
                    "default": False,
                    "description": "VM restores: delete the original VM (its disks are kept) and create the "
                    "restored one under its name; needs confirm",
                },
                "confirm": {"type": "boolean", "default": False},
            },
        },
        "VmRestoreStarted": {
            "type": "object",
            "required": ["id", "restore"],
            "properties": {
                "id": {**text, "description": "the restore's orchestration instance id"},
                "restore": {**text, "description": "GET it to follow the restore"},
                "statusQueryGetUri": {**text, "description": "the Durable status of the orchestration"},
                "plan": {
                    "type": "object",
                    "properties": {
                        "source": {"enum": ["snapshot", "repository"]},
                        "disks": {"type": "array", "items": text},
                        "vm_name": text,
                    },
                },
            },
        },
        "RestoreStatus": {
            "type": "object",
            "required": ["id", "runtime_status"],
            "properties": {
                "id": text,
                "name": {
                    **text,
                    "description": "the orchestrator: restore_vm_orchestrator or sql_restore_orchestrator",
                },
                "runtime_status": {**text, "description": "Pending, Running, Completed, Failed or Terminated"},
                "created": {"type": ["string", "null"], "format": "date-time"},
                "last_updated": {"type": ["string", "null"], "format": "date-time"},
                "custom_status": {"description": "progress: phase, disks, bytes_written"},
                "output": {
                    "description": "when done: status Succeeded or Failed, reason, vm_id, disks [{lun, disk_id}]",
                },
            },
        },
    }


def restore_paths() -> dict[str, Any]:
    common = {"401": _error("Unauthorized"), "503": _error("Unavailable")}

    def start(what: str, summary: str) -> dict[str, Any]:
        return {
            "post": {
                "operationId": f"restore{what.capitalize()}",
                "summary": summary,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": _REF + "VmRestoreRequest"}}},
                },
                "responses": {
                    "202": {
                        "description": "started; follow the Location",
                        "content": {"application/json": {"schema": {"$ref": _REF + "VmRestoreStarted"}}},
                    },
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "409": {"description": "a VM or disk of that name exists", "content": _error_content()},
                    **common,
                },
            }
        }

    return {
        "/restores/vm": start(
            "vm", "Restore a whole VM from a snapshot or image-level point (new, or replacing the original)"
        ),
        "/restores/disk": start("disk", "Restore one disk of a VM from a snapshot or image-level point"),
        "/restores/{instance_id}": {
            "parameters": [{"name": "instance_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "operationId": "getRestore",
                "summary": "A restore's progress and, when done, its result (VM, disk and SQL restores)",
                "responses": {
                    "200": {
                        "description": "the restore",
                        "content": {"application/json": {"schema": {"$ref": _REF + "RestoreStatus"}}},
                    },
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
    }


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF + "Error"}}}
