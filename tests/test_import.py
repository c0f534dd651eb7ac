"""`import deepscope` (and its light sub-packages) pulls in neither torch nor dask."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light():
    code = ("import sys, deepscope, deepscope.io, deepscope.data, deepscope.errors; "
            "heavy = [m for m in ('torch', 'dask', 'distributed') if m in sys.modules]; "
            "print(','.join(heavy)); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, f"heavy modules imported: {r.stdout} {r.stderr}"


def test_star_import_gives_what_all_lists():
    code = ("import deepscope; from deepscope import *; "
            "g = globals(); missing = [n for n in deepscope.__all__ if n not in g]; print(missing); "
            "sys.exit(1 if missing else 0)")
    r = subprocess.run([sys.executable, "-c", "import sys; " + code], capture_output=True, text=True)
    assert r.returncode == 0, f"from deepscope import * failed: {r.stdout} {r.stderr}"


def test_loading_a_model_card_does_not_import_torch():
    """Reading cards (``deepscope models``, a pipeline's model hashes) stays light."""
    code = ("import sys; from deepscope.models import list_models, model_card; "
            "[model_card(m.name) for m in list_models()]; sys.exit(1 if 'torch' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
