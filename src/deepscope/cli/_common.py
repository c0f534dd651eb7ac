"""Helpers shared by CLI commands: console, logging, error handling, progress bars, integer lists.

Text that comes from files or errors is printed through :func:`rich.markup.escape` (re-exported here as
``escape``), so a ``[...]`` in a message or a file name is shown, not taken as markup.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from deepscope.errors import DeepscopeError

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def setup_logging(verbose: int = 0) -> None:
    """Configure logging for the CLI (library code only logs; the CLI decides what is shown)."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("deepscope")
    root.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(RichHandler(console=err_console, show_time=False, show_path=False))


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
            err_console.print(f"[bold red]error:[/] {type(exc).__name__}{where}: {escape(exc.strerror or str(exc))}. "
                              "Results finished so far are kept; fix the cause and run the same command again")
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper


def one_line(exc: BaseException) -> str:
    """An error's message on one line (a file name or a library message may hold newlines)."""
    return " ".join(str(exc).split("\n")).strip() or type(exc).__name__


def progress(items: Iterable[T], *, total: int | None = None, description: str = "working",
             disable: bool | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar (images done, rate, ETA) on stderr."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    if disable is None:
        disable = not err_console.is_terminal
    if disable:
        yield from items
        return
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


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

