"""YAML with line numbers: ``yaml.safe_load`` for the values, ``yaml.compose`` for where they are.

The pipeline spec is read twice from the same text: once into plain Python values with
``yaml.safe_load`` (no arbitrary objects, ever), once into PyYAML's node tree, whose marks give
the line of every key and item. Validation errors then point at the line to fix.
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
    """

    def __init__(self, lines: dict[Path_, int], source: str) -> None:
        self._lines = lines
        self.source = source

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return self._lines.get((), None)

    def where(self, path: Path_) -> str:
        """``"<source>, line <n>"`` for messages."""
        n = self.line(path)
        return f"{self.source}, line {n}" if n is not None else self.source


def _walk(node: Any, path: Path_, out: dict[Path_, int], source: str, loader: Any) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            # keys constructed exactly as safe_load does (1 -> int, "1" -> str); complex keys -> None
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key in seen and key is not None:
                shown = ".".join(str(p) for p in path + (key,))
                raise ConfigError(f"{source}, line {line}: duplicate key {shown!r} (first at line {seen[key]}); "
                                  "each key may appear once in a mapping")
            seen[key] = line
            out[path + (key,)] = line
            _walk(value_node, path + (key,), out, source, loader)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), out, source, loader)


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
        If the text is not valid YAML (the message gives the line and column), or a mapping
        repeats a key.
    """
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML ({problem}); check the indentation and quoting there") from None
    lines: dict[Path_, int] = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _walk(node, (), lines, source, yaml.SafeLoader(""))
    return data, Marks(lines, source)
