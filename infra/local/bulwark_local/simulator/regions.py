"""Azure's public regions (names as ARM spells them in ``location``), and the VM sizes the
simulator offers in each. ARM refuses a resource in a region it does not know with 400
``LocationNotAvailableForResourceType``; the simulator does the same, so a restore into a
mistyped region fails the way it would in Azure."""

from __future__ import annotations

__all__ = ["REGIONS", "VM_SIZES", "known_region", "region_key"]

REGIONS = frozenset(
    [
        "australiacentral",
        "australiacentral2",
        "australiaeast",
        "australiasoutheast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "brazilsoutheast",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "chilecentral",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "francesouth",
        "germanynorth",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "koreasouth",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "norwaywest",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southafricawest",
        "southcentralus",
        "southeastasia",
        "southindia",
        "spaincentral",
        "swedencentral",
        "swedensouth",
        "switzerlandnorth",
        "switzerlandwest",
        "uaecentral",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westindia",
        "westus",
        "westus2",
        "westus3",
    ]
)

# name, cores, memory MiB, max data disks: a few common sizes, offered in every region here.
VM_SIZES = (
    ("Standard_B2s", 2, 4096, 4),
    ("Standard_D2s_v5", 2, 8192, 4),
    ("Standard_D4s_v5", 4, 16384, 8),
    ("Standard_D8s_v5", 8, 32768, 16),
    ("Standard_E4s_v5", 4, 32768, 8),
    ("Standard_F4s_v2", 4, 8192, 8),
)


def region_key(location: str) -> str:
    """``West Europe`` and ``westeurope`` name the same region."""
    return location.replace(" ", "").lower()


def known_region(location: str) -> bool:
    return region_key(location) in REGIONS
