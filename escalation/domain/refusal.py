"""How a refused payload is put in words: each offending field, why, and the limit and size where there is
one, never the value itself. Pure pydantic, shared by the data converter, the settings and the policy files."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


def shape(model: type[BaseModel]) -> str:
    """A payload model's fields as a caller writes them, optional ones marked: '{actor, note?}'."""
    return (
        "{" + ", ".join(name + ("" if field.is_required() else "?") for name, field in model.model_fields.items()) + "}"
    )


_JSON_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
}


def describe(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """'customer.time_zone: 'Mars/Olympus' is not an IANA time zone ...; amount: ...'. A payload that is not
    an object at all says which object `model` expects: 'AcknowledgeInput: must be an object {actor, note?},
    not null'."""
    parts = []
    for e in err.errors(include_url=False):
        if not e["loc"] and e["type"] == "model_type" and model is not None:
            got = _JSON_KINDS.get(type(e["input"]), "something else")
            parts.append(f"must be an object {shape(model)}, not {got}")
            continue
        where = ".".join(str(p) for p in e["loc"]) or err.title
        parts.append(f"{where}: {_reason(e)}")
    return f"{err.title}: " + "; ".join(parts) if parts else str(err)


def _reason(e: Any) -> str:
    """Why one field was refused, with the limit and the size of what was sent, never the value itself (it
    may be a megabyte, or someone's personal data)."""
    kind, ctx, given = e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field (check the spelling)"
    if kind in ("string_too_long", "too_long") and "max_length" in ctx:
        unit = "characters" if isinstance(given, str) else "items"
        size = f"{len(given):,} {unit}, over" if hasattr(given, "__len__") else "over"
        return f"is {size} the limit of {ctx['max_length']:,}"
    if kind in ("string_too_short", "too_short") and "min_length" in ctx:
        return "must not be empty" if ctx["min_length"] == 1 else f"must have at least {ctx['min_length']}"
    if kind == "decimal_max_digits":
        return f"has more than {ctx['max_digits']} digits (at most {'9' * (ctx['max_digits'] - 2)}.99)"
    if kind == "decimal_whole_digits":
        return f"has more than {ctx['whole_digits']} digits before the decimal point"
    if kind == "decimal_max_places":
        return f"has more than {ctx['decimal_places']} decimal places"
    return e["msg"].removeprefix("Value error, ")
