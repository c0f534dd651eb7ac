"""The pipeline spec: YAML errors name the key and the line; resolved specs round-trip; the hash."""

from __future__ import annotations

import textwrap

import pytest

from deepscope.errors import ConfigError
from deepscope.pipeline import Pipeline, load_pipeline
from deepscope.pipeline.spec import FilterStep, MeasureStep
from deepscope.tasks.segment.pipeline_step import SegmentStep

GOOD = """\
name: two-channel
inputs:
  paths: [plate]
  pattern: plate-well-site-channel
  channels:
    by: channel
    names: {1: DNA, 2: Cells}
steps:
  - normalise: {channels: [DNA]}
  - segment: {objects: Nuclei, channel: DNA, model: otsu-watershed, options: {min_size: 10}}
  - segment: {objects: Cells, channel: Cells, model: otsu-watershed}
  - relate: {parents: Cells, children: Nuclei}
  - measure: {objects: [Nuclei, Cells], channels: [DNA, Cells], pixel_size: 0.65}
  - filter: {objects: Nuclei, where: "AreaShape_Area > 20", into: BigNuclei}
  - count: {objects: BigNuclei}
outputs:
  tables: parquet
  overlays: true
"""


def _write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_spec_resolves_defaults_and_paths(tmp_path):
    p = load_pipeline(_write(tmp_path, GOOD))
    assert p.name == "two-channel" and p.channels == ("DNA", "Cells")
    assert p.inputs.paths == (str(tmp_path / "plate"),)  # relative to the YAML's folder
    assert p.objects == ("Nuclei", "Cells", "BigNuclei")
    assert [s.kind for s in p.steps] == ["normalize", "segment", "segment", "relate", "measure", "filter", "count"]
    seg = p.steps[1]
    assert isinstance(seg, SegmentStep) and seg.options == {"min_size": 10} and seg.tta == "none"
    assert isinstance(p.steps[4], MeasureStep) and p.steps[4].pixel_size == 0.65
    assert isinstance(p.steps[5], FilterStep) and p.steps[5].into == "BigNuclei"
    assert p.outputs.tables == ("parquet",) and p.outputs.overlays and p.outputs.labels
    assert p.inputs.channels is not None and p.inputs.channels.names == {"1": "DNA", "2": "Cells"}


def test_resolved_spec_round_trips_and_hash_ignores_file_list(tmp_path):
    p = load_pipeline(_write(tmp_path, GOOD))
    q = Pipeline.from_dict(p.to_dict())
    assert q == p and q.hash() == p.hash()
    moved = p.to_dict()
    moved["inputs"]["paths"] = ["/elsewhere"]
    moved["inputs"]["include"] = ["*.tif"]
    assert Pipeline.from_dict(moved).hash() == p.hash()  # new images may join a run
    changed = p.to_dict()
    changed["steps"][5]["filter"]["where"] = "AreaShape_Area > 30"
    assert Pipeline.from_dict(changed).hash() != p.hash()
    assert p.hash({"otsu-watershed": "ab" * 32}) != p.hash()  # model weights are part of it


BAD = [
    # (YAML, match): every message names the file, the line and the key path
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - measure: {objectz: [Nuclei]}\n",
     r"p\.yaml, line 4: steps\[1\]\.measure\.objectz: unknown key; valid keys here are objects, channels, "
     r"pixel_size \(did you mean 'objects'\?\)"),
    ("inputs: [x]\nsteps:\n  - segment:\n      model: otsu-watershed\n      tile: big\n",
     r"line 5: steps\[0\]\.segment\.tile: expected an integer >= 64; got text 'big'"),
    ("inputs: [x]\nsteps:\n  - segmnet: {}\n",
     r"line 3: steps\[0\]\.segmnet: unknown step kind.*did you mean 'segment'"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - measure: {objects: [Cells]}\n",
     r"line 4: steps\[1\]\.measure\.objects: no object set 'Cells' made by an earlier step \(made so far: Nuclei\)"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed, channel: DNA}\n",
     r"line 3: steps\[0\]\.segment\.channel: no channel 'DNA'; the image sets have channels Image"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - filter: {objects: Nuclei, where: x > 1}\n",
     r"line 4: steps\[1\]\.filter\.objects: filtering 'Nuclei' needs its measurements"),
    ("inputs: [x]\nsteps:\n  - segment: {model: no-such-model}\n",
     r"line 3: steps\[0\]\.segment\.model: unknown model 'no-such-model'; shipped models are"),
    ("inputs: [x]\nsteps:\n  - segment: {model: ./missing_model}\n", r"line 3: .*no model folder or file at"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - segment: {model: otsu-watershed}\n",
     r"line 4: steps\[1\]\.segment: missing key 'objects'.*'Nuclei' is already made by step 0"),
    ("inputs: [x]\nsteps: [{segment: {model: otsu-watershed}}]\noutputs: {tables: [parquet, xlsx]}\n",
     r"line 3: outputs\.tables\[1\]: 'xlsx' is not one of parquet, csv"),
    ("inputs: {paths: [x], channels: {by: channel, names: {1: DNA}}}\nsteps: [{segment: {}}]\n",
     r"line 1: inputs\.channels: grouping channels needs metadata"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - segment: {model: otsu-watershed}\n"
     "  - measure: {}\n  - measure: {objects: Nuclei, pixel_size: -1}\n",
     r"line 4: steps\[1\]\.segment: missing key 'objects'"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed, options: {sigma: 2}}\n",
     r"line 3: steps\[0\]\.segment\.options\.sigma: unknown option of otsu-watershed"),
    ("inputs: [x]\nsteps: []\n", r"line 2: steps: expected a non-empty list of steps"),
    ("inputz: [x]\nsteps: [{segment: {}}]\n", r"line 1: inputz: unknown key.*did you mean 'inputs'"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - count: {model: objects, name: Cells}\n",
     r"line 4: steps\[1\]\.count\.name: the count of 'Nuclei' is the column Count_Nuclei"),
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n    - measure: {}\n",
     r"p\.yaml, line 4, column \d+: not valid YAML"),
    ("inputs: [x]\ninputs: [y]\nsteps: [{segment: {}}]\n", r"line 2: duplicate key 'inputs' \(first at line 1\)"),
    # issue 14: a filter is parsed by deepscope's own filter language, so this runs nothing and is refused
    ("inputs: [x]\nsteps:\n  - segment: {model: otsu-watershed}\n  - measure: {}\n  - filter:\n      objects: Nuclei\n"
     "      where: \"AreaShape_Area > @np.lib._datasource.os.system('id > pwned.txt')\"\n",
     r"line 7: steps\[2\]\.filter\.where: filter .* at character 18: '@' names .* not part of the filter language"),
]


