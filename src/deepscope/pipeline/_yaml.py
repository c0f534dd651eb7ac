"""YAML with line numbers: ``yaml.safe_load`` for the values, ``yaml.compose`` for where they are.

The pipeline spec is composed once into PyYAML's node tree, whose marks give the line of every key
and item, and the plain Python values are constructed from that tree exactly as ``yaml.safe_load``
would (no arbitrary objects, ever). Validation errors then point at the line to fix.

The text passes :func:`deepscope.io.yamlsafe.check_yaml` first (size, nesting, node count with
aliases expanded), and marks are recorded once per distinct node (an alias's items take the lines
of its anchor), so reading takes time and memory linear in the text, whatever its aliases.
"""

from __future__ import annotations

from typing import Any

from deepscope.errors import ConfigError

__all__ = ["Marks", "load_with_marks"]

#: A path into the document: mapping keys and sequence indices, e.g. ``("steps", 1, "segment")``.
Path_ = tuple[Any, ...]


class Marks:
    """Line numbers (1-based) of the keys and items of a YAML document, by path.

    Examples
    --------
    >>> data, marks = load_with_marks("a: 1\\nb:\\n  - x\\n  - {c: 2}\\n", source="p.yaml")
    >>> marks.line(("b", 1, "c")), marks.where(("b", 0))
    (4, 'p.yaml, line 3')

    An alias's items have the lines of its anchor, where they are written:

    >>> data, marks = load_with_marks("a: &x\\n  k: 1\\nb: *x\\n")
    >>> marks.line(("b",)), marks.line(("b", "k"))
    (3, 2)
    """

    def __init__(self, lines: dict[Path_, int], source: str, aliases: dict[Path_, Path_] | None = None) -> None:
        self._lines = lines
        self._aliases = aliases or {}
        self.source = source

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one (inside an alias: in its anchor)."""
        p = tuple(path)
        # Each redirect into an anchor consumes at least one item of the path, so this ends.
        for _ in range(len(p) + 1):
            for k in range(len(p), -1, -1):
                pre = p[:k]
                if k < len(p) and pre in self._aliases:
                    p = self._aliases[pre] + p[k:]
                    break
                if pre in self._lines:
                    return self._lines[pre]
            else:
                return None
        return None

    def where(self, path: Path_) -> str:
        """``"<source>, line <n>"`` for messages."""
        n = self.line(path)
        return f"{self.source}, line {n}" if n is not None else self.source


_MERGE = "tag:yaml.org,2002:merge"


def _merge_sources(value: Any) -> list[Any]:
    """The mappings a merge key's value names (one mapping or a list of them)."""
    import yaml

    return list(value.value) if isinstance(value, yaml.SequenceNode) else [value]


def _mapping_items(node: Any, path: Path_, source: str, keyer: Any) -> list[tuple[Any, Any, int]]:
    """``(key, value node, line)`` of a mapping as safe_load sees it: its own keys, then merged ones (``<<``)."""
    import yaml

    def key_of(key_node: Any) -> Any:
        # keys constructed exactly as safe_load does (1 -> int, "1" -> str); complex keys -> None
        return keyer.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None

    out: list[tuple[Any, Any, int]] = []
    seen: dict[Any, int] = {}
    merges: list[Any] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merges += _merge_sources(value_node)
            continue
        key, line = key_of(key_node), key_node.start_mark.line + 1
        if key in seen and key is not None:
            shown = ".".join(str(p) for p in path + (key,))
            raise ConfigError(f"{source}, line {line}: duplicate key {shown!r} (first at line {seen[key]}); "
                              "each key may appear once in a mapping")
        seen[key] = line
        out.append((key, value_node, line))
    # merged keys: a key of the mapping itself wins, then the first mapping merged (its own merges first)
    todo, done = merges[::-1], set()
    while todo:
        m = todo.pop()
        if not isinstance(m, yaml.MappingNode) or id(m) in done:
            continue  # not a mapping: construction names the error
        done.add(id(m))
        nested: list[Any] = []
        for key_node, value_node in m.value:
            if key_node.tag == _MERGE:
                nested += _merge_sources(value_node)
                continue
            key = key_of(key_node)
            if key is not None and key not in seen:
                seen[key] = key_node.start_mark.line + 1
                out.append((key, value_node, seen[key]))
        todo += nested[::-1]
    return out


def _walk(root: Any, source: str) -> tuple[dict[Path_, int], dict[Path_, Path_]]:
    """Lines by path, and aliases (path -> path of the anchor's first visit); each node is walked once."""
    import yaml

    keyer = yaml.SafeLoader("")
    lines: dict[Path_, int] = {(): root.start_mark.line + 1}
    aliases: dict[Path_, Path_] = {}
    first: dict[int, Path_] = {id(root): ()}
    todo: list[tuple[Any, Path_]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if isinstance(node, yaml.MappingNode):
            items = _mapping_items(node, path, source, keyer)
        elif isinstance(node, yaml.SequenceNode):
            items = [(i, item, item.start_mark.line + 1) for i, item in enumerate(node.value)]
        else:
            continue
        children = []
        for key, child, line in items:
            p = path + (key,)
            lines[p] = line
            if isinstance(child, yaml.CollectionNode):
                if id(child) in first:
                    aliases[p] = first[id(child)]
                else:
                    first[id(child)] = p
                    children.append((child, p))
        todo += children[::-1]  # in the order of the text
    return lines, aliases


def load_with_marks(text: str, *, source: str = "<string>") -> tuple[Any, Marks]:
    """Parse YAML text safely and return the data with the line of every key and item.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        Name used in messages (the file's path).

    Returns
    -------
    data : object
        As :func:`yaml.safe_load` returns it.
    marks : Marks
        Line numbers by path.

    Raises
    ------
    deepscope.errors.ConfigError
        If the text is not valid YAML (the message gives the line and column), is nested deeper
        than :data:`deepscope.io.yamlsafe.MAX_DEPTH`, has an alias inside its own anchor, or a
        mapping repeats a key.
    deepscope.errors.LimitError
        If the text is over ``limits().yaml_bytes`` or, aliases expanded, ``limits().yaml_nodes``.
    """
    from deepscope.io.yamlsafe import load_yaml

    found: list[tuple[dict[Path_, int], dict[Path_, Path_]]] = []
    data = load_yaml(text, source=source, on_node=lambda node: found.append(_walk(node, source)))
    lines, aliases = found[0] if found else ({}, {})
    return data, Marks(lines, source, aliases)
