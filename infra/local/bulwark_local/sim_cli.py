"""``bulwark-sim``: drive the local Azure simulator (guest disk I/O, SQL data, containers, faults, the demo).

Every command reads the stack file (``.local/stack.json`` from ``make stack-up``, or ``--stack FILE``)
and talks to the simulator's admin API, not to ARM. Command groups are separate Typer apps, so
``sql`` and ``faults`` slot in beside ``guest`` and ``seed`` with one ``add_typer`` line each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from azure.core.exceptions import AzureError
from azure.keyvault.secrets import SecretClient

from shared.azure.credential import StaticTokenCredential
from shared.azure.keyvault import vault_url
from shared.azure.settings import AzureSettings

from .simulator.client import GUEST_PIECE, AdminApiError, AdminClient
from .stack import DEFAULT_STACK_FILE, Stack, load_stack

app = typer.Typer(help="Control the local Azure simulator.", no_args_is_help=True, add_completion=False)
guest_app = typer.Typer(
    help="Act as the guest OS of a simulated VM: write, trim and read its disks.", no_args_is_help=True
)
seed_app = typer.Typer(help="Create simulated estates.", no_args_is_help=True)
sql_app = typer.Typer(help="Simulated SQL databases: change rows, switch export failures, show the catalog.")
aci_app = typer.Typer(help="Simulated container groups (local processes): kill, list, image map.")
faults_app = typer.Typer(help="Inject ARM throttling, 5xx, delays, SAS read resets and early SAS expiry.")
keyvault_app = typer.Typer(help="Simulated Key Vault secrets (what policies name as key_vault_secret).")
app.add_typer(guest_app, name="guest")
app.add_typer(seed_app, name="seed")
app.add_typer(sql_app, name="sql", no_args_is_help=True)
app.add_typer(aci_app, name="aci", no_args_is_help=True)
app.add_typer(faults_app, name="faults", no_args_is_help=True)
app.add_typer(keyvault_app, name="keyvault", no_args_is_help=True)

_state: dict[str, Path] = {}

DiskArg = Annotated[str, typer.Argument(help="Managed disk resource id, snapshot id (read only) or VHD blob URL.")]
OffsetOpt = Annotated[int, typer.Option("--offset", min=0, help="Byte offset on the disk.")]
LengthOpt = Annotated[int, typer.Option("--length", min=0, help="Number of bytes.")]


@app.callback()
def _options(
    stack: Annotated[Path, typer.Option("--stack", help="Stack file written by `make stack-up`.")] = DEFAULT_STACK_FILE,
) -> None:
    _state["stack"] = stack


def _stack() -> Stack:
    try:
        return load_stack(_state.get("stack", DEFAULT_STACK_FILE))
    except FileNotFoundError as error:
        _fail(str(error))


def _admin() -> AdminClient:
    stack = _stack()
    return AdminClient(stack.arm_endpoint, stack.ca_bundle)


def _fail(message: str) -> NoReturn:
    typer.echo(f"bulwark-sim: {message}", err=True)
    raise typer.Exit(code=1)


@guest_app.command("write")
def guest_write(
    disk: DiskArg,
    offset: OffsetOpt,
    length: LengthOpt,
    zero: Annotated[bool, typer.Option("--zero", help="Write zeros (the pages stay allocated, unlike trim).")] = False,
    random: Annotated[bool, typer.Option("--random", help="Write random bytes.")] = False,
    source: Annotated[Path | None, typer.Option("--from", help="Write LENGTH bytes read from this file.")] = None,
) -> None:
    """Write LENGTH bytes at OFFSET, as the VM's guest would."""
    if sum([zero, random, source is not None]) != 1:
        _fail("choose exactly one of --zero, --random, --from FILE")
    admin = _admin()
    try:
        with open(source, "rb") if source else open(os.devnull, "rb") as handle:
            for start in range(0, length, GUEST_PIECE):
                size = min(GUEST_PIECE, length - start)
                if source:
                    data = handle.read(size)
                    if len(data) != size:
                        _fail(f"{source} has fewer than {length} bytes")
                else:
                    data = bytes(size) if zero else os.urandom(size)
                admin.guest_write(disk, offset + start, data)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"wrote {length} bytes at {offset}")


