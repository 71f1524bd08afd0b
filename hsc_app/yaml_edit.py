"""Read and set the one-line values of a YAML file's keys in its text, keeping everything else.

PyYAML keeps no comments, so loading and dumping a file would lose them and its layout.
Here the nodes' positions locate each value in the text and only that value's line changes:
the user's other keys, comments and blank lines stay as they were (ruamel.yaml does this
too, at the cost of a dependency for one command).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hsc.errors import HscError

KeyPath = tuple[str, ...]
INDENT = 2  # of a section the edit has to create


@dataclass(frozen=True)
class Leaf:
    """A key's one-line value: as YAML reads it, as written, and written with the rest of its line."""

    value: Any
    text: str  # e.g. "0.0002"
    tail: str  # the value and its line's comment, e.g. "1   # VSE-infinity's value"


def dotted(path: KeyPath) -> str:
    return ".".join(path)


def leaves(text: str, source: str) -> dict[KeyPath, Leaf]:
    """Every scalar value under a mapping of ``text``, by its key path (sequences are skipped)."""
    found: dict[KeyPath, Leaf] = {}

    def walk(node: Node, path: KeyPath) -> None:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                walk(value, (*path, str(key.value)))
        elif isinstance(node, ScalarNode) and path:
            span = text[node.start_mark.index:node.end_mark.index]
            tail = text[node.start_mark.index:_line_end(text, node.end_mark.index)].rstrip()
            found[path] = Leaf(yaml.safe_load(span) if span else None, span, tail)

    root = _compose(text, source)
    if root is not None:
        walk(root, ())
    return found


def set_values(text: str, tails: dict[KeyPath, str], source: str) -> str:
    """``text`` with each key of ``tails`` set to its one-line tail (value and optional comment),
    replacing the rest of that key's line; a missing key (and any missing section above it) is
    added at the end of its section."""
    for path, tail in tails.items():
        text = _set(text, path, tail, source)
    return text


def _set(text: str, path: KeyPath, tail: str, source: str) -> str:
    node: Optional[Node] = _compose(text, source)
    if node is None:  # an empty file, or comments only
        return _insert(text, len(text), _block(path, tail, 0))
    key_node: Optional[ScalarNode] = None
    depth = 0
    while depth < len(path) and isinstance(node, MappingNode):
        if node.flow_style:
            raise HscError(f"{source}: line {node.start_mark.line + 1}: '{dotted(path)}' is inside a {{...}} "
                           f"mapping; write that mapping as indented lines, or set the key by hand")
        child = next(((k, v) for k, v in node.value if str(k.value) == path[depth]), None)
        if child is None:
            break
        key_node, node = child
        depth += 1
    if depth == len(path):
        return _replace(text, node, path, tail, source)
    if isinstance(node, MappingNode):
        column = node.value[0][0].start_mark.column
        return _insert(text, _subtree_end(text, node), _block(path[depth:], tail, column))
    if key_node is not None and _is_empty(node):  # `section:` with nothing under it yet
        column = key_node.start_mark.column + INDENT
        return _insert(text, _line_end(text, key_node.end_mark.index) + 1, _block(path[depth:], tail, column))
    line = node.start_mark.line + 1
    raise HscError(f"{source}: line {line}: '{dotted(path[:depth])}' holds a value, not the section "
                   f"'{dotted(path)}' needs; fix it by hand")


def _replace(text: str, node: Node, path: KeyPath, tail: str, source: str) -> str:
    one_line = isinstance(node, ScalarNode) and node.style not in ("|", ">") \
        and node.start_mark.line == node.end_mark.line
    if not one_line:
        raise HscError(f"{source}: line {node.start_mark.line + 1}: '{dotted(path)}' is not a one-line value; "
                       f"set it by hand")
    start = node.start_mark.index
    if _is_empty(node):  # `key:` alone: the value goes after a space
        tail = " " + tail
    return text[:start] + tail + text[_line_end(text, node.end_mark.index):]


def _block(path: KeyPath, tail: str, column: int) -> str:
    """Indented lines creating ``path`` (sections, then the key) with its tail."""
    lines = [" " * (column + INDENT * i) + f"{key}:" for i, key in enumerate(path[:-1])]
    lines.append(" " * (column + INDENT * (len(path) - 1)) + f"{path[-1]}: {tail}")
    blank = "\n" if column == 0 and len(path) > 1 else ""  # a new top-level section: set apart
    return blank + "\n".join(lines) + "\n"


def _insert(text: str, at: int, block: str) -> str:
    if at >= len(text):
        return text + ("\n" if text and not text.endswith("\n") else "") + block
    return text[:at] + block + text[at:]


def _subtree_end(text: str, node: Node) -> int:
    """Where the line after a block mapping's last value starts (its trailing comment stays with it)."""
    while isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, MappingNode) else last
    return _line_end(text, node.end_mark.index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end == -1 else end


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.start_mark.index == node.end_mark.index


def _compose(text: str, source: str) -> Optional[Node]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise HscError(f"{source}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if root is not None and not isinstance(root, MappingNode):
        raise HscError(f"{source}: expected a mapping of sections at the top level")
    return root
