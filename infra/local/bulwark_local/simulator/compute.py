"""Microsoft.Compute: virtual machines, managed disks, snapshots and disk access (SAS grants).

Shapes follow the recorded sessions (../shared/fixtures/azure-recordings) and the facts doc:
- Disk and snapshot PUT, DELETE, beginGetAccess and endGetAccess answer 202 with
  ``Azure-AsyncOperation`` and ``Location`` (``.../DiskOperations/{id}``, ``monitor=true``); the PUT
  body echoes the request with ``provisioningState: Updating``; the operation's final status carries
  ``properties.output`` (the resource, or ``{"accessSAS"}``), which the ``monitor=true`` URL returns.
- VM PUT answers 201 (create) or 200 (update) with ``provisioningState: Creating|Updating`` and only
  ``Azure-AsyncOperation`` (``.../operations/{id}?p=...``); VM actions and DELETE answer 202 with both
  headers; the final GET gives the VM.

Every managed disk and snapshot owns a page blob in the page store (``diskSizeBytes + 512`` bytes, the
last page a fixed-VHD footer). A snapshot is a copy-on-write clone of its source disk's blob.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from werkzeug.wrappers import Response

from .arm import ArmError, Context, Route, json_response, lro_headers, not_found, route
from .dataplane import MANAGED_PREFIX, SasIssuer, vhd_blob_id
from .pagestore import PageStore
from .regions import REGIONS, VM_SIZES, known_region
from .state import JsonDict, StateStore
from .vhd import FOOTER_SIZE, is_valid_footer, vhd_footer

NAMESPACE = "Microsoft.Compute"
GIB = 1 << 30
MIB = 1 << 20
MAX_SAS_PER_FAMILY = 5
MAX_SAS_SECONDS = 5_184_000

_RG = "/subscriptions/{subscription}/resourceGroups/{resource_group}"
_SUB = "/subscriptions/{subscription}"
_ACTIONS = ("start", "powerOff", "restart", "deallocate", "redeploy", "reapply", "runCommand", "reimage")


def location_key(location: str) -> str:
    return location.replace(" ", "").lower()


class ComputeProvider:
    def __init__(self, state: StateStore, pages: PageStore, sas: SasIssuer) -> None:
        self._state = state
        self._pages = pages
        self._sas = sas

    def routes(self) -> list[Route]:
        disk = _RG + "/providers/Microsoft.Compute/disks/{name}"
        snap = _RG + "/providers/Microsoft.Compute/snapshots/{name}"
        vm = _RG + "/providers/Microsoft.Compute/virtualMachines/{name}"
        ext = vm + "/extensions/{extension}"
        table = [
            route("GET", _SUB + "/providers/Microsoft.Compute/disks", lambda c: self._list(c, "disks", False)),
            route("GET", _RG + "/providers/Microsoft.Compute/disks", lambda c: self._list(c, "disks", True)),
            route("GET", disk, lambda c: self._get(c, "disks")),
            route("PUT", disk, self._put_disk),
            route("PATCH", disk, lambda c: self._patch_tags(c, "disks")),
            route("DELETE", disk, lambda c: self._delete_disk(c, "disks")),
            route("POST", disk + "/beginGetAccess", lambda c: self._grant(c, "disks")),
            route("POST", disk + "/endGetAccess", lambda c: self._revoke(c, "disks")),
            route("GET", _SUB + "/providers/Microsoft.Compute/snapshots", lambda c: self._list(c, "snapshots", False)),
            route("GET", _RG + "/providers/Microsoft.Compute/snapshots", lambda c: self._list(c, "snapshots", True)),
            route("GET", snap, lambda c: self._get(c, "snapshots")),
            route("PUT", snap, self._put_snapshot),
            route("PATCH", snap, lambda c: self._patch_tags(c, "snapshots")),
            route("DELETE", snap, lambda c: self._delete_disk(c, "snapshots")),
            route("POST", snap + "/beginGetAccess", lambda c: self._grant(c, "snapshots")),
            route("POST", snap + "/endGetAccess", lambda c: self._revoke(c, "snapshots")),
            route("GET", _SUB + "/providers/Microsoft.Compute/locations/{location}/vmSizes", self._vm_sizes),
            route("GET", _SUB + "/providers/Microsoft.Compute/virtualMachines", lambda c: self._list_vms(c, False)),
            route("GET", _RG + "/providers/Microsoft.Compute/virtualMachines", lambda c: self._list_vms(c, True)),
            route("GET", vm, self._get_vm),
            route("PUT", vm, self._put_vm),
            route("PATCH", vm, self._patch_vm),
            route("DELETE", vm, self._delete_vm),
            route("GET", vm + "/instanceView", self._instance_view),
            route("POST", vm + "/generalize", self._generalize),
            route("POST", vm + "/{action}", self._vm_action),
            route("GET", vm + "/extensions", self._list_extensions),
            route("GET", ext, self._get_extension),
            route("PUT", ext, lambda c: self._put_extension(c, patch=False)),
            route("PATCH", ext, lambda c: self._put_extension(c, patch=True)),
            route("DELETE", ext, self._delete_extension),
            route(
                "GET",
                _SUB + "/providers/Microsoft.Compute/locations/{location}/runCommands/{command}",
                self._run_command_document,
            ),
        ]
        return table

    # -- helpers -------------------------------------------------------------------------------

    def _id(self, ctx: Context, collection: str, name: str | None = None) -> str:
        return f"{ctx.resource_group_id()}/providers/{NAMESPACE}/{collection}/{name or ctx.params['name']}"

    def _record(self, ctx: Context, collection: str) -> JsonDict:
        ctx.require_resource_group()
        record = self._state.get("resources", self._id(ctx, collection))
        if record is None:
            raise not_found(f"{NAMESPACE}/{collection}", ctx.params["name"], ctx.params["resource_group"])
        return self._refresh(record)

    def _refresh(self, record: JsonDict) -> JsonDict:
        """A read SAS that expired ends ActiveSAS, as in Azure (an upload stays ActiveUpload)."""
        doc = record["doc"]
        properties = doc.get("properties", {})
        if properties.get("diskState") == "ActiveSAS" and self._sas.active(doc["id"]) == 0:
            properties["diskState"] = "Attached" if doc.get("managedBy") else "Unattached"
            self._state.put("resources", doc["id"], record)
        return record

    def _lookup(self, resource_id: str, collection: str) -> JsonDict | None:
        if f"/providers/{NAMESPACE.lower()}/{collection}/" not in resource_id.lower():
            return None
        return self._state.get("resources", resource_id)

    def _start_disk_op(self, ctx: Context, location: str, output: Any = None, monitor: Any = None) -> dict[str, str]:
        urls = ctx.operations.start(
            ctx,
            namespace=NAMESPACE,
            collection="DiskOperations",
            location=location_key(location),
            output=output,
            monitor=monitor,
            with_p=False,
        )
        return lro_headers(ctx, urls)

    def _start_vm_op(
        self, ctx: Context, location: str, output: Any = None, monitor: Any = None, location_header: bool = True
    ) -> dict[str, str]:
        urls = ctx.operations.start(
            ctx,
            namespace=NAMESPACE,
            collection="operations",
            location=location_key(location),
            output=output,
            monitor=monitor,
        )
        return lro_headers(ctx, urls, location=location_header)

    def _list(self, ctx: Context, collection: str, in_group: bool) -> Response:
        prefix = (ctx.resource_group_id() if in_group else f"/subscriptions/{ctx.subscription()}").lower()
        if in_group:
            ctx.require_resource_group()
        marker = f"/providers/{NAMESPACE.lower()}/{collection.lower()}/"
        items = [
            self._refresh(record)["doc"]
            for key, record in self._state.items("resources")
            if key.startswith(prefix + "/") and marker in key and key.count("/") == 8
        ]
        return ctx.list_response(items)

    def _get(self, ctx: Context, collection: str) -> Response:
        return json_response(self._record(ctx, collection)["doc"])

    def _patch_tags(self, ctx: Context, collection: str) -> Response:
        record = self._record(ctx, collection)
        body = ctx.json()
        if "tags" in body:
            record["doc"]["tags"] = body["tags"]
        self._state.put("resources", record["doc"]["id"], record)
        headers = self._start_disk_op(ctx, record["doc"]["location"], record["doc"], record["doc"])
        return json_response(None, 202, headers)

    # -- disks ---------------------------------------------------------------------------------

    def _put_disk(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        body = ctx.json()
        resource_id = self._id(ctx, "disks")
        existing = self._state.get("resources", resource_id)
        location = _required_location(body)
        props = body.get("properties", {})
        creation = props.get("creationData") or {}
        option = creation.get("createOption")
        if existing is not None:
            return self._update_disk(ctx, existing, body)
        if not option:
            raise ArmError(
                400,
                "InvalidParameter",
                "Required parameter 'createOption' is missing (null).",
                target="disk.properties.creationData.createOption",
            )
        unique_id = str(uuid.uuid4())
        blob = f"disk/{unique_id}"
        family = str(uuid.uuid4())
        disk_state = "Unattached"
        extra: JsonDict = {}
        if option == "Empty":
            size_gb = props.get("diskSizeGB")
            if not isinstance(size_gb, int) or size_gb <= 0:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "The disk size (diskSizeGB) is required for an empty disk.",
                    target="diskSizeGB",
                )
            size = size_gb * GIB
            self._pages.create(blob, size + FOOTER_SIZE, lineage=family)
            self._pages.write(blob, size, vhd_footer(size, unique_id))
        elif option == "Copy":
            source_id = creation.get("sourceResourceId") or creation.get("sourceUri") or ""
            source = self._lookup(source_id, "snapshots") or self._lookup(source_id, "disks")
            if source is None:
                raise ArmError(
                    404, "NotFound", f"Source resource '{source_id}' was not found.", target="sourceResourceId"
                )
            if location_key(source["doc"]["location"]) != location_key(location):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "The source is in another region; copy it with CopyStart first.",
                    target="location",
                )
            self._pages.clone(source["private"]["blob"], blob, lineage=family)
            size = source["doc"]["properties"]["diskSizeBytes"]
            requested = props.get("diskSizeGB")
            if isinstance(requested, int) and requested * GIB > size:
                self._resize(blob, size, requested * GIB, unique_id)
                size = requested * GIB
            creation = {
                **creation,
                "sourceResourceId": source["doc"]["id"],
                "sourceUniqueId": source["doc"]["properties"]["uniqueId"],
            }
            creation.pop("sourceUri", None)
            for key in ("osType", "hyperVGeneration"):
                if key in source["doc"]["properties"]:
                    extra[key] = source["doc"]["properties"][key]
        elif option == "Upload":
            upload = creation.get("uploadSizeBytes")
            if (
                not isinstance(upload, int)
                or (upload - FOOTER_SIZE) % MIB
                or not 20 * MIB + FOOTER_SIZE <= upload <= 32 * (1 << 40) + FOOTER_SIZE
            ):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "uploadSizeBytes must be a whole number of MiB plus 512 (the VHD footer), "
                    "between 20 MiB + 512 and 32 TiB + 512 bytes.",
                    target="uploadSizeBytes",
                )
            size = upload - FOOTER_SIZE
            self._pages.create(blob, upload, lineage=family)
            disk_state = "ReadyToUpload"
        else:
            raise ArmError(
                400,
                "InvalidParameter",
                f"createOption '{option}' is not supported by the simulator (Empty, Copy, Upload).",
                target="createOption",
            )
        doc: JsonDict = {
            "name": ctx.params["name"],
            "id": resource_id,
            "type": f"{NAMESPACE}/disks",
            "location": location,
            **_tags(body),
            "sku": _sku(body.get("sku"), "Premium_LRS"),
            "properties": {
                **{k: v for k, v in props.items() if k in ("osType", "hyperVGeneration")},
                **extra,
                "creationData": creation,
                "diskSizeGB": math.ceil(size / GIB),
                "diskIOPSReadWrite": 500,
                "diskMBpsReadWrite": 60,
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
                "networkAccessPolicy": "AllowAll",
                "timeCreated": ctx.now(),
                "provisioningState": "Succeeded",
                "diskState": disk_state,
                "diskSizeBytes": size,
                "uniqueId": unique_id,
            },
        }
        if "zones" in body:
            doc["zones"] = body["zones"]
        private = {"blob": blob, "family": family, "account": f"{MANAGED_PREFIX}{uuid.uuid4().hex[:12]}"}
        self._state.put("resources", resource_id, {"doc": doc, "private": private})
        echo = {"name": ctx.params["name"], **_echo(body)}
        return json_response(echo, 202, self._start_disk_op(ctx, location, doc, doc))

    def _update_disk(self, ctx: Context, record: JsonDict, body: JsonDict) -> Response:
        doc = record["doc"]
        props = body.get("properties", {})
        creation = props.get("creationData") or {}
        if (
            creation.get("createOption")
            and creation["createOption"] != doc["properties"]["creationData"]["createOption"]
        ):
            raise ArmError(
                409,
                "PropertyChangeNotAllowed",
                "Changing property 'creationData.createOption' is not allowed.",
                target="creationData.createOption",
            )
        if "tags" in body:
            doc["tags"] = body["tags"]
        requested = props.get("diskSizeGB")
        current = doc["properties"]["diskSizeBytes"]
        if isinstance(requested, int) and requested * GIB != current and doc["properties"]["diskSizeGB"] != requested:
            if requested * GIB < current:
                raise ArmError(409, "BadRequest", "Disk size can only be increased.", target="diskSizeGB")
            if doc["properties"]["diskState"] not in ("Unattached", "Reserved"):
                raise ArmError(
                    409, "OperationNotAllowed", "A disk can be resized only while unattached or its VM is deallocated."
                )
            self._resize(record["private"]["blob"], current, requested * GIB, doc["properties"]["uniqueId"])
            doc["properties"]["diskSizeGB"] = requested
            doc["properties"]["diskSizeBytes"] = requested * GIB
        self._state.put("resources", doc["id"], record)
        echo = {"name": doc["name"], **_echo(body)}
        return json_response(echo, 202, self._start_disk_op(ctx, doc["location"], doc, doc))

    def _resize(self, blob: str, old_size: int, new_size: int, unique_id: str) -> None:
        self._pages.clear(blob, old_size, FOOTER_SIZE)
        self._pages.resize(blob, new_size + FOOTER_SIZE)
        self._pages.write(blob, new_size, vhd_footer(new_size, unique_id))

    def _delete_disk(self, ctx: Context, collection: str) -> Response:
        ctx.require_resource_group()
        record = self._state.get("resources", self._id(ctx, collection))
        if record is None:
            return Response(status=204)
        doc = record["doc"]
        if doc.get("managedBy"):
            raise ArmError(
                409, "OperationNotAllowed", f"Disk {doc['name']} is attached to VM {doc['managedBy']}; detach it first."
            )
        if doc["properties"]["diskState"] in ("ActiveSAS", "ActiveUpload"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"{doc['name']} has an active SAS ({doc['properties']['diskState']}); call endGetAccess first.",
            )
        self._state.delete("resources", doc["id"])
        self._pages.delete(record["private"]["blob"])
        return json_response(None, 202, self._start_disk_op(ctx, doc["location"]))

    # -- snapshots -----------------------------------------------------------------------------

    def _put_snapshot(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        body = ctx.json()
        resource_id = self._id(ctx, "snapshots")
        location = _required_location(body)
        props = body.get("properties", {})
        creation = props.get("creationData") or {}
        existing = self._state.get("resources", resource_id)
        source_id = creation.get("sourceResourceId") or creation.get("sourceUri") or ""
        if existing is not None:
            old = existing["doc"]["properties"]["creationData"].get("sourceResourceId", "")
            if source_id and source_id.lower() != old.lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'sourceResourceId' is not allowed.",
                    target="sourceResourceId",
                )
            if "tags" in body:
                existing["doc"]["tags"] = body["tags"]
            self._state.put("resources", resource_id, existing)
            doc = existing["doc"]
            return json_response(_echo(body), 202, self._start_disk_op(ctx, location, doc, doc))
        if creation.get("createOption") != "Copy":
            raise ArmError(
                400,
                "InvalidParameter",
                "The simulator creates snapshots with createOption Copy (from a disk or snapshot).",
                target="createOption",
            )
        source = self._lookup(source_id, "disks") or self._lookup(source_id, "snapshots")
        if source is None:
            raise ArmError(404, "NotFound", f"Source resource '{source_id}' was not found.", target="sourceResourceId")
        source_doc = source["doc"]
        if location_key(source_doc["location"]) != location_key(location):
            raise ArmError(
                400,
                "InvalidParameter",
                "A Copy snapshot must be in the source's region; use CopyStart to copy across regions.",
                target="location",
            )
        if source_doc["properties"]["diskState"] in ("ReadyToUpload", "ActiveUpload"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Disk {source_doc['name']} is being uploaded; call endGetAccess before snapshotting.",
            )
        incremental = bool(props.get("incremental", False))
        family = source["private"]["family"]
        unique_id = str(uuid.uuid4())
        blob = f"snapshot/{unique_id}"
        self._pages.clone(source["private"]["blob"], blob, lineage=family)
        properties: JsonDict = {
            **{k: v for k, v in source_doc["properties"].items() if k in ("osType", "hyperVGeneration")},
            "creationData": {
                "createOption": "Copy",
                "sourceResourceId": source_doc["id"],
                "sourceUniqueId": source_doc["properties"]["uniqueId"],
            },
            "diskSizeGB": source_doc["properties"]["diskSizeGB"],
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "incremental": incremental,
            "timeCreated": ctx.now(),
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "diskSizeBytes": source_doc["properties"]["diskSizeBytes"],
            "uniqueId": unique_id,
            "networkAccessPolicy": "AllowAll",
            "completionPercent": 100.0,
        }
        if incremental:
            properties["incrementalSnapshotFamilyId"] = family
        doc = {
            "name": ctx.params["name"],
            "id": resource_id,
            "type": f"{NAMESPACE}/snapshots",
            "location": location,
            **_tags(body),
            "sku": _sku(body.get("sku"), "Standard_ZRS" if incremental else "Standard_LRS"),
            "properties": properties,
        }
        private = {"blob": blob, "family": family, "account": f"{MANAGED_PREFIX}{uuid.uuid4().hex[:12]}"}
        self._state.put("resources", resource_id, {"doc": doc, "private": private})
        echo = _echo(body)
        echo["properties"]["creationData"] = {**creation, "sourceUniqueId": source_doc["properties"]["uniqueId"]}
        return json_response(echo, 202, self._start_disk_op(ctx, location, doc, doc))

    # -- access --------------------------------------------------------------------------------

    def _grant(self, ctx: Context, collection: str) -> Response:
        with self._state.lock:
            record = self._record(ctx, collection)
            doc = record["doc"]
            body = ctx.json()
            access = body.get("access")
            seconds = body.get("durationInSeconds")
            if access not in ("Read", "Write"):
                raise ArmError(400, "InvalidParameter", "access must be Read or Write.", target="access")
            if not isinstance(seconds, int) or not 0 < seconds <= MAX_SAS_SECONDS:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"durationInSeconds must be between 1 and {MAX_SAS_SECONDS}.",
                    target="durationInSeconds",
                )
            state = doc["properties"]["diskState"]
            if access == "Write":
                if collection != "disks" or state not in ("ReadyToUpload", "ActiveUpload"):
                    raise ArmError(
                        409,
                        "OperationNotAllowed",
                        "Write access is granted only to a disk created with createOption Upload "
                        f"that is ReadyToUpload (this one is {state}).",
                    )
                new_state = "ActiveUpload"
            else:
                if state in ("ReadyToUpload", "ActiveUpload"):
                    raise ArmError(
                        409,
                        "OperationNotAllowed",
                        f"The disk is {state}; finish the upload with endGetAccess before reading.",
                    )
                if state == "Attached" and self._vm_running(doc.get("managedBy", "")):
                    raise ArmError(
                        409,
                        "OperationNotAllowed",
                        f"Disk {doc['name']} is attached to a running VM; deallocate the VM or "
                        "read a snapshot instead.",
                    )
                if collection == "snapshots" and self._sas.active(doc["id"]) == 0:
                    self._check_family_limit(record)
                new_state = "ActiveSAS"
            sas = self._sas.issue(
                blob=record["private"]["blob"],
                resource=doc["id"],
                account=record["private"]["account"],
                write=access == "Write",
                seconds=seconds,
            )
            if state != "Attached":
                doc["properties"]["diskState"] = new_state
            self._state.put("resources", doc["id"], record)
        result = {"accessSAS": sas}
        return json_response(None, 202, self._start_disk_op(ctx, doc["location"], result, result))

    def _check_family_limit(self, record: JsonDict) -> None:
        family = record["private"]["family"]
        open_sas = sum(
            1
            for _, other in self._state.items("resources")
            if other["doc"].get("type") == f"{NAMESPACE}/snapshots"
            and other["private"].get("family") == family
            and other["doc"]["id"].lower() != record["doc"]["id"].lower()
            and self._sas.active(other["doc"]["id"]) > 0
        )
        if open_sas >= MAX_SAS_PER_FAMILY:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"At most {MAX_SAS_PER_FAMILY} snapshots of one incremental snapshot family can have "
                "an active SAS; call endGetAccess on one first.",
            )

    def _revoke(self, ctx: Context, collection: str) -> Response:
        with self._state.lock:
            record = self._record(ctx, collection)
            doc = record["doc"]
            state = doc["properties"]["diskState"]
            if state == "ActiveUpload":
                blob = record["private"]["blob"]
                size = self._pages.info(blob).size
                footer = self._pages.read(blob, size - FOOTER_SIZE, FOOTER_SIZE)
                if not is_valid_footer(footer):
                    raise ArmError(
                        400,
                        "InvalidVhd",
                        f"The uploaded VHD is invalid: expected cookie 'conectix' in the footer at "
                        f"offset {size - FOOTER_SIZE}; write a fixed-VHD footer as the last 512 bytes.",
                    )
            self._sas.revoke(doc["id"])
            if state in ("ActiveSAS", "ActiveUpload"):
                doc["properties"]["diskState"] = "Unattached"
            self._state.put("resources", doc["id"], record)
        return json_response(None, 202, self._start_disk_op(ctx, doc["location"]))

    # -- virtual machines ----------------------------------------------------------------------

    def _vm_running(self, vm_id: str) -> bool:
        if not vm_id:
            return False
        vm = self._state.get("resources", vm_id)
        return vm is not None and vm["private"].get("power", "running") == "running"

    def _list_vms(self, ctx: Context, in_group: bool) -> Response:
        return self._list(ctx, "virtualMachines", in_group)

    def _vm_view(self, record: JsonDict, expand: str | None) -> JsonDict:
        doc = dict(record["doc"])
        extensions = record["private"].get("extensions", {})
        if extensions:
            doc["resources"] = [extensions[name] for name in sorted(extensions)]
        if expand and "instanceview" in expand.lower():
            doc["properties"] = {**doc["properties"], "instanceView": self._instance(record)}
        return doc

    def _get_vm(self, ctx: Context) -> Response:
        record = self._record(ctx, "virtualMachines")
        return json_response(self._vm_view(record, ctx.request.args.get("$expand")))

    def _put_vm(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        body = ctx.json()
        location = _required_location(body)
        resource_id = self._id(ctx, "virtualMachines")
        name = ctx.params["name"]
        with self._state.lock:
            existing = self._state.get("resources", resource_id)
            props = body.get("properties", {})
            storage = props.get("storageProfile")
            if existing is None and not storage:
                raise ArmError(
                    400, "InvalidParameter", "Required parameter 'storageProfile' is missing.", target="storageProfile"
                )
            old_disks = _managed_disk_ids(existing["doc"]) if existing else set()
            if storage:
                profile = self._build_storage(ctx, name, location, storage, existing)
            else:
                profile = existing["doc"]["properties"]["storageProfile"] if existing else {}
            os_profile = _os_profile_defaults(dict(props.get("osProfile") or {}))
            os_profile.pop("adminPassword", None)
            vm_props: JsonDict = (
                dict(existing["doc"]["properties"])
                if existing
                else {
                    "vmId": str(uuid.uuid4()),
                    "timeCreated": ctx.now(),
                }
            )
            for key, value in props.items():
                if key not in ("storageProfile", "osProfile", "provisioningState", "vmId", "instanceView"):
                    vm_props[key] = value
            vm_props["storageProfile"] = profile
            if os_profile:
                vm_props["osProfile"] = os_profile
            vm_props["provisioningState"] = "Succeeded"
            doc: JsonDict = {
                "name": name,
                "id": resource_id,
                "type": f"{NAMESPACE}/virtualMachines",
                "location": location,
                **_tags(body if "tags" in body or existing is None else existing["doc"]),
                "properties": vm_props,
            }
            for key in ("zones", "identity", "plan"):
                if key in body:
                    doc[key] = body[key]
            private = existing["private"] if existing else {"power": "running", "extensions": {}}
            new_disks = _managed_disk_ids(doc)
            for disk_id in old_disks - new_disks:
                self._set_attachment(disk_id, None)
            for disk_id in new_disks:
                self._set_attachment(disk_id, resource_id)
            self._state.put("resources", resource_id, {"doc": doc, "private": private})
        shown = dict(doc, properties=dict(vm_props, provisioningState="Updating" if existing else "Creating"))
        headers = self._start_vm_op(ctx, location, location_header=False)
        return json_response(shown, 200 if existing else 201, headers)

    def _build_storage(
        self, ctx: Context, vm_name: str, location: str, storage: JsonDict, existing: JsonDict | None
    ) -> JsonDict:
        before = {d.lower() for d in _managed_disk_ids(existing["doc"])} if existing else set()
        profile: JsonDict = {k: v for k, v in storage.items() if k not in ("osDisk", "dataDisks")}
        os_disk = storage.get("osDisk")
        if os_disk is None:
            if existing is None:
                raise ArmError(400, "InvalidParameter", "Required parameter 'osDisk' is missing.", target="osDisk")
            os_disk = existing["doc"]["properties"]["storageProfile"]["osDisk"]
        image = storage.get("imageReference")
        if image is not None:
            profile["imageReference"] = {**image, "exactVersion": image.get("version", "1.0.0")}
        profile["osDisk"] = self._disk_entry(ctx, vm_name, location, os_disk, None, before, image)
        luns: set[int] = set()
        data_disks = []
        for index, entry in enumerate(storage.get("dataDisks") or []):
            lun = entry.get("lun")
            if not isinstance(lun, int) or lun < 0 or lun in luns:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Data disk LUN {lun!r} is missing or used twice; give each data disk its own lun.",
                    target=f"dataDisks[{index}].lun",
                )
            luns.add(lun)
            data_disks.append(self._disk_entry(ctx, vm_name, location, entry, lun, before, None))
        profile["dataDisks"] = data_disks
        return profile

    def _disk_entry(
        self,
        ctx: Context,
        vm_name: str,
        location: str,
        entry: JsonDict,
        lun: int | None,
        before: set[str],
        image: JsonDict | None,
    ) -> JsonDict:
        option = entry.get("createOption")
        target = "osDisk" if lun is None else f"dataDisks[lun {lun}]"
        managed = entry.get("managedDisk") or {}
        result: JsonDict = {} if lun is None else {"lun": lun}
        if "vhd" in entry:
            result.update({k: v for k, v in entry.items() if k != "lun"})
            result.setdefault("caching", "ReadWrite" if lun is None else "None")
            if lun is None:
                result.setdefault("osType", entry.get("osType") or _guess_os(image))
            self._check_vhd(entry["vhd"].get("uri", ""), target)
            return result
        if option == "Attach":
            disk_id = managed.get("id")
            if not disk_id:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "managedDisk.id is required with createOption Attach.",
                    target=f"{target}.managedDisk.id",
                )
            disk = self._lookup(disk_id, "disks")
            if disk is None:
                raise ArmError(404, "NotFound", f"Disk {disk_id} could not be found.", target=target)
            doc = disk["doc"]
            if location_key(doc["location"]) != location_key(location):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Disk {doc['name']} is in {doc['location']}, the VM in {location}.",
                    target=target,
                )
            state = doc["properties"]["diskState"]
            attached_elsewhere = doc.get("managedBy") and doc["id"].lower() not in before
            if state in ("ReadyToUpload", "ActiveUpload", "ActiveSAS") or attached_elsewhere:
                owner = doc.get("managedBy") or state
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Disk {doc['name']} cannot be attached: it is {state} ({owner}).",
                    target=target,
                )
            if lun is None and not (entry.get("osType") or doc["properties"].get("osType")):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "osDisk.osType is required when attaching an existing OS disk.",
                    target="osDisk.osType",
                )
            os_type = entry.get("osType") or doc["properties"].get("osType")
            disk_name, disk_full_id, size_gb = doc["name"], doc["id"], doc["properties"]["diskSizeGB"]
            sku_name = doc["sku"]["name"]
        elif option in ("FromImage", "Empty"):
            os_type = entry.get("osType") or _guess_os(image) if lun is None else None
            size_gb = entry.get("diskSizeGB") or ((127 if os_type == "Windows" else 30) if lun is None else None)
            if not isinstance(size_gb, int):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "diskSizeGB is required for an empty data disk.",
                    target=f"{target}.diskSizeGB",
                )
            disk_name = entry.get("name") or (
                f"{vm_name}_OsDisk_1_{uuid.uuid4().hex}"
                if lun is None
                else f"{vm_name}_disk{lun + 2}_{uuid.uuid4().hex}"
            )
            sku_name = managed.get("storageAccountType", "Premium_LRS")
            disk_full_id = f"{ctx.resource_group_id()}/providers/{NAMESPACE}/disks/{disk_name}"
            if self._state.get("resources", disk_full_id) is None:
                self._create_empty_disk(ctx, disk_full_id, disk_name, location, size_gb, sku_name, os_type)
        else:
            raise ArmError(
                400,
                "InvalidParameter",
                f"createOption {option!r} is not supported by the simulator (Attach, FromImage, Empty).",
                target=f"{target}.createOption",
            )
        if lun is None:
            result["osType"] = os_type
        result["name"] = disk_name
        result["createOption"] = option
        result["caching"] = entry.get("caching", "ReadWrite" if lun is None else "None")
        result["managedDisk"] = {"storageAccountType": managed.get("storageAccountType", sku_name), "id": disk_full_id}
        result["deleteOption"] = entry.get("deleteOption", "Detach")
        result["diskSizeGB"] = size_gb
        if lun is not None:
            result["toBeDetached"] = False
        return result

    def _check_vhd(self, uri: str, target: str) -> None:
        data_url = self._sas.data_url
        if not uri.startswith(data_url + "/"):
            return
        account, container, name = uri[len(data_url) + 1 :].split("/", 2)
        if not self._pages.exists(vhd_blob_id(account, container, name)):
            raise ArmError(404, "NotFound", f"The VHD blob {uri} does not exist.", target=f"{target}.vhd.uri")

    def _create_empty_disk(
        self, ctx: Context, disk_id: str, name: str, location: str, size_gb: int, sku_name: str, os_type: str | None
    ) -> None:
        unique_id = str(uuid.uuid4())
        blob = f"disk/{unique_id}"
        family = str(uuid.uuid4())
        size = size_gb * GIB
        self._pages.create(blob, size + FOOTER_SIZE, lineage=family)
        self._pages.write(blob, size, vhd_footer(size, unique_id))
        properties: JsonDict = {
            "creationData": {"createOption": "Empty"},
            "diskSizeGB": size_gb,
            "diskIOPSReadWrite": 500,
            "diskMBpsReadWrite": 60,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "timeCreated": ctx.now(),
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "diskSizeBytes": size,
            "uniqueId": unique_id,
        }
        if os_type:
            properties["osType"] = os_type
        doc = {
            "name": name,
            "id": disk_id,
            "type": f"{NAMESPACE}/disks",
            "location": location,
            "sku": _sku({"name": sku_name}, sku_name),
            "properties": properties,
        }
        private = {"blob": blob, "family": family, "account": f"{MANAGED_PREFIX}{uuid.uuid4().hex[:12]}"}
        self._state.put("resources", disk_id, {"doc": doc, "private": private})

    def _set_attachment(self, disk_id: str, vm_id: str | None) -> None:
        record = self._state.get("resources", disk_id)
        if record is None:
            return
        doc = record["doc"]
        if vm_id:
            doc["managedBy"] = vm_id
            doc["properties"]["diskState"] = "Attached"
        else:
            doc.pop("managedBy", None)
            doc["properties"]["diskState"] = "Unattached"
        self._state.put("resources", disk_id, record)

    def _patch_vm(self, ctx: Context) -> Response:
        with self._state.lock:
            record = self._record(ctx, "virtualMachines")
            body = ctx.json()
            if "tags" in body:
                record["doc"]["tags"] = body["tags"]
            for key, value in (body.get("properties") or {}).items():
                if key in ("hardwareProfile", "diagnosticsProfile", "userData", "priority"):
                    record["doc"]["properties"][key] = value
            self._state.put("resources", record["doc"]["id"], record)
        return json_response(self._vm_view(record, None))

    def _vm_sizes(self, ctx: Context) -> Response:
        location = ctx.params["location"]
        if not known_region(location):
            raise ArmError(404, "LocationNotFound", f"The location '{location}' could not be found for subscription.")
        sizes = [
            {
                "name": name,
                "numberOfCores": cores,
                "osDiskSizeInMB": 1047552,
                "resourceDiskSizeInMB": 0,
                "memoryInMB": memory,
                "maxDataDiskCount": disks,
            }
            for name, cores, memory, disks in VM_SIZES
        ]
        return json_response({"value": sizes}, 200)

    def _delete_vm(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        with self._state.lock:
            record = self._state.get("resources", self._id(ctx, "virtualMachines"))
            if record is None:
                return Response(status=204)
            doc = record["doc"]
            profile = doc["properties"].get("storageProfile", {})
            for entry in [profile.get("osDisk") or {}, *(profile.get("dataDisks") or [])]:
                disk_id = (entry.get("managedDisk") or {}).get("id")
                if not disk_id:
                    continue
                self._set_attachment(disk_id, None)
                if entry.get("deleteOption") == "Delete":
                    disk = self._state.get("resources", disk_id)
                    if disk is not None:
                        self._state.delete("resources", disk_id)
                        self._pages.delete(disk["private"]["blob"])
            self._state.delete("resources", doc["id"])
        return json_response(None, 202, self._start_vm_op(ctx, doc["location"]))

    def _instance(self, record: JsonDict) -> JsonDict:
        doc = record["doc"]
        power = record["private"].get("power", "running")
        profile = doc["properties"].get("storageProfile", {})
        disks = [entry for entry in [profile.get("osDisk"), *(profile.get("dataDisks") or [])] if entry]
        now = self._state.now().isoformat()
        ok = {
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "time": now,
        }
        os_profile = doc["properties"].get("osProfile", {})
        extensions = sorted(record["private"].get("extensions", {}).items())
        ready = {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready"}
        return {
            "computerName": os_profile.get("computerName", doc["name"]),
            "osName": "Linux" if profile.get("osDisk", {}).get("osType") != "Windows" else "Windows",
            "osVersion": "simulated",
            "vmAgent": {
                "vmAgentVersion": "2.2.0",
                "statuses": [dict(ready, message="GuestAgent is running and processing the extensions.", time=now)],
                "extensionHandlers": [
                    {
                        "type": e["properties"].get("type", ""),
                        "typeHandlerVersion": e["properties"].get("typeHandlerVersion", ""),
                        "status": dict(ready, message=f"Plugin enabled (extension name: {n})."),
                    }
                    for n, e in extensions
                ],
            },
            "disks": [{"name": d.get("name", ""), "statuses": [ok]} for d in disks],
            "extensions": [
                {
                    "name": n,
                    "type": e["properties"].get("type", ""),
                    "typeHandlerVersion": e["properties"].get("typeHandlerVersion", ""),
                    "statuses": [dict(ok, message="Plugin enabled.")],
                }
                for n, e in extensions
            ],
            "hyperVGeneration": "V1",
            "statuses": [ok, {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"}],
        }

    def _instance_view(self, ctx: Context) -> Response:
        return json_response(self._instance(self._record(ctx, "virtualMachines")))

    def _generalize(self, ctx: Context) -> Response:
        self._record(ctx, "virtualMachines")
        return json_response(None, 200)

    def _vm_action(self, ctx: Context) -> Response:
        action = ctx.params["action"]
        known = {a.lower(): a for a in _ACTIONS}
        if action.lower() not in known:
            raise ArmError(404, "InvalidResourceType", f"The resource type 'virtualMachines/{action}' is unknown.")
        with self._state.lock:
            record = self._record(ctx, "virtualMachines")
            power = {
                "start": "running",
                "restart": "running",
                "poweroff": "stopped",
                "deallocate": "deallocated",
                "redeploy": "running",
            }.get(action.lower())
            if power:
                record["private"]["power"] = power
                self._state.put("resources", record["doc"]["id"], record)
        output = None
        if action.lower() == "runcommand":
            output = {
                "value": [
                    {
                        "code": "ComponentStatus/StdOut/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "message": "",
                    },
                    {
                        "code": "ComponentStatus/StdErr/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "message": "",
                    },
                ]
            }
        return json_response(None, 202, self._start_vm_op(ctx, record["doc"]["location"], output, output))

    # -- extensions ----------------------------------------------------------------------------

    def _list_extensions(self, ctx: Context) -> Response:
        record = self._record(ctx, "virtualMachines")
        extensions = record["private"].get("extensions", {})
        return json_response({"value": [extensions[n] for n in sorted(extensions)]})

    def _get_extension(self, ctx: Context) -> Response:
        record = self._record(ctx, "virtualMachines")
        found = record["private"].get("extensions", {}).get(ctx.params["extension"])
        if found is None:
            raise not_found(
                f"{NAMESPACE}/virtualMachines/extensions", ctx.params["extension"], ctx.params["resource_group"]
            )
        return json_response(found)

    def _put_extension(self, ctx: Context, *, patch: bool) -> Response:
        with self._state.lock:
            record = self._record(ctx, "virtualMachines")
            body = ctx.json()
            name = ctx.params["extension"]
            extensions = record["private"].setdefault("extensions", {})
            existing = extensions.get(name)
            if patch and existing is None:
                raise not_found(f"{NAMESPACE}/virtualMachines/extensions", name, ctx.params["resource_group"])
            properties = dict(existing["properties"]) if existing else {}
            properties.update(body.get("properties") or {})
            properties.pop("protectedSettings", None)
            properties["provisioningState"] = "Succeeded"
            doc = {
                "name": name,
                "id": f"{record['doc']['id']}/extensions/{name}",
                "type": f"{NAMESPACE}/virtualMachines/extensions",
                "location": body.get("location", record["doc"]["location"]),
                "properties": properties,
            }
            extensions[name] = doc
            self._state.put("resources", record["doc"]["id"], record)
        shown = dict(doc, properties=dict(properties, provisioningState="Updating" if existing else "Creating"))
        headers = self._start_vm_op(ctx, record["doc"]["location"], location_header=False)
        return json_response(shown, 200 if existing else 201, headers)

    def _delete_extension(self, ctx: Context) -> Response:
        with self._state.lock:
            record = self._record(ctx, "virtualMachines")
            removed = record["private"].get("extensions", {}).pop(ctx.params["extension"], None)
            self._state.put("resources", record["doc"]["id"], record)
        if removed is None:
            return Response(status=204)
        return json_response(None, 202, self._start_vm_op(ctx, record["doc"]["location"]))

    def _run_command_document(self, ctx: Context) -> Response:
        command = ctx.params["command"]
        windows = "powershell" in command.lower()
        return json_response(
            {
                "$schema": "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json",
                "id": command,
                "osType": "Windows" if windows else "Linux",
                "label": "Executes a PowerShell script" if windows else "Executes a Linux shell script",
                "description": "Custom script",
                "script": ["$arguments = '{script}'"] if windows else ["{script}"],
                # Both built-in script commands take two optional string arguments (as recorded).
                "parameters": [{"name": f"arg{i}", "type": "string", "required": False} for i in (1, 2)],
            }
        )


def _os_profile_defaults(os_profile: JsonDict) -> JsonDict:
    """What Azure fills into a VM's osProfile (the recorded VM's keys); a VM from disks has none."""
    if not os_profile:
        return os_profile
    os_profile.setdefault("secrets", [])
    os_profile.setdefault("allowExtensionOperations", True)
    os_profile.setdefault("requireGuestProvisionSignal", True)
    if isinstance(os_profile.get("windowsConfiguration"), dict):
        windows = dict(os_profile["windowsConfiguration"])
        windows.setdefault("provisionVMAgent", True)
        windows.setdefault("enableAutomaticUpdates", True)
        windows.setdefault("patchSettings", {"patchMode": "AutomaticByOS", "assessmentMode": "ImageDefault"})
        os_profile["windowsConfiguration"] = windows
    if isinstance(os_profile.get("linuxConfiguration"), dict):
        linux = dict(os_profile["linuxConfiguration"])
        linux.setdefault("disablePasswordAuthentication", False)
        linux.setdefault("provisionVMAgent", True)
        linux.setdefault("patchSettings", {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"})
        os_profile["linuxConfiguration"] = linux
    return os_profile


def _tags(body: JsonDict) -> JsonDict:
    """Azure leaves ``tags`` out of a resource that has none."""
    return {"tags": body["tags"]} if body.get("tags") else {}


def _required_location(body: JsonDict) -> str:
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    if not known_region(location):
        raise ArmError(
            400,
            "LocationNotAvailableForResourceType",
            f"The provided location '{location}' is not available for resource type "
            f"'{NAMESPACE}'. List of available regions for the resource type is "
            f"'{','.join(sorted(REGIONS))}'.",
        )
    return location


def _sku(requested: JsonDict | None, default: str) -> JsonDict:
    name = (requested or {}).get("name") or default
    tier = "Premium" if name.startswith("Premium") else "Ultra" if name.startswith("Ultra") else "Standard"
    return {"name": name, "tier": tier}


def _echo(body: JsonDict) -> JsonDict:
    """The 202 body of a DiskRP PUT: the request, with provisioningState Updating and isArmResource."""
    echo = {k: v for k, v in body.items() if k in ("location", "tags", "sku", "zones")}
    echo["properties"] = {**(body.get("properties") or {}), "provisioningState": "Updating", "isArmResource": True}
    return echo


def _guess_os(image: JsonDict | None) -> str:
    if image and "windows" in str(image.get("publisher", "")).lower():
        return "Windows"
    return "Linux"


def _managed_disk_ids(doc: JsonDict) -> set[str]:
    profile = doc.get("properties", {}).get("storageProfile", {}) or {}
    entries = [profile.get("osDisk") or {}, *(profile.get("dataDisks") or [])]
    return {e["managedDisk"]["id"].lower() for e in entries if (e.get("managedDisk") or {}).get("id")}
