"""Helpers shared by CLI commands: console, logging, error handling, progress, shared options, integer lists.

Text that comes from files or errors is printed through :func:`rich.markup.escape` (re-exported here as
``escape``), so a ``[...]`` in a message or a file name is shown, not taken as markup. Every character
that could drive the terminal (C0 controls but newline and tab, DEL, C1 controls, Unicode direction
overrides) is shown as an escape (``\\x1b``) by the consoles themselves (:class:`SafeConsole`), by
:func:`echo` and by the warnings the CLI shows, so a file named ``\\x1b]0;...`` cannot clear the screen
or set the window title.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

from deepscope.errors import DeepscopeError

T = TypeVar("T")

#: Characters that must never reach a terminal raw: C0 controls but the newline and the tab (the layout of
#: plain and tab-separated output; ESC starts every escape sequence, BEL ends a window title, CR overwrites
#: a line), DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode bidirectional overrides and isolates
#: (which make a name read differently).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every character that could drive a terminal shown as an escape (``\\x1b``, ``\\u202e``).

    Newlines and tabs are kept. Used by the CLI's consoles, :func:`echo` and the warnings it shows; a file
    name with an escape sequence in it is printed as readable text, never interpreted.

    Examples
    --------
    >>> visible("a\\x1b[2Jb\\x07.tif")
    'a\\\\x1b[2Jb\\\\x07.tif'
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


class SafeConsole(Console):
    """A rich console whose printed text never holds raw control characters (see :func:`visible`).

    Strings are made visible before rich parses them (rich itself silently drops a few, such as BEL,
    but keeps ESC), and the text of every rendered segment (table cells, log records, ``Text``
    objects) is made visible too; rich's own control segments (cursor moves of a progress bar) and
    styles are untouched.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for seg in super().render(renderable, options):
            if seg.control is None and _CONTROL.search(seg.text):
                yield Segment(visible(seg.text), seg.style, seg.control)
            else:
                yield seg


console = SafeConsole(highlight=False, soft_wrap=True)  # paths are never folded mid-name
err_console = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def echo(text: str, **kwargs: Any) -> None:
    """:func:`typer.echo` of ``text`` made :func:`visible` (plain output that may hold file names)."""
    typer.echo(visible(str(text)), **kwargs)


def _format_warning(message: Any, category: type[Warning], filename: str, lineno: int, line: str | None = None
                    ) -> str:
    return visible(_plain_format_warning(message, category, filename, lineno, line))


_plain_format_warning = warnings.formatwarning


#: Warnings already shown by this process: each is said once, not once per image.
_SHOWN: set[str] = set()
_VERBOSE = [0]


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """Show a warning as the tool's own words, ``warning: <message>``, once per distinct message.

    Python's default shows ``path/to/module.py:123: UserWarning: ...`` and the source line that raised it:
    noise for a user of the command line. ``-vv`` shows them as Python does (made visible), for debugging.
    """
    if _VERBOSE[0] >= 2:
        err_console.print(escape(_format_warning(message, category, filename, lineno, line).rstrip()),
                          soft_wrap=True)
        return
    text = str(message)
    if category is ResourceWarning or text in _SHOWN:  # an unclosed file is the program's business, not the user's
        return
    _SHOWN.add(text)
    err_console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)


class VisibleFormatter(logging.Formatter):
    """A log formatter whose records are made :func:`visible` (a library may log a file name)."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))


def setup_logging(verbose: int = 0) -> None:
    """Configure logging for the CLI (library code only logs; the CLI decides what is shown)."""
    global _plain_format_warning
    from rich.logging import RichHandler

    if warnings.formatwarning is not _format_warning:  # warnings shown as Python prints them: made visible too
        _plain_format_warning = warnings.formatwarning
        warnings.formatwarning = _format_warning
    warnings.showwarning = _show_warning
    _VERBOSE[0] = verbose
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    # tifffile logs what it finds wrong in a file before raising; the failed row already says it: -v shows both
    logging.getLogger("tifffile").setLevel(logging.CRITICAL if verbose <= 0 else logging.WARNING)
    if logging.lastResort is not None:  # other libraries' warnings (tifffile names the file in its own)
        logging.lastResort.setFormatter(VisibleFormatter())
    root = logging.getLogger("deepscope")
    root.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=err_console, show_time=False, show_path=False)
        handler.setFormatter(VisibleFormatter())
        root.addHandler(handler)


def handle_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn deepscope's user-facing errors into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (DeepscopeError, FileNotFoundError, FileExistsError) as exc:
            err_console.print(f"[bold red]error:[/] {escape(one_line(exc))}")
            raise typer.Exit(code=2) from None
        except OSError as exc:  # a disk that fills up, a folder that goes away: one line, no traceback
            where = f" '{exc.filename}'" if getattr(exc, "filename", None) else ""
            # outputs are written whole or not at all (a temporary name, then a rename): say just that
            err_console.print(f"[bold red]error:[/] {type(exc).__name__}{escape(where)}: "
                              f"{escape(exc.strerror or str(exc))}. The file being written then was not written (no "
                              "partial file is left); files finished before it are kept. Fix the cause and run the "
                              "same command again")
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper


def one_line(exc: BaseException) -> str:
    """An error's message on one line (a file name or a library message may hold newlines)."""
    return " ".join(str(exc).split("\n")).strip() or type(exc).__name__
