"""BODY[section] and BINARY[section] byte ranges, from the stored part tree.

The tree is Part.to_json(): h/b/e offsets (header start, body start, end),
t (type), x (transfer encoding), c (children of a multipart), m (the
message inside a message/rfc822 part).
"""
from __future__ import annotations


def resolve(tree: dict, numbers: list[int]) -> dict | None:
    node = tree
    for i, n in enumerate(numbers):
        if i > 0:
            if "m" in node:
                node = node["m"]
            elif "c" not in node:
                return None
        if "c" in node:
            kids = node["c"]
            if not 1 <= n <= len(kids):
                return None
            node = kids[n - 1]
        elif n != 1:
            return None
    return node


def section_range(tree: dict, numbers: list[int], keyword: str | None):
    """(start, end) of the section's bytes, or None if it does not exist.

    keyword: None (the part body / whole message), HEADER, HEADER.FIELDS[.NOT]
    (the header block; the caller filters it), TEXT, MIME.
    """
    node = resolve(tree, numbers) if numbers else tree
    if node is None:
        return None
    if keyword is None:
        if not numbers:
            return (tree["h"], tree["e"])
        return (node["b"], node["e"])
    if keyword == "MIME":
        return (node["h"], node["b"]) if numbers else None
    if numbers:
        # HEADER/TEXT of a part: only of a message/rfc822 part's embedded message.
        if "m" not in node:
            return None
        node = node["m"]
    if keyword.startswith("HEADER"):
        return (node["h"], node["b"])
    if keyword == "TEXT":
        return (node["b"], node["e"])
    return None


def filter_header_fields(block: bytes, names: list[str], exclude: bool) -> bytes:
    """Keep (or drop) the named fields of a header block, with their folding.

    The result ends with the blank line, as BODY[HEADER.FIELDS] does.
    """
    wanted = {n.lower() for n in names}
    out = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("latin-1").lower() if b":" in line else None
        keep = name is not None and ((name in wanted) != exclude)
        if keep:
            out.append(line)
    out.append(b"\r\n")
    return b"".join(out)
