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
