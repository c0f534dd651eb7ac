"""Reading a user's YAML file (pipelines, training configs, metadata defaults) within the resource limits.

A YAML file is hostile input like any other. :func:`yaml.safe_load` never builds arbitrary objects,
but it still takes whatever a document asks for: a "billion laughs" file of a few hundred bytes,
whose aliases repeat aliases, expands to billions of values for anything that walks it, and a file
of thousands of nested brackets overflows the stack of PyYAML's recursive composer. So, before
anything is built for a document, :func:`load_yaml` checks

- its size against ``limits().yaml_bytes`` (:func:`read_yaml_file` checks a file's size before
  reading it, and reads only regular files),
- its nesting against :data:`MAX_DEPTH` (a :class:`~deepscope.errors.ConfigError` naming the line),
- its node count, with every alias expanded, against ``limits().yaml_nodes``, and that no alias
  refers to a collection that contains it (a recursive structure),

in one pass over PyYAML's event stream, which is iterative and counts each anchor once (the size of
an alias is looked up, never walked), so the check itself takes time linear in the text.

Examples
--------
>>> load_yaml("a: &x [1, 2]\\nb: *x\\n")
{'a': [1, 2], 'b': [1, 2]}
>>> from deepscope.io.limits import override_limits
>>> with override_limits(yaml_nodes=6):  # 1 mapping + 2 keys + [1, 2] (3 nodes) + *x (3 more) = 9
...     load_yaml("a: &x [1, 2]\\nb: *x\\n", source="p.yaml")
Traceback (most recent call last):
...
deepscope.errors.LimitError: p.yaml, line 2, column 4: this YAML document expands to over 6 nodes ...
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from deepscope.errors import ConfigError, LimitError

__all__ = ["MAX_DEPTH", "read_yaml_file", "check_yaml", "load_yaml"]

#: Deepest nesting of mappings and lists accepted in a YAML document. A pipeline needs about 6; PyYAML
#: composes recursively, so thousands of nested brackets would otherwise end in a RecursionError.
MAX_DEPTH = 100


def _check_size(nbytes: int, source: str, what: str) -> None:
    from deepscope.io.limits import limits

    lim = limits()
    if lim.exceeded("yaml_bytes", nbytes):
        raise LimitError(f"{source}: this {what} is {nbytes:,} bytes, over the limit of {lim.yaml_bytes:,} bytes "
                         f"for a YAML file; it was not read. Check that it is the right file, or "
                         f"{lim.how_to_raise('yaml_bytes')}")


def read_yaml_file(path: str | os.PathLike[str], *, what: str = "YAML file") -> str:
    """The text of a YAML file, refused before it is read if it is not a regular file or is too large.

    Parameters
    ----------
    path : str or PathLike
        The file.
    what : str
        What the file is, for messages (``"pipeline file"``, ``"training config"``).

    Returns
    -------
    str
        The text (UTF-8).

    Raises
    ------
    FileNotFoundError
        No such file.
    deepscope.errors.InputError
        A folder, a device, a FIFO or a socket.
    deepscope.errors.LimitError
        Over ``limits().yaml_bytes`` (``DEEPSCOPE_MAX_YAML_BYTES``).
    deepscope.errors.ConfigError
        Not UTF-8 text.
    """
    from deepscope.io.limits import check_regular_file, limits

    st = check_regular_file(path, what=what)
    _check_size(st.st_size, str(path), what)
    cap = limits().yaml_bytes
    with open(path, "rb") as f:
        raw = f.read(cap + 1 if cap else -1)  # a file that grew since stat() is still cut at the limit
    _check_size(len(raw), str(path), what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"'{path}' is not a UTF-8 text file ({exc}); a {what} is YAML text") from None


def _config_error(exc: Exception, source: str) -> ConfigError:
    """A PyYAML error as a one-line ConfigError with the line and column."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError(f"{where}: not valid YAML ({problem}); check the indentation and quoting there")