# --------------------------------------------------------------------------- shared options

def out_option(default: Any = None, *, help: str) -> Any:
    """The ``--out/-o`` option every command that writes files takes (``--output`` is a hidden alias)."""
    return typer.Option(default, "--out", "-o", help=help, show_default=default is not None)


def output_alias() -> Any:
    """``--output``: the hidden alias of ``--out`` (older spelling of some commands)."""
    return typer.Option(None, "--output", hidden=True)


def pick_out(out: Path | None, output: Path | None, *, default: Path | None = None) -> Path:
    """The output path given as ``--out`` or its alias ``--output`` (the default, else an error)."""
    if out is not None and output is not None and Path(out) != Path(output):
        raise typer.BadParameter(f"--out {out} and --output {output} disagree; give one (--output is an alias)",
                                 param_hint="'--out'")
    chosen = out if out is not None else output if output is not None else default
    if chosen is None:
        raise typer.BadParameter("missing: give the output with --out/-o", param_hint="'--out'")
    return Path(chosen)


def backend_option() -> Any:
    """``--backend auto|torch|onnx|onnx-int8``: what runs the network."""
    return typer.Option("auto", "--backend", help="What runs the network: auto (onnx-int8 on a CPU for the models "
                        "whose int8 network keeps their accuracy, see `deepscope models show NAME`; torch otherwise), "
                        "torch, onnx (ONNX Runtime, same results as torch to ~1e-5), or onnx-int8 (ONNX Runtime, "
                        "int8-quantised, CPU: 2-4x faster, results close but not equal; see BENCHMARKS.md).")


def jobs_option() -> Any:
    """``--jobs/-j N``: worker threads of a batch command (default: the CPU cores); results as with 1."""
    return typer.Option(None, "--jobs", "-j", min=1, help="Worker threads reading and inferring images at once "
                        "(default: the CPU cores). Results and output order are those of --jobs 1.")


def include_labels_option() -> Any:
    """``--include-labels``: read files that look like label images or outputs (``*_mask*``, ``masks/``) too."""
    return typer.Option(False, "--include-labels", help="Also read the files of scanned folders that look like "
                        "label images or deepscope outputs (*_mask*, *_label*, *.labels.*, *.overlay.*, files under "
                        "masks/ or labels/); by default they are left out with a warning.")


def label_images(include: bool) -> str:
    """The ``label_images`` of :func:`deepscope.io.expand_inputs` for ``--include-labels``."""
    return "include" if include else "skip"


def prob_threshold_option() -> Any:
    """``--prob-threshold``: the segmenter's probability threshold over its card's (segment, analyze)."""
    return typer.Option(
        None, "--prob-threshold", help="(Cell) probability above which a pixel belongs to an object, in (0, 1): "
        "higher gives fewer, tighter objects (precision), lower more (recall). Default: the model card's tuned "
        "value.")


def flow_threshold_option() -> Any:
    """``--flow-threshold``: the flow check of flow models over the card's (segment, analyze)."""
    return typer.Option(
        None, "--flow-threshold", help="Flow models (nuclei, nuclei-fast) only: drop objects whose predicted flows disagree "
        "with their shape by more than this mean squared error (0 = no check; lower drops more). Watershed models "
        "(cells-bbbc005, nuclei-fluo) have no flow check and refuse it. Default: the card's.")


def min_size_option() -> Any:
    """``--min-size``: the smallest object kept, over the card's (segment, analyze)."""
    return typer.Option(
        None, "--min-size", help="Remove objects smaller than this many pixels (generalist models: pixels at the "
        "model's scale, objects rescaled to its diameter). Default: the card's. The thresholds used are recorded "
        "in the lineage.")


def recursive_option() -> Any:
    """``--recursive/-r``: scan sub-folders of folders (off by default in every command)."""
    return typer.Option(False, "--recursive/--no-recursive", "-r", show_default=False,
                        help="Also scan the sub-folders of folders (off by default, so a masks/ folder beside the "
                        "images is not read as images).")


# --------------------------------------------------------------------------- progress

