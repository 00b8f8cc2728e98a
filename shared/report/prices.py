"""The price table the cost estimates use: a JSON file with its date, region, currency and source.

The default is ``prices.json`` beside this module (the app uses it; replace it before deploying for
other prices); the CLI takes another file of the same shape with ``--prices``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.core.errors import ConfigError

__all__ = ["DEFAULT_PRICES", "PriceTable", "TierPrices", "load_prices"]

DEFAULT_PRICES = Path(__file__).with_name("prices.json")


@dataclass(frozen=True)
class TierPrices:
    gb_month: float
    write_per_10k: float
    read_per_10k: float
    retrieval_gb: float = 0.0


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    region: str
    currency: str
    source: str
    snapshot_gb_month: float
    tiers: Mapping[str, TierPrices]
    transfer_same_continent_gb: float
    transfer_intercontinental_gb: float

    def tier(self, name: str) -> TierPrices:
        try:
            return self.tiers[name]
        except KeyError:
            raise ConfigError(
                f"the price table has no access tier '{name}'", hint=f"use one of {', '.join(sorted(self.tiers))}"
            ) from None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the price table") -> PriceTable:
        try:
            tiers = {
                str(name): TierPrices(
                    gb_month=_price(values, "gb_month"),
                    write_per_10k=_price(values, "write_per_10k"),
                    read_per_10k=_price(values, "read_per_10k"),
                    retrieval_gb=_price(values, "retrieval_gb", 0.0),
                )
                for name, values in dict(doc["tiers"]).items()
            }
            transfer = doc["transfer_gb"]
            table = cls(
                as_of=str(doc["as_of"]),
                region=str(doc["region"]),
                currency=str(doc["currency"]),
                source=str(doc["source"]),
                snapshot_gb_month=_price(doc, "snapshot_gb_month"),
                tiers=tiers,
                transfer_same_continent_gb=_price(transfer, "same_continent"),
                transfer_intercontinental_gb=_price(transfer, "intercontinental"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where} is incomplete or malformed: {exc}",
                hint="copy shared/report/prices.json and change only the numbers",
            ) from None
        if not tiers:
            raise ConfigError(f"{where} names no access tier", hint="keep at least 'hot'")
        return table


def load_prices(path: Path | None = None) -> PriceTable:
    source = path or DEFAULT_PRICES
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the price table {source} does not exist", hint="pass an existing file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the price table {source}: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"the price table {source} is not a JSON object")
    return PriceTable.from_dict(doc, f"the price table {source}")


def _price(values: Mapping[str, Any], name: str, default: float | None = None) -> float:
    raw = values.get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError(f"'{name}' must be a price (a number >= 0)")
    return float(raw)
