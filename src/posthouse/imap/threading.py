"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 section 2.2), as pure functions.

Messages come in mailbox order; a thread is a tree of Nodes, rendered in the
THREAD response syntax by render()."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..mime.subject import base_subject

_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass
class ThreadMessage:
    number: int            # sequence number or UID, as the client asked
    date: float            # sent date, or the internal date without a usable Date:
    subject: str           # decoded Subject
    message_id: str
    in_reply_to: str
    references: str


@dataclass(eq=False)
class Node:
    message: ThreadMessage | None = None
    order: int = 0                      # mailbox position: ties in date go by it
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    def sort_key(self):
        """A message's sent date; a dummy's is that of its first (earliest) child."""
        node = self
        while node.message is None and node.children:
            node = node.children[0]
        return (node.message.date, node.order) if node.message else (0.0, 0)

    def adopt(self, child: Node) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def is_ancestor_of(self, other: Node) -> bool:
        node = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False


def _ids(text: str) -> list[str]:
    return _MSG_ID.findall(text or "")


def ordered_subject(messages: list[ThreadMessage]) -> list[Node]:
    """Sort by base subject then sent date; one thread per base subject, its first
    message the root and every later one a child of it; threads by their first date."""
    keyed = [(base_subject(m.subject)[0], m.date, i, m) for i, m in enumerate(messages)]
    keyed.sort(key=lambda k: (k[0].encode("utf-8", "surrogatepass").upper(), k[1], k[2]))
    threads: list[Node] = []
    current_subject = None
    for subject, _date, i, m in keyed:
        key = subject.encode("utf-8", "surrogatepass").upper()
        node = Node(m, i)
        if threads and key == current_subject:
            threads[-1].adopt(node)
        else:
            threads.append(node)
            current_subject = key
    threads.sort(key=Node.sort_key)
    return threads


def references(messages: list[ThreadMessage]) -> list[Node]:
    by_id: dict[str, Node] = {}
    nodes: list[Node] = []

    def container(msg_id: str) -> Node:
        node = by_id.get(msg_id)
        if node is None:
            node = by_id[msg_id] = Node()
            nodes.append(node)
        return node

    # (1) link each message, and the chain its References name, into containers
    for i, m in enumerate(messages):
        refs = _ids(m.references) or _ids(m.in_reply_to)[:1]
        own = _ids(m.message_id)[:1]
        key = own[0] if own else None
        if key is None or (key in by_id and by_id[key].message is not None):
            key = f"\0unique-{i}"       # missing or duplicate Message-ID: a thread of its own
        refs = [r for r in refs if r != key]
        chain = [container(r) for r in refs]
        for parent, child in zip(chain, chain[1:]):
            if child.parent is None and parent is not child and not child.is_ancestor_of(parent):
                parent.adopt(child)
        node = container(key)
        node.message, node.order = m, i
        if node.parent is not None:          # presumed from other References: ours decides
            node.parent.children.remove(node)
            node.parent = None
        if chain and not node.is_ancestor_of(chain[-1]):
            chain[-1].adopt(node)
    # (2) the root set, (3) without empty containers
    roots = _prune([n for n in nodes if n.parent is None], root_level=True)
    # (4) roots by date, a dummy by its earliest child
    for node in roots:
        if node.message is None:
            node.children.sort(key=Node.sort_key)
    roots.sort(key=Node.sort_key)
    # (5) threads whose roots share a base subject are merged
    roots = _merge_by_subject(roots)
    # (6) siblings by date, all the way down
    for node in roots:
        _sort_tree(node)
    return roots


def _prune(level: list[Node], root_level: bool) -> list[Node]:
    out: list[Node] = []
    for node in level:
        node.children = _prune(node.children, root_level=False)
        for child in node.children:
            child.parent = node
        if node.message is not None:
            out.append(node)
        elif not node.children:
            continue
        elif root_level and len(node.children) > 1:
            out.append(node)
        else:
            for child in node.children:
                child.parent = node.parent if not root_level else None
            out.extend(node.children)
    return out


def _subject_of(node: Node) -> tuple[str, bool]:
    source = node if node.message is not None else (node.children[0] if node.children else None)
    if source is None or source.message is None:
        return "", False
    base, is_reply = base_subject(source.message.subject)
    return base.encode("utf-8", "surrogatepass").upper().decode("utf-8", "surrogatepass"), is_reply


def _merge_by_subject(roots: list[Node]) -> list[Node]:
    table: dict[str, Node] = {}
    for node in roots:
        subject, is_reply = _subject_of(node)
        if not subject:
            continue
        old = table.get(subject)
        if old is None or (old.message is not None and node.message is None) or \
                (old.message is not None and node.message is not None and _subject_of(old)[1] and not is_reply):
            table[subject] = node
    result: list[Node] = []
    replaced: dict[int, Node] = {}
    removed: set[int] = set()
    for node in roots:
        subject, is_reply = _subject_of(node)
        holder = table.get(subject) if subject else None
        if holder is None or holder is node:
            continue
        holder = replaced.get(id(holder), holder)
        if holder.message is None and node.message is None:
            for child in list(node.children):
                holder.adopt(child)
        elif holder.message is None:
            # (node is never a dummy here: the table holds a dummy whenever one has the subject)
            holder.adopt(node)
        elif not _subject_of(holder)[1] and is_reply:
            holder.adopt(node)
        else:
            dummy = Node()
            dummy.children = [holder, node]
            holder.parent = node.parent = dummy
            replaced[id(table[subject])] = dummy
        removed.add(id(node))
    for node in roots:
        if id(node) in removed:
            continue
        result.append(replaced.get(id(node), node))
    return result


def _sort_tree(node: Node) -> None:
    for child in node.children:
        _sort_tree(child)
    node.children.sort(key=Node.sort_key)


def render(threads: list[Node]) -> str:
    return "".join("(" + _render_chain(node) + ")" for node in threads)


def _render_chain(node: Node) -> str:
    parts = []
    while True:
        if node.message is not None:
            parts.append(str(node.message.number))
        if len(node.children) == 1 and node.message is not None:
            node = node.children[0]
            continue
        if node.children:
            branches = "".join("(" + _render_chain(c) + ")" for c in node.children)
            parts.append(branches)
        break
    return " ".join(parts)