#: Seconds between progress lines when stderr is not a terminal (``DEEPSCOPE_PROGRESS_SECONDS``).
PROGRESS_SECONDS = 30.0


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class LineProgress:
    """Progress as plain lines on a stream, for logs that are not a terminal (pipes, nohup, cluster jobs).

    A line is written when the first item is done, then every ``every`` seconds or every tenth of
    the total (whichever comes first), and at the end::

        count: 120/1191 images (10%), 4.2 images/s, 3 failed, 0m28s elapsed, ETA 4m15s

    Parameters
    ----------
    description : str
        What is running (the command's name).
    stream : file-like, optional
        Default ``sys.stderr``.
    every : float, optional
        Seconds between lines (default ``$DEEPSCOPE_PROGRESS_SECONDS`` or :data:`PROGRESS_SECONDS`).
    unit : str
        What is counted.
    clock : callable, optional
        Seconds (default ``time.monotonic``).
    """

    def __init__(self, description: str, *, stream: Any = None, every: float | None = None,
                 unit: str = "images", clock: Callable[[], float] = time.monotonic) -> None:
        self.description = description
        self.stream = stream
        if every is None:
            try:
                every = float(os.environ.get("DEEPSCOPE_PROGRESS_SECONDS", PROGRESS_SECONDS))
            except ValueError:
                every = PROGRESS_SECONDS
        self.every = max(0.0, every)
        self.unit = unit
        self.clock = clock
        self._t0 = clock()
        self._start_done: int | None = None
        self._last_t = -float("inf")
        self._last_step = -1
        self._final = False

    def __call__(self, done: int, total: int | None = None, failed: int = 0) -> None:
        now = self.clock()
        if self._start_done is None:  # a resumed run starts at the work done before: rate counts this session
            self._start_done = done - 1 if done > 0 else 0
        step = int(10 * done / total) if total else 0
        finished = bool(total) and done >= total
        if finished and self._final:
            return
        if not (finished or now - self._last_t >= self.every or step > self._last_step or self._last_step < 0):
            return
        self._last_t, self._last_step, self._final = now, step, finished
        elapsed = now - self._t0
        rate = (done - self._start_done) / elapsed if elapsed >= 0.5 else 0.0  # no rate from a blink
        head = f"{done}/{total} {self.unit} ({100 * done / total:.0f}%)" if total else f"{done} {self.unit}"
        parts = [f"{self.description}: {head}"]
        if rate > 0:
            parts.append(f"{rate:.1f} {self.unit}/s")
        if failed:
            parts.append(f"{failed} failed")
        parts.append(f"{_clock(elapsed)} elapsed")
        if total and rate > 0 and not finished:
            parts.append(f"ETA {_clock((total - done) / rate)}")
        stream = self.stream if self.stream is not None else sys.stderr
        print(visible(", ".join(parts)), file=stream, flush=True)


@contextlib.contextmanager
def progress_callback(description: str, *, unit: str = "images", failed_column: bool = False
                      ) -> Iterator[Callable[..., None]]:
    """A ``progress(done, total[, failed])`` callback: a rich bar on a terminal, :class:`LineProgress` lines
    otherwise (stderr)."""
    if not err_console.is_terminal:
        yield LineProgress(description, unit=unit)
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:5.1f} {unit}/s" if speed else f"    - {unit}/s", style="progress.data.speed")

    columns: list[Any] = [TextColumn("[progress.description]{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TextColumn(unit), Rate()]
    if failed_column:
        columns.append(TextColumn("{task.fields[failed]} failed"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    bar = Progress(*columns, console=err_console)
    state: dict[str, Any] = {}

    def update(done: int, total: int | None = None, failed: int = 0) -> None:
        if "task" not in state:
            # start the bar at the work already done, so rate and ETA count this session's work only
            state["task"] = bar.add_task(description, total=total, completed=done, failed=failed)
        else:
            bar.update(state["task"], completed=done, total=total, failed=failed)

    with bar:
        yield update


def progress(items: Iterable[T], *, total: int | None = None, description: str = "working",
             disable: bool | None = None) -> Iterator[T]:
    """Iterate with progress on stderr: a rich bar on a terminal, a line now and then otherwise."""
    if disable:
        yield from items
        return
    with progress_callback(description) as report:
        for i, item in enumerate(items, start=1):
            yield item
            report(i, total)


def parse_int_list(text: str, *, name: str) -> list[int]:
    """Parse ``"1,5,10"`` or ``"1-5"`` ranges into integers, with a clear error."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-", 1)[0],
                                                                               part[1:].split("-", 1)[1])
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise typer.BadParameter(f"{name}: {part!r} is not an integer or a range like 1-5") from None
    if not out:
        raise typer.BadParameter(f"{name}: give at least one integer")
    return out

