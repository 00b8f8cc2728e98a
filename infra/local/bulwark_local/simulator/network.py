"""Microsoft.Network, the minimum a VM needs: virtual networks, subnets, network interfaces.

Stored as given, with the defaults Azure fills in (shapes from the recorded VM session): PUT answers
201 (create) or 200 (update) with ``provisioningState: Updating`` and only ``Azure-AsyncOperation``
(``.../Microsoft.Network/locations/{loc}/operations/{id}``, polled as ``{"status"}``); GET gives the
resource with an ``etag``. Nothing is validated beyond the resource group: a VM may name a NIC that
does not exist. A NIC's IP configurations get what Azure fills in (id, etag, type, a private IPv4
address from 10.0.0.4 on, the first one primary) and its DNS settings an internal domain suffix, so
the bodies have the recorded keys; nothing routes.
"""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Response

from .arm import Context, Route, json_response, lro_headers, not_found, route
from .compute import location_key
from .state import JsonDict, StateStore

NAMESPACE = "Microsoft.Network"
_RG = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Network"

_DEFAULTS: dict[str, dict[str, Any]] = {
    "virtualNetworks": {"subnets": [], "virtualNetworkPeerings": [], "enableDdosProtection": False},
    "subnets": {
        "delegations": [],
        "privateEndpointNetworkPolicies": "Enabled",
        "privateLinkServiceNetworkPolicies": "Enabled",
    },
    "networkInterfaces": {
        "ipConfigurations": [],
        "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
        "enableAcceleratedNetworking": False,
        "vnetEncryptionSupported": False,
        "enableIPForwarding": False,
        "hostedWorkloads": [],
        "tapConfigurations": [],
        "nicType": "Standard",
    },
}


class NetworkProvider:
    def __init__(self, state: StateStore) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        vnet = _RG + "/virtualNetworks/{name}"
        subnet = vnet + "/subnets/{child}"
        nic = _RG + "/networkInterfaces/{name}"
        return [
            route("PUT", vnet, lambda c: self._put(c, "virtualNetworks")),
            route("GET", vnet, lambda c: self._get(c, "virtualNetworks")),
            route("PUT", subnet, lambda c: self._put(c, "subnets")),
            route("GET", subnet, lambda c: self._get(c, "subnets")),
            route("PUT", nic, lambda c: self._put(c, "networkInterfaces")),
            route("GET", nic, lambda c: self._get(c, "networkInterfaces")),
        ]

    def _id(self, ctx: Context, kind: str) -> str:
        base = f"{ctx.resource_group_id()}/providers/{NAMESPACE}"
        if kind == "subnets":
            return f"{base}/virtualNetworks/{ctx.params['name']}/subnets/{ctx.params['child']}"
        return f"{base}/{kind}/{ctx.params['name']}"

    def _put(self, ctx: Context, kind: str) -> Response:
        group = ctx.require_resource_group()
        body = ctx.json()
        resource_id = self._id(ctx, kind)
        existing = self._state.get("resources", resource_id)
        properties = dict(_DEFAULTS[kind])
        if existing:
            properties.update(existing["doc"]["properties"])
        properties.update(body.get("properties") or {})
        if kind != "subnets":
            properties.setdefault("resourceGuid", str(uuid.uuid4()))
        if kind == "networkInterfaces":
            _fill_nic(properties, resource_id)
        properties["provisioningState"] = "Succeeded"
        doc: JsonDict = {
            "name": ctx.params.get("child") or ctx.params["name"],
            "id": resource_id,
            "etag": f'W/"{uuid.uuid4()}"',
            "type": f"{NAMESPACE}/virtualNetworks/subnets" if kind == "subnets" else f"{NAMESPACE}/{kind}",
            "properties": properties,
        }
        location = body.get("location") or group["location"]
        if kind != "subnets":
            doc["location"] = location
            if body.get("tags"):
                doc["tags"] = body["tags"]
        self._state.put("resources", resource_id, {"doc": doc, "private": {}})
        urls = ctx.operations.start(
            ctx, namespace=NAMESPACE, collection="operations", location=location_key(location), with_p=False
        )
        shown = dict(doc, properties=dict(properties, provisioningState="Updating"))
        return json_response(shown, 200 if existing else 201, lro_headers(ctx, urls, location=False))

    def _get(self, ctx: Context, kind: str) -> Response:
        ctx.require_resource_group()
        record = self._state.get("resources", self._id(ctx, kind))
        if record is None:
            raise not_found(
                f"{NAMESPACE}/{kind}", ctx.params.get("child") or ctx.params["name"], ctx.params["resource_group"]
            )
        return json_response(record["doc"])


def _fill_nic(properties: JsonDict, nic_id: str) -> None:
    """What Azure adds to a NIC's IP configurations and DNS settings (the recorded NIC's keys)."""
    configurations = []
    for index, given in enumerate(properties.get("ipConfigurations") or []):
        name = given.get("name") or f"ipconfig{index + 1}"
        props = {
            "provisioningState": "Succeeded",
            "privateIPAddress": f"10.0.0.{4 + index}",  # Azure keeps .0-.3 of a subnet for itself
            "privateIPAllocationMethod": "Dynamic",
            "primary": index == 0,
            "privateIPAddressVersion": "IPv4",
        }
        props.update(given.get("properties") or {})
        configurations.append(
            {
                "name": name,
                "id": f"{nic_id}/ipConfigurations/{name}",
                "etag": f'W/"{uuid.uuid4()}"',
                "type": f"{NAMESPACE}/networkInterfaces/ipConfigurations",
                "properties": props,
            }
        )
    properties["ipConfigurations"] = configurations
    dns = dict(properties.get("dnsSettings") or {})
    dns.setdefault("dnsServers", [])
    dns.setdefault("appliedDnsServers", [])
    dns.setdefault(
        "internalDomainNameSuffix", f"{uuid.uuid5(uuid.NAMESPACE_URL, nic_id.lower()).hex}.internal.cloudapp.net"
    )
    properties["dnsSettings"] = dns
