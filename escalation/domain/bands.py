"""Customer value bands: the report, the risk model and the brief group customers by lifetime value, so
figures compare like with like without exposing anyone's exact value."""

from __future__ import annotations

from decimal import Decimal

# (lower bound inclusive, name), ascending. Names are part of the events and the report.
VALUE_BANDS: tuple[tuple[Decimal, str], ...] = (
    (Decimal("0"), "under_1k"),
    (Decimal("1000"), "1k_10k"),
    (Decimal("10000"), "10k_100k"),
    (Decimal("100000"), "100k_plus"),
)


def value_band(lifetime_value: Decimal) -> str:
    """The band a customer's lifetime value falls in (a negative value counts as the lowest band)."""
    name = VALUE_BANDS[0][1]
    for floor, band in VALUE_BANDS:
        if lifetime_value >= floor:
            name = band
    return name
