"""The command line starts without torch (``deepscope --help``, ``inspect``, ``report`` ... in a fraction of a
second); the commands that run a network import it when they run."""

from __future__ import annotations

import subprocess
import sys


def test_cli_module_and_help_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from deepscope.cli.app import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'dask', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_training_loop_is_still_importable_from_train():
    import deepscope.train as train
    from deepscope.train.trainer import Trainer, TrainResult

    assert train.Trainer is Trainer and train.TrainResult is TrainResult
    assert {"Trainer", "TrainResult"} <= set(train.__all__)
