"""A Sieve script, parsed by sievelib and turned into plain nodes.

sievelib checks the grammar, the arguments each command takes and that
extensions are required before use; this module gives the interpreter
values it can use directly: strings unquoted, lists as lists, numbers with
their K/M/G applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from sievelib.parser import Parser

# What the interpreter implements; `require` of anything else is an error.
SUPPORTED = ("fileinto", "envelope", "imap4flags", "vacation", "copy", "mailbox")
MAX_SCRIPT = 256 * 1024


class SieveError(ValueError):
    """A script that can't be used; the text says where and why."""


@dataclass
class Node:
    name: str
    tags: dict = field(default_factory=dict)     # ":days" -> 3, ":copy" -> True
    args: dict = field(default_factory=dict)     # "mailbox" -> "Work", "key-list" -> [...]
    tests: list = field(default_factory=list)    # a test's subtests (allof, anyof, not) / an if's test
    children: list = field(default_factory=list)


def _string(raw: str) -> str:
    if raw.startswith("text:"):
        # A multi-line string: the lines after "text:", up to a line holding
        # only ".", with a doubled leading dot made single (RFC 5228 2.4.2).
        lines = raw.replace("\r\n", "\n").split("\n")[1:]
        while lines and lines[-1] in (".", ""):
            lines.pop()
        return "\n".join(line[1:] if line.startswith("..") else line for line in lines)
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        out, chars = [], iter(raw[1:-1])
        for c in chars:
            out.append(next(chars, "") if c == "\\" else c)      # \x is x (RFC 5228 2.4.2)
        return "".join(out)
    return raw


def _number(raw: str) -> int:
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(raw[-1:].upper(), 1)
    return int(raw[:-1] if scale > 1 else raw) * scale


def _value(raw):
    if isinstance(raw, list):
        return [_value(v) for v in raw]
    if hasattr(raw, "name"):                  # a test
        return _node(raw)
    text = str(raw)
    if text[:1].isdigit():
        return _number(text)
    return _string(text)


def _node(cmd) -> Node:
    node = Node(cmd.name.lower())
    for key, raw in cmd.arguments.items():
        if key == "test":
            node.tests = [_node(raw)]
        elif key == "tests":
            node.tests = [_node(t) for t in raw]
        elif isinstance(raw, str) and raw.startswith(":"):
            tag = raw.lower()
            extra = cmd.extra_arguments.get(key)
            node.tags[tag] = _value(extra) if extra is not None else True
            if key in ("match-type", "address-part", "comparator") and tag != ":comparator":
                node.args[key] = tag    # sievelib names the slot: keep what filled it
        else:
            node.args[key] = _value(raw)
    node.children = [_node(c) for c in getattr(cmd, "children", [])]
    return node


@lru_cache(maxsize=512)
def compile_script(text: str) -> tuple[Node, ...]:
    """Parse a script (cached by its text): the top-level commands, or SieveError."""
    if len(text) > MAX_SCRIPT:
        raise SieveError(f"Script is larger than {MAX_SCRIPT} bytes")
    parser = Parser()
    try:
        ok = parser.parse(text)
        if ok:
            nodes = tuple(_node(c) for c in parser.result)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as e:
        raise SieveError(f"Syntax error ({e.__class__.__name__})") from None
    if not ok:
        raise SieveError(getattr(parser, "error", None) or "Syntax error")
    # sievelib 1.6 drops a last command left without its ";" (or an "else"
    # without a block) and reports success; it is still being built here.
    if getattr(parser, "_Parser__curcommand", None) is not None:
        raise SieveError("Unterminated command at the end of the script")
    for node in nodes:
        if node.name == "require":
            wanted = node.args.get("capabilities")
            for ext in wanted if isinstance(wanted, list) else [wanted]:
                if ext not in SUPPORTED:
                    raise SieveError(f"Unsupported extension: {ext}")
    return nodes
