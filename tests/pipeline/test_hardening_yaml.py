"""Issue 30, finding 4: a pipeline (or any user) YAML is read within the limits.

A 522-byte "billion laughs" file ran 70 s to 3.4 GB before a MemoryError traceback (line marks were
recorded for every path through the alias graph); 3000 nested brackets gave a RecursionError.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.errors import ConfigError, InputError, LimitError
from deepscope.io.limits import override_limits
from deepscope.io.yamlsafe import MAX_DEPTH, check_yaml, load_yaml
from deepscope.pipeline import load_pipeline
from deepscope.pipeline._yaml import load_with_marks

runner = CliRunner()


def _bomb(levels: int = 10, width: int = 9) -> str:
    """A pipeline whose ``steps`` expand to ``width ** levels`` values (9 ** 10 = 3.5e9) in ~515 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ninputs: {{paths: [images]}}\nsteps: *a{levels - 1}\n"


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_billion_laughs_is_refused_before_it_expands(tmp_path):
    p = _write(tmp_path, _bomb())
    assert len(p.read_bytes()) < 600
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match=r"p\.yaml, line \d+, column \d+: this YAML document expands to over "
                                             r"100,000 nodes .*DEEPSCOPE_MAX_YAML_NODES=N"):
            load_pipeline(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_the_node_limit_counts_aliases_expanded_and_can_be_raised():
    text = "a: &x [1, 2, 3]\nb: [*x, *x, *x]\n"  # 1 + 2 keys + 4 + (1 + 3 * 4) = 20 nodes expanded
    with override_limits(yaml_nodes=19):
        with pytest.raises(LimitError, match="over 19 nodes"):
            load_yaml(text)
    with override_limits(yaml_nodes=20):
        assert load_yaml(text) == {"a": [1, 2, 3], "b": [[1, 2, 3]] * 3}


def test_marks_are_recorded_once_per_distinct_node():
    # ~65,000 values through aliases (within the node limit): the old walk recorded a mark for each path
    lines = ["a0: &a0 [x, y]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 14)]
    data, marks = load_with_marks("\n".join(lines) + "\n")
    assert len(data["a13"]) == 2 and len(marks._lines) < 100
    # an item deep inside the aliases has the line of the value it is a copy of
    assert marks.line(("a13", 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1)) == 1
    assert marks.line(("a13",)) == 14 and marks.line(("a5", 0, 1, 0)) == 3 and marks.line(("a5", 0, 1, 0, 1, 1, 0)) == 1


@pytest.mark.parametrize("text", [
    "[" * 3000 + "]" * 3000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "".join(" " * i + f"k{i}:\n" for i in range(150)) + " " * 150 + "v\n",
    "- " * 3000 + "x\n",
])
def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path, text):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"p\.yaml, line \d+, column \d+: nested more than {MAX_DEPTH} levels deep"):
        load_pipeline(p)


def test_nesting_up_to_the_bound_still_loads():
    assert check_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH) is None
    assert load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(ConfigError, match=r"<string>, line 1, column 11: the alias \*a is inside its own anchor"):
        load_with_marks("a: &a [1, *a]\n")


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    p = _write(tmp_path, "inputs: {paths: [images]}\n" + "# padding\n" * 200)
    with override_limits(yaml_bytes=1000):
        with pytest.raises(LimitError, match=r"p\.yaml: this pipeline file is 2,026 bytes, over the limit of 1,000 "
                                             r"bytes .*DEEPSCOPE_MAX_YAML_BYTES=N"):
            load_pipeline(p)
        with pytest.raises(LimitError, match="this YAML text is 2,026 bytes"):
            load_with_marks(p.read_text())


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_link_to_a_device_is_not_read(tmp_path):
    (tmp_path / "p.yaml").symlink_to("/dev/zero")
    with pytest.raises(InputError, match=r"p\.yaml: this pipeline file is a character device"):
        load_pipeline(tmp_path / "p.yaml")


def test_anchors_aliases_and_merge_keys_of_a_real_spec_keep_working(tmp_path):
    (tmp_path / "images").mkdir()
    spec = ("inputs: {paths: [images]}\n"          # 1
            "steps:\n"                              # 2
            "  - segment: &seg\n"                   # 3
            "      objects: nuclei\n"               # 4
            "      model: otsu-watershed\n"         # 5
            "      tile: 512\n"                     # 6
            "  - segment:\n"                        # 7
            "      <<: *seg\n"                      # 8
            "      objects: cells\n")               # 9
    pipe = load_pipeline(_write(tmp_path, spec))
    assert [(s.objects, s.model, s.tile) for s in pipe.steps] == [("nuclei", "otsu-watershed", 512),
                                                                  ("cells", "otsu-watershed", 512)]
    _, marks = load_with_marks(spec)
    assert marks.line(("steps", 1, "segment", "objects")) == 9  # its own key wins over the merged one
    assert marks.line(("steps", 1, "segment", "tile")) == 6     # merged: where it is written
    # an error inside an alias names the line of the anchor's value
    bad = spec.replace("      <<: *seg\n      objects: cells\n", "  - segment: *seg\n").replace("  - segment:\n  - ", "  - ")
    with pytest.raises(ConfigError, match=r"p2\.yaml, line 4: steps\[1\]\.segment\.objects: object set 'nuclei' is "
                                          "already made"):
        load_pipeline(_write(tmp_path, bad, "p2.yaml"))
    # the explicit key beside a merge is no duplicate; a repeated explicit key still is
    with pytest.raises(ConfigError, match=r"line 10: duplicate key 'steps.1.segment.objects' \(first at line 9\)"):
        load_with_marks(spec + "      objects: again\n")


def test_training_configs_and_metadata_defaults_are_checked_too(tmp_path):
    from deepscope.provenance.sources import load_defaults
    from deepscope.train.runs import load_train_settings

    p = _write(tmp_path, _bomb(), "train.yaml")
    with pytest.raises(LimitError, match=r"train\.yaml, line \d+, column \d+: this YAML document expands"):
        load_train_settings(p, allowed_task_options=set())
    with pytest.raises(LimitError, match=r"train\.yaml, line \d+, column \d+: this YAML document expands"):
        load_defaults(p)
    deep = _write(tmp_path, "[" * 3000 + "]" * 3000, "deep.yaml")
    with pytest.raises(ConfigError, match="nested more than"):
        load_defaults(deep)
    with override_limits(yaml_bytes=10):
        with pytest.raises(LimitError, match=r"this training config is \d+ bytes"):
            load_train_settings(p, allowed_task_options=set())


@pytest.mark.parametrize("text, match", [(_bomb(), "expands to over 100,000 nodes"),
                                         ("[" * 3000 + "]" * 3000, "nested more than 100 levels")])
def test_cli_run_prints_one_error_and_exits_2(tmp_path, text, match):
    p = _write(tmp_path, text, "bomb.yaml")
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    flat = " ".join(r.output.split())
    assert match in flat and flat.count("error:") == 1
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    assert not (tmp_path / "run").exists()


def test_doctests_of_the_yaml_and_pattern_modules():
    import doctest

    import deepscope.io.patterns as pt
    import deepscope.io.yamlsafe as ys

    for mod in (ys, pt):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0 and res.attempted > 0, mod.__name__
