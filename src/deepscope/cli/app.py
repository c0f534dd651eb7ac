"""The ``deepscope`` command-line application (typer).

Every command is a thin layer over public library functions; heavy libraries (torch,
dask) are imported inside commands, so ``deepscope --help`` is fast.
"""

from __future__ import annotations

import typer

import deepscope
from deepscope.cli._common import setup_logging

#: The one exit-code rule of every command (shown by ``deepscope --help``; tests/cli/test_messages.py checks it).
EXIT_CODES = ("Exit codes, the same for every command: 0 the command ran (images that failed have an error row "
              "and are listed once, the others are done); 1 every image failed; 2 the command could not start (a "
              "bad option, a path that does not exist, an invalid pipeline or model, a limit: one line says which, "
              "and nothing is processed); 130 interrupted (outputs finished so far are kept whole).")

app = typer.Typer(
    rich_markup_mode=None, name="deepscope", help="Deep learning for microscopy images: load, count, segment, measure, "
                  "restore, with provenance.", epilog=EXIT_CODES, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deepscope {deepscope.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v, -vv)."),
    max_pixels: float | None = typer.Option(None, "--max-pixels", help="Largest image to decode, in values (all "
                                            "planes and channels; default 250000000, sized for 24 GB of memory; "
                                            "0 = no limit). Also DEEPSCOPE_MAX_PIXELS; see docs/limits.md."),
) -> None:
    """deepscope command line."""
    setup_logging(verbose)
    if max_pixels is not None:
        from deepscope.io.limits import set_limits

        set_limits(max_pixels=max_pixels)  # the environment carries it to worker processes too


def _register() -> None:
    from deepscope.cli import inspect_cmd

    app.command("inspect")(inspect_cmd.inspect)
    # further command groups register here (one module each)
    import importlib

    for mod_name, attr, name in _COMMANDS:
        mod = importlib.import_module(f"deepscope.cli.{mod_name}")
        obj = getattr(mod, attr)
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


#: (module in deepscope.cli, attribute, command name): a Typer sub-app or a function.
_COMMANDS: list[tuple[str, str, str]] = [
    ("catalog_cmd", "app", "catalog"),
    ("lineage_cmd", "lineage", "lineage"),
    ("evaluate_cmd", "app", "evaluate"),
    ("synth_cmd", "synth", "synth"),
    ("count_cmd", "count", "count"),
    ("segment_cmd", "segment", "segment"),
    ("restore_cmd", "restore", "restore"),
    ("project_cmd", "project", "project"),
    ("track_cmd", "track", "track"),
    ("train_cmd", "app", "train"),
    ("models_cmd", "app", "models"),
    ("run_cmd", "run", "run"),
    ("run_cmd", "analyze", "analyze"),
    ("report_cmd", "report", "report"),
]

_register()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