@guest_app.command("trim")
def guest_trim(disk: DiskArg, offset: OffsetOpt, length: LengthOpt) -> None:
    """Discard (TRIM) a range: whole pages are cleared and read back as zeros."""
    try:
        _admin().guest_trim(disk, offset, length)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"trimmed {length} bytes at {offset}")


@guest_app.command("read")
def guest_read(
    disk: DiskArg,
    out: Annotated[Path, typer.Option("--out", help="File to write the disk's bytes to (sparse).")],
) -> None:
    """Save the disk's current bytes as the guest sees them; unallocated ranges become holes."""
    admin = _admin()
    try:
        info = admin.guest_info(disk)
        with open(out, "wb") as handle:
            handle.truncate(int(info["size"]))
            for start, end in info["ranges"]:
                handle.seek(start)
                for piece in admin.iter_guest_read(disk, start, end - start):
                    handle.write(piece)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"saved {info['size']} bytes ({sum(e - s for s, e in info['ranges'])} allocated) to {out}")


@seed_app.command("demo")
def seed_demo_command() -> None:
    """VMs with ext4 disks in two resource groups (one on an unmanaged VHD), SQL servers and databases; idempotent."""
    from .simulator.seed import SeedTarget, seed_demo

    stack = _stack()
    target = SeedTarget(
        stack.arm_endpoint, stack.data_plane_endpoint, stack.ca_bundle, stack.subscription_id, stack.location
    )
    try:
        seed_demo(target, log=typer.echo)
    except AdminApiError as error:
        _fail(str(error))


# -- sql --------------------------------------------------------------------------------------------

DbArg = Annotated[str, typer.Argument(help="SQL database resource id (.../servers/S/databases/D).")]


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@sql_app.command("change")
def sql_change(
    db: DbArg,
    table: Annotated[str | None, typer.Option("--table", help="schema.table (default: the first table).")] = None,
    rows: Annotated[int, typer.Option("--rows", min=1, help="How many rows to modify.")] = 10,
) -> None:
    """Modify some rows of one table; the other tables keep byte-identical BCP data in the next export."""
    try:
        result = _admin().sql_change(db, table=table, rows=rows)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"changed {result['rowsChanged']} rows of {result['table']} (change #{result['changes']})")


@sql_app.command("fail")
def sql_fail(
    db: DbArg,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="external-references | unsupported-logins | firewall | gateway-timeout | timeout | none (normal).",
        ),
    ],
) -> None:
    """Make the database's exports fail the way Azure's do."""
    try:
        catalog = _admin().sql_fail(db, mode)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(
        f"export failure mode: {catalog['exportFailure']}; external references: "
        f"{len(catalog['externalReferences'])}; unsupported principals: {len(catalog['unsupportedPrincipals'])}"
    )


@sql_app.command("show")
def sql_show(db: DbArg) -> None:
    """The pre-flight catalog: tables, size, external references, unsupported principals, failure mode."""
    try:
        _echo_json(_admin().sql_catalog(db))
    except AdminApiError as error:
        _fail(str(error))


# -- aci ------------------------------------------------------------------------------------------


@aci_app.command("kill")
def aci_kill(
    group: Annotated[str, typer.Argument(help="Container group resource id.")],
    container: Annotated[str | None, typer.Option("--container", help="Only this container.")] = None,
    signal: Annotated[str, typer.Option("--signal", help="KILL (a crash, exit 137), TERM, INT...")] = "KILL",
) -> None:
    """Signal a running container's process group, as a crash would."""
    try:
        result = _admin().aci_kill(group, container=container, signal=signal)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"sent {result['signal']} to {', '.join(str(p) for p in result['signalled'])}")


@aci_app.command("ps")
def aci_ps() -> None:
    """Running container processes."""
    try:
        _echo_json(_admin().aci_processes())
    except AdminApiError as error:
        _fail(str(error))


@aci_app.command("images")
def aci_images(
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help='PATTERN=JSON_ARGV, e.g. \'bulwark/worker:*=["{python}","-m","shared.worker"]\'.'),
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Back to the built-in map.")] = False,
) -> None:
    """Show (or replace) the map from image patterns to local commands."""
    admin = _admin()
    try:
        if reset:
            images = admin.aci_reset_images()
        elif set_:
            parsed: dict[str, list[str]] = {}
            for item in set_:
                pattern, _, argv = item.partition("=")
                try:
                    parsed[pattern] = json.loads(argv)
                except ValueError:
                    _fail(f"--set {item!r}: the command must be a JSON list of strings")
            images = admin.aci_images(parsed)
        else:
            images = admin.aci_images()
    except AdminApiError as error:
        _fail(str(error))
    _echo_json(images)