def check_yaml(text: str, *, source: str = "<string>") -> None:
    """Refuse a YAML text that is too large, nested too deeply, recursive, or expands to too many nodes.

    Reads PyYAML's event stream once (no node is built): each scalar, mapping and list counts 1 and
    each alias counts the size of its anchor, recorded when the anchor closes.

    Raises
    ------
    deepscope.errors.LimitError
        Over ``limits().yaml_bytes`` or, aliases expanded, ``limits().yaml_nodes``.
    deepscope.errors.ConfigError
        Not valid YAML, nested deeper than :data:`MAX_DEPTH`, or an alias inside its own anchor.

    Examples
    --------
    >>> check_yaml("[" * 200 + "]" * 200, source="deep.yaml")
    Traceback (most recent call last):
    ...
    deepscope.errors.ConfigError: deep.yaml, line 1, column 101: nested more than 100 levels deep ...
    """
    import yaml

    from deepscope.io.limits import limits

    _check_size(len(text.encode("utf-8", "surrogatepass")), source, "YAML text")
    lim = limits()
    total = 0
    sizes: dict[str, int] = {}  # anchor -> its node count, aliases expanded
    open_: list[tuple[int, str | None]] = []  # open collections: (total before them, anchor)
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.AliasEvent):
                n = sizes.get(ev.anchor)
                if n is None:
                    if any(a == ev.anchor for _, a in open_):
                        raise ConfigError(f"{_where(ev, source)}: the alias *{ev.anchor} is inside its own anchor "
                                          f"&{ev.anchor} (a recursive structure, which has no end); write the "
                                          "value out instead")
                    n = 1  # an undefined alias: the composer names it
                total += n
            elif isinstance(ev, yaml.ScalarEvent):
                total += 1
                if ev.anchor is not None:
                    sizes[ev.anchor] = 1
            elif isinstance(ev, yaml.CollectionStartEvent):
                if len(open_) >= MAX_DEPTH:
                    raise ConfigError(f"{_where(ev, source)}: nested more than {MAX_DEPTH} levels deep (mappings "
                                      "and lists inside each other; a pipeline needs a handful); look for "
                                      "unclosed brackets")
                open_.append((total, ev.anchor))
                total += 1
            elif isinstance(ev, yaml.CollectionEndEvent):
                before, anchor = open_.pop()
                if anchor is not None:
                    sizes[anchor] = total - before
                continue
            elif isinstance(ev, yaml.DocumentStartEvent):
                sizes = {}  # anchors belong to one document
                continue
            else:
                continue
            if lim.exceeded("yaml_nodes", total):
                raise LimitError(f"{_where(ev, source)}: this YAML document expands to over {lim.yaml_nodes:,} nodes "
                                 "(mappings, lists and values, each alias counted as a copy of its anchor); it was "
                                 "not loaded. Aliases of aliases multiply (a 'billion laughs' file): write the "
                                 f"values out, or {lim.how_to_raise('yaml_nodes')}")
    except yaml.YAMLError as exc:
        raise _config_error(exc, source) from None


def _where(ev: Any, source: str) -> str:
    return f"{source}, line {ev.start_mark.line + 1}, column {ev.start_mark.column + 1}"


def load_yaml(text: str, *, source: str = "<string>", on_node: Callable[[Any], None] | None = None) -> Any:
    """:func:`yaml.safe_load` within the limits: :func:`check_yaml` first, then the same values.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        Name used in messages (the file's path).
    on_node : callable, optional
        Called with PyYAML's composed node tree (when the document is not empty) before the values
        are constructed from it (construction rewrites merge keys ``<<`` in the tree).

    Returns
    -------
    object
        What :func:`yaml.safe_load` returns for ``text``.

    Raises
    ------
    deepscope.errors.LimitError, deepscope.errors.ConfigError
        As :func:`check_yaml`; also any error ``on_node`` raises.
    """
    import yaml

    check_yaml(text, source=source)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if on_node is not None:
            on_node(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _config_error(exc, source) from None
    except RecursionError:  # a long chain of merge keys; nesting itself is bounded by check_yaml
        raise ConfigError(f"{source}: the YAML structure is too deeply linked to read (chains of anchors, "
                          "aliases or merge keys); write the values out") from None
    finally:
        loader.dispose()
