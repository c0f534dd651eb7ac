"""run_pipeline from a plain script: works without a __main__ guard, or says exactly what to add."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ._data import write_nuclei

SCRIPT = """
from deepscope.pipeline import Pipeline, run_pipeline

p = Pipeline.from_dict({{"inputs": {{"paths": [{images!r}]}},
                        "steps": [{{"segment": {{"model": "otsu-watershed"}}}}, {{"measure": {{}}}}]}})
{call}
"""


def _run(tmp_path, call: str) -> subprocess.CompletedProcess:
    images = tmp_path / "images"
    if not images.exists():
        write_nuclei(images, 3)
    script = tmp_path / "analysis.py"
    script.write_text(SCRIPT.format(images=str(images), call=textwrap.dedent(call)))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_plain_script_with_worker_processes_runs(tmp_path):
    r = _run(tmp_path, 'result = run_pipeline(p, "run1", jobs=2)\nprint(result.summary())')
    assert r.returncode == 0, r.stderr
    assert "3 image sets (3 processed now, 0 already done)" in r.stdout and "Traceback" not in r.stderr


def test_guarded_script_is_left_as_it_is(tmp_path):
    r = _run(tmp_path, 'if __name__ == "__main__":\n    print(run_pipeline(p, "run2", jobs=2).summary())')
    assert r.returncode == 0, r.stderr
    assert "3 image sets (3 processed now" in r.stdout


def test_plain_script_with_a_dask_cluster_says_what_to_add(tmp_path):
    pytest.importorskip("distributed")
    r = _run(tmp_path, 'run_pipeline(p, "run3", workers=2)')
    assert r.returncode != 0
    assert 'if __name__ == "__main__":\n        result = run_pipeline(...)' in r.stderr
    assert not (tmp_path / "run3").exists()  # nothing written before the error
