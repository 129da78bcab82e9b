"""Merge fields: `{{first_name}}`, `{{last_name}}`, `{{name}}`, `{{company}}`,
`{{email}}` in a campaign's subject and body.

A tiny renderer of its own, not a template engine: one pass that replaces each
field by the contact's value as plain text, so a value that itself looks like
`{{email}}` or `{% ... %}` stays as it is, and a template can do nothing but
name fields. An unknown or malformed field is refused when the campaign is
made, not discovered while sending."""
from __future__ import annotations

import re

FIELDS = ("first_name", "last_name", "name", "company", "email")
_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(ValueError):
    """The template names a field there is none of, or has a stray brace pair."""


def check(template: str, what: str = "template") -> None:
    """TemplateError naming every unknown field and any stray `{{` or `}}`."""
    unknown = sorted({m[1] for m in _FIELD.finditer(template)} - set(FIELDS))
    if unknown:
        raise TemplateError(f"the {what} has unknown merge field{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join('{{' + u + '}}' for u in unknown)}; known: "
                            f"{', '.join('{{' + f + '}}' for f in FIELDS)}")
    rest = _FIELD.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"the {what} has a malformed merge field (a '{{{{' or '}}}}' that is not "
                            f"{{{{field}}}}); known: {', '.join('{{' + f + '}}' for f in FIELDS)}")


def values_of(contact: dict, address: str) -> dict[str, str]:
    """The merge values of a contact (as Crm.get_contact returns it), sending to address."""
    first = contact.get("first_name") or ""
    last = contact.get("last_name") or ""
    name = contact.get("name") or " ".join(p for p in (first, last) if p)
    company = (contact.get("company") or {}).get("name") or ""
    return {"first_name": first, "last_name": last, "name": name, "company": company, "email": address}


def render(template: str, values: dict[str, str], *, one_line: bool = False) -> str:
    """template with each field replaced by its value, as text. one_line (a
    header): line breaks in values become spaces, so no value can add a header."""
    def value(match) -> str:
        text = str(values.get(match[1], "") or "")
        if one_line:        # (and no control characters in a header)
            text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        return text
    out = _FIELD.sub(value, template)
    if one_line:
        out = " ".join(out.replace("\r", " ").replace("\n", " ").split(" "))
    return out