# -- faults ---------------------------------------------------------------------------------------


@faults_app.command("set")
def faults_set(
    arm_429: Annotated[float | None, typer.Option("--arm-429", help="Fraction of ARM calls answered 429.")] = None,
    retry_after: Annotated[int | None, typer.Option("--retry-after", help="Retry-After of those 429s (s).")] = None,
    arm_5xx: Annotated[float | None, typer.Option("--arm-5xx", help="Fraction of ARM calls answered 5xx.")] = None,
    status: Annotated[int | None, typer.Option("--status", help="That 5xx: 500, 502, 503 or 504.")] = None,
    delay: Annotated[float | None, typer.Option("--delay", help="Fraction of ARM calls held back.")] = None,
    delay_seconds: Annotated[float | None, typer.Option("--delay-seconds", help="How long (s).")] = None,
    write_budget: Annotated[
        int | None, typer.Option("--write-budget", help="ARM writes per principal per window (0 = off).")
    ] = None,
    per_seconds: Annotated[float | None, typer.Option("--per-seconds", help="The write window (Azure: 3600).")] = None,
    sas_resets: Annotated[
        float | None, typer.Option("--sas-resets", help="Fraction of blob reads reset midway.")
    ] = None,
    sas_lifetime: Annotated[
        float | None, typer.Option("--sas-lifetime", help="A SAS stops working N s after its first use.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (reproducible faults).")] = None,
) -> None:
    """Merge these settings into the current faults (others stay as they are)."""
    values = {
        "arm_429": arm_429,
        "arm_429_retry_after": retry_after,
        "arm_5xx": arm_5xx,
        "arm_5xx_status": status,
        "arm_delay": delay,
        "arm_delay_seconds": delay_seconds,
        "write_budget": write_budget,
        "write_budget_seconds": per_seconds,
        "sas_resets": sas_resets,
        "sas_lifetime_seconds": sas_lifetime,
        "seed": seed,
    }
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        _fail("give at least one setting (see --help)")
    try:
        _echo_json(_admin().faults(**changes)["config"])
    except AdminApiError as error:
        _fail(str(error))


@faults_app.command("show")
def faults_show() -> None:
    """Current faults, what was injected so far, and each principal's write window."""
    try:
        _echo_json(_admin().faults())
    except AdminApiError as error:
        _fail(str(error))


@faults_app.command("clear")
def faults_clear() -> None:
    """No more faults; write windows and counters reset."""
    try:
        _admin().clear_faults()
    except AdminApiError as error:
        _fail(str(error))
    typer.echo("faults cleared")


# -- Key Vault ------------------------------------------------------------------------------------


@keyvault_app.command("set")
def keyvault_set(
    vault: Annotated[str, typer.Argument(help="The vault's name (BULWARK_KEY_VAULT of the app).")],
    name: Annotated[str, typer.Argument(help="The secret's name (a policy's key_vault_secret).")],
    source: Annotated[
        Path, typer.Option("--from-file", help="File holding the value ('-' = stdin); one trailing newline is dropped.")
    ],
) -> None:
    """Store a new version of a secret, through the real Key Vault client (the value never goes on argv)."""
    stack = _stack()
    try:
        raw = typer.get_text_stream("stdin").read() if str(source) == "-" else source.read_text(encoding="utf-8")
    except OSError as error:
        _fail(f"cannot read {source}: {error.strerror or error}")
    value = raw.removesuffix("\n").removesuffix("\r")
    if not value:
        _fail("the secret value is empty")
    settings = AzureSettings.for_local_stack(stack)
    url = vault_url(settings, vault)
    assert settings.static_token is not None
    client = SecretClient(
        url,
        StaticTokenCredential(settings.static_token),
        connection_verify=stack.ca_bundle,
        verify_challenge_resource=False,  # a loopback host cannot match the challenge's vault.azure.net
    )
    try:
        with client:
            secret = client.set_secret(name, value)
    except (AzureError, ValueError) as error:
        _fail(f"could not set {name} in vault {vault}: {str(error).splitlines()[0]}")
    typer.echo(f"set {name} in vault {vault} (version {secret.properties.version}) at {url}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