@pytest.mark.parametrize("text, match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_errors_name_the_key_and_line(tmp_path, text, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=match):
        load_pipeline(_write(tmp_path, text))
    assert not (tmp_path / "pwned.txt").exists()


def test_missing_pipeline_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")


def test_from_dict_without_marks_still_names_the_key():
    with pytest.raises(ConfigError, match=r"^<dict>: steps\[0\]\.segment\.tta: 'd16' is not one of none, transpose, diagonal, flips, d8"):
        Pipeline.from_dict({"inputs": {"paths": ["/x"]},
                            "steps": [{"segment": {"model": "otsu-watershed", "tta": "d16"}}]})


def test_doctests_of_the_pipeline_modules():
    import doctest

    import deepscope.pipeline._yaml as y
    import deepscope.pipeline.executors as ex
    import deepscope.pipeline.inputs as i
    import deepscope.pipeline.runner as r
    import deepscope.pipeline.spec as s
    import deepscope.pipeline.steps as st
    import deepscope.pipeline.store as so
    import deepscope.tasks.count.pipeline_step as cs
    import deepscope.tasks.segment.pipeline_step as ss
    import deepscope.tasks.track.pipeline_step as ts

    for mod in (y, s, i, st, so, ex, r, ss, cs, ts):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__


def test_a_task_brings_its_own_step_through_the_registry(monkeypatch):
    """spec.py knows no task: a plugin's ``pipeline_step`` is a step kind of every pipeline, parsed by its task."""
    from dataclasses import dataclass, field

    from deepscope.models import plugins
    from deepscope.pipeline.spec import step_kinds, task_steps
    from deepscope.tasks.contracts import PipelineStep

    @dataclass(frozen=True)
    class SpotStep:
        objects: str
        channel: str
        kind: str = field(default="spots", init=False)

        @property
        def made_objects(self):
            return self.objects

        @property
        def model_refs(self):
            return ()

        def to_dict(self):
            return {"objects": self.objects, "channel": self.channel}

        @classmethod
        def parse(cls, opts, r):
            d = r.mapping(opts, r.path, ("objects", "channel"), required=("objects",))
            return cls(objects=r.new_objects(d["objects"], r.path + ("objects",)),
                       channel=r.channel(d.get("channel"), r.path + ("channel",)))

    class SpotPlugin(plugins.TaskPlugin):
        task, representation, pipeline_step = "spots", "peaks", SpotStep

    plugins.list_tasks()  # deepscope's own registered first
    monkeypatch.setattr(plugins, "_PLUGINS", {**plugins._PLUGINS, ("spots", "peaks"): SpotPlugin()})
    assert task_steps()["spots"] is SpotStep and {"segment", "count"} <= set(task_steps())
    assert step_kinds()[0] == "normalize" and "spots" in step_kinds()
    p = Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"spots": {"objects": "Spots"}}, {"measure": {}}]})
    assert isinstance(p.steps[0], PipelineStep) and p.objects == ("Spots",) and p.model_refs == ()
    assert Pipeline.from_dict(p.to_dict()) == p
    with pytest.raises(ConfigError, match=r"steps\[0\]\.spots\.channel: no channel 'DNA'"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"spots": {"objects": "S", "channel": "DNA"}}]})
    with pytest.raises(ConfigError, match=r"unknown step kind; valid kinds are normalize, .*spots.*"
                                          r"\(did you mean 'spots'"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"spot": {}}]})
