"""``bulwark restore vm`` and ``bulwark restore disk``: subcommands of the ``restore`` group.

Both go through the function app's HTTP API (POST /api/restores/vm|disk, then the status link
until the restore ends): creating disks and VMs needs the app's identity, and the disks of an
image-level point are written by a worker in the target region. Without the app, restore a disk
image with ``bulwark restore-image`` and upload it with ``az disk`` / AzCopy.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from shared.cli.app_client import APP_ENV, KEY_ENV, call, follow, refusal
from shared.cli.session import emit_json, say
from shared.core.errors import AzureOperationFailedError, UsageError

__all__ = ["add_vm_commands"]

_COMMON = f"""\
POINT is a catalog point id of the VM: GET /api/points?resource=<vm id> (or `bulwark points --catalog
--resource <vm id>`) lists them: kind 'snapshot' (disks are copied from the snapshots: minutes,
same region) and kind 'image' (disks are written from the repository by a worker: any region,
works after the snapshots are gone). --source auto takes the snapshots while they exist.

environment:
  {APP_ENV}      the app, e.g. http://127.0.0.1:7071 (or --app)
  {KEY_ENV}  its function key (x-functions-key)

exit codes: 2 refused (a bad field, a name that exists), 5 unknown point, 9 missing resource
group or a restore that ran and failed (the reason is printed), 3 the app cannot be reached.
"""

VM_EPILOG = (
    _COMMON
    + """
examples:
  # a new VM beside the original, from the newest snapshot point
  bulwark restore vm snap-3f2a9c-1b2c3d4e5f60 --vm /subscriptions/.../virtualMachines/web \\
      --name web-restored --nic /subscriptions/.../networkInterfaces/web-restored-nic
  # into another resource group and region, from the repository
  bulwark restore vm img-3f2a9c-1b2c3d4e5f60 --vm /subscriptions/.../virtualMachines/web \\
      --name web-dr --resource-group rg-dr --region westeurope --source repository
  # replace the original (it is deleted; its disks are kept)
  bulwark restore vm img-3f2a9c-1b2c3d4e5f60 --vm /subscriptions/.../virtualMachines/web --replace --yes
"""
)

DISK_EPILOG = (
    _COMMON
    + """
examples:
  bulwark restore disk snap-3f2a9c-1b2c3d4e5f60 --vm /subscriptions/.../virtualMachines/web --lun 0 \\
      --name web-data-copy
  bulwark restore disk img-3f2a9c-1b2c3d4e5f60 --vm /subscriptions/.../virtualMachines/web --lun os \\
      --name web-os-check --resource-group rg-forensics --source repository
"""
)


def add_vm_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vm = subparsers.add_parser(
        "vm",
        help="restore a whole VM from a point (through the app's HTTP API)",
        description="Create a VM from a restore point with the same disks and LUNs: a new VM, or the original "
        "replaced (its disks are kept until you delete them).",
        epilog=VM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(vm)
    vm.add_argument("--name", metavar="NAME", help="the new VM's name (not with --replace)")
    vm.add_argument("--size", metavar="SKU", help="the VM size (default: the original's)")
    vm.add_argument("--nic", action="append", default=[], metavar="ID", help="a network interface id (repeatable)")
    vm.add_argument("--replace", action="store_true", help="replace the original VM (needs --yes)")
    vm.add_argument("--yes", action="store_true", help="confirm --replace")
    vm.set_defaults(run=_run, what="vm")

    disk = subparsers.add_parser(
        "disk",
        help="restore one disk of a VM from a point (through the app's HTTP API)",
        description="Create one managed disk from a VM's restore point, without a VM (attach it yourself).",
        epilog=DISK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(disk)
    disk.add_argument("--lun", required=True, metavar="LUN", help="'os' or the data disk's LUN")
    disk.add_argument("--name", metavar="NAME", help="the new disk's name (default: derived from the VM's)")
    disk.set_defaults(run=_run, what="disk", replace=False, yes=False, size=None, nic=[])


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("point", metavar="POINT", help="the catalog point id (snap-... or img-...)")
    parser.add_argument("--vm", required=True, metavar="ID", help="the VM the point belongs to (its ARM id)")
    parser.add_argument("--resource-group", metavar="NAME", help="where to create it (default: the original's)")
    parser.add_argument("--region", metavar="REGION", help="where to create it (default: the original's)")
    parser.add_argument(
        "--source", choices=("auto", "snapshot", "repository"), default="auto", help="what to read (default auto)"
    )
    parser.add_argument("--app", metavar="URL", default=os.environ.get(APP_ENV), help=f"the app (default: ${APP_ENV})")
    parser.add_argument("--no-wait", action="store_true", help="print the restore's id and status link, and return")
    parser.add_argument("--timeout", type=float, default=24 * 3600, metavar="S", help="give up waiting after S s")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _run(args: argparse.Namespace) -> int:
    if not args.app:
        raise UsageError("no function app given", hint=f"pass --app URL or set {APP_ENV}")
    key = os.environ.get(KEY_ENV, "")
    target: dict[str, Any] = {}
    for field, value in (
        ("name", args.name),
        ("resource_group", args.resource_group),
        ("region", args.region),
        ("vm_size", args.size),
    ):
        if value:
            target[field] = value
    if args.nic:
        target["nic_ids"] = list(args.nic)
    body: dict[str, Any] = {"vm_id": args.vm, "point_id": args.point, "source": args.source, "target": target}
    if args.what == "disk":
        body["lun"] = args.lun
    if args.replace:
        body["replace_original"] = True
        body["confirm"] = bool(args.yes)
    base = args.app.rstrip("/")
    status, answer = call(f"{base}/api/restores/{args.what}", key, "POST", body)
    if status != 202:
        raise refusal(status, answer)
    restore_id = str(answer["id"])
    link = f"{base}{answer['restore']}"
    if args.no_wait:
        if args.json:
            emit_json(answer)
        else:
            print(restore_id)
            say(f"restore {restore_id} started; follow it at {link}")
        return 0
    plan = answer.get("plan") or {}
    say(f"restore {restore_id} started: {len(plan.get('disks', []))} disk(s) from the {plan.get('source', '?')}")
    runtime, document = follow(link, key, timeout=args.timeout, quiet=args.json, name=f"restore {restore_id}")
    found = document.get("output")
    output: dict[str, Any] = found if isinstance(found, dict) else {}
    if args.json:
        emit_json(output or document)
    if runtime != "Completed" or output.get("status") != "Succeeded":
        reason = output.get("reason") or f"the orchestration ended {runtime}"
        raise AzureOperationFailedError(f"restore {restore_id} failed: {reason}")
    if not args.json:
        if output.get("vm_id"):
            say(f"restored VM {output['vm_id']}")
        for disk in output.get("disks", []):
            label = "OS disk" if disk.get("lun") is None else f"LUN {disk['lun']}"
            say(f"  {label}: {disk['disk_id']}")
    return 0
