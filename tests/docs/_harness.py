"""Run every shell command and Python block of a Markdown document, as written, on small stand-in data.

The documents name data the reader has (``../shared/data/bbbc005/images``, ``plate1/``,
``stack.ome.tif`` ...). :func:`make_sandbox` builds a project folder holding small files of those
names, made by deepscope's synthetic generator or copied from the bundled samples; :func:`run_document`
then runs, in order, each ``bash`` block (``deepscope`` commands in this process, other lines in
bash) and each ``python`` block (one namespace per document), and fails on the first command that
fails, naming the document, its line and the command. It returns a :class:`DocumentRun` (the project
folder and the Python namespace), so each document's test then checks figures the page states: a
count, a column, a file it says is written.

The stand-in data is as small as the documents allow (one or two full-size sample fields where a page
names one, 128 x 160 BBBC005-like fields, 12 fields of view so that a split by field still has a test
part); it is built once per process and copied for each document.

What is changed before running is listed in :data:`RULES` (each with its reason): training runs one
epoch (restoration on small crops), a fine-tune one step, a cluster is replaced by local processes,
and the ``make`` targets are left to CI (``make test`` is CI itself; ``make demo`` is
``tests/test_demo.py``). ``tests/docs/test_rules.py`` checks that every rule still matches the
documents, so a rule cannot outlive its text.

``DEEPSCOPE_DOCS_TIMES=1`` prints the seconds of each command and Python block (run with ``-s``).
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "src" / "deepscope" / "samples"
DOCUMENTS = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))


@dataclass(frozen=True)
class Rule:
    """A change made to a command before it runs: regex -> replacement (``None``: not run), and why."""

    pattern: str
    replacement: str | None
    why: str


RULES: tuple[Rule, ...] = (
    Rule(r"^make (demo|test)\b.*", None, "make test is CI itself; make demo is tests/test_demo.py"),
    Rule(r".*--scheduler tcp://\S+.*", None, "needs a Dask cluster at that address"),
    Rule(r"--epochs \d+", "--epochs 1", "one epoch shows the command works; fifty take hours on CI"),
    Rule(r"nb_epoch=\d+", "nb_epoch=1", "one epoch shows the call works"),
    Rule(r"--workers \d+", "-j 0", "a Dask cluster takes longer to start than CI's data takes to analyse"),
    Rule(r"jobs=4", "jobs=0", "worker processes take longer to start than the stand-in data takes"),
    Rule(r"--sites 8", "--sites 2 --size 256x320", "a small synthetic set trains in seconds"),
    Rule(r"--time-budget \d+", "--time-budget 1",
         "a fine-tune stops after its first step past the budget: one step shows it works; minutes are for real data"),
    Rule(r"time_budget=\d+", "time_budget=1, batch_size=2", "one step of a fine-tune shows the call works"),
    Rule(r"^deepscope train (\w+) --init (?!.*--batch-size)(.*)", r"deepscope train \1 --init \2 --batch-size 2",
         "a fine-tune stops after its first step past the budget: a step of two crops shows it as well as one of "
         "eight (3.6 s a step of the shipped nuclei model here)"),
    Rule(r"^deepscope train restore (?!.*--crop)", "deepscope train restore --crop 64 ",
         "the stand-in fields (128 x 160) are zero-padded to the default 256 px crop (4.8 s a step here); "
         "64 px crops of their own pixels train the same network in a fifth of the time"),
)
#: Appended to ``deepscope train ...`` lines that give no ``--epochs`` (their default is 50).
TRAIN_EPOCHS = "--epochs 1"


def apply_rules(command: str) -> str | None:
    """The command as it is run (None when it is not run)."""
    for rule in RULES:
        if re.search(rule.pattern, command):
            if rule.replacement is None:
                return None
            command = re.sub(rule.pattern, rule.replacement, command)
    if re.match(r"^deepscope train ", command) and "--epochs" not in command:
        command += f" {TRAIN_EPOCHS}"
    return command


@dataclass(frozen=True)
class Block:
    language: str
    line: int
    text: str


def blocks(document: Path) -> list[Block]:
    """The ``bash`` and ``python`` code blocks of a Markdown file (``yaml``, ``text`` and bare blocks are output
    or file contents, not commands)."""
    out: list[Block] = []
    lines = document.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            lang, start = m.group(1), i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if lang in ("bash", "sh", "shell", "python"):
                out.append(Block("python" if lang == "python" else "bash", start + 1, "\n".join(lines[start:j])))
            i = j + 1
        else:
            i += 1
    return out


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of a bash block: continuation lines joined, comments dropped; a heredoc is one command."""
    out: list[tuple[int, str]] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line, no = lines[i], block.line + i
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc:
            end = i + 1
            while end < len(lines) and lines[end].strip() != heredoc.group(1):
                end += 1
            out.append((no, "\n".join(lines[i:end + 1])))
            i = end + 1
            continue
        cmd = line
        while cmd.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
        out.append((no, " ".join(shlex.split(cmd, comments=True)) if not cmd.startswith("cat ") else cmd))
        i += 1
    return out


# --------------------------------------------------------------------------- the stand-in data

#: The bundled sample fields (520 x 696, true count in the name) copied where a page names one: the pages name
#: ``SIMCEPImages_A05_C18_F1_s01_w1.TIF`` (and ``A11_C44``); two fields keep every command's work small.
FIELDS = ("SIMCEPImages_A05_C18_F1_s01_w1.TIF", "SIMCEPImages_A11_C44_F1_s01_w1.TIF")
#: plate1/: two complete fields of view (w1 + w2) for the pipeline's channel grouping, and one incomplete
#: field (w1 only) that ``incomplete: skip`` leaves out.
PLATE1 = ("SIMCEPImages_A05_C18_F1_s01_w1.TIF", "SIMCEPImages_A05_C18_F1_s01_w2.TIF",
          "SIMCEPImages_A11_C44_F1_s01_w1.TIF", "SIMCEPImages_A11_C44_F1_s01_w2.TIF",
          "SIMCEPImages_A02_C5_F1_s01_w1.TIF")
#: ../shared/data/bbbc005: counts x blurs x sites x stains; 12 fields of view, so a split by field (0.8/0.1/0.1)
#: keeps one field for validation and one for testing.
BBBC005 = {"counts": [1, 4, 8], "blurs": (1, 48), "sites": 4, "stains": (1, 2), "size": (128, 160)}


def _copy_samples(dest: Path, names: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SAMPLES / name, dest / name)


def _build_sandbox(tmp: Path) -> Path:
    """Write the project folder and ``../shared/data`` under ``tmp``."""
    import tifffile

    from deepscope.data.synth import generate_field, write_dataset
    from deepscope.io import write_labels, write_tiff
    from deepscope.models import ArchConfig, CountModel, RestoreModel

    project = tmp / "project"
    shared = tmp / "shared" / "data"
    bbbc = shared / "bbbc005" / "images"
    write_dataset(bbbc, seed=0, **BBBC005)  # type: ignore[arg-type]
    shutil.move(bbbc / "masks", bbbc.parent / "masks")  # as in the real set: the images folder holds images only
    project.mkdir()
    shutil.copytree(bbbc, project / "bbbc005" / "images")
    shutil.copytree(bbbc, project / "bbbc005", dirs_exist_ok=True)
    _copy_samples(project / "plate1", PLATE1)
    _copy_samples(project / "nuclei", FIELDS)
    for name in ("images", "plate"):  # analysed by whole pipelines (analyze): one field shows them
        _copy_samples(project / name, FIELDS[:1])
    (project / "blurred").mkdir()
    for p in sorted(bbbc.glob("*_F48_*.TIF")):
        shutil.copy(p, project / "blurred" / p.name)
    for name in ("small", "w1_images"):
        (project / name).mkdir()
        for p in sorted(bbbc.glob("*_F1_s01_w1.TIF"))[:2]:
            shutil.copy(p, project / name / p.name)
    (project / "rgb_images").mkdir()
    for i in range(2):
        f = generate_field(4, size=(128, 160), seed=i)
        write_tiff(project / "rgb_images" / f"rgb{i}.tif",
                   np.dstack([f.image(2), np.zeros((128, 160), np.uint8), f.image(1)]))
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(project / "my_run")
    # docs/restoration.md restores with runs/deblur before it shows how to train it
    RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2)).save(project / "runs" / "deblur")
    stack = np.stack([generate_field(3, size=(64, 96), seed=z).image(1) for z in range(3)])
    tifffile.imwrite(project / "stack.ome.tif", stack, ome=True, metadata={"axes": "ZYX"})
    write_tiff(project / "huge_slide.tif", generate_field(12, size=(300, 400), stains=1, seed=5).image(1))
    for folder, n in ((project / "data", 4), (shared / "dsb2018", 2)):
        (folder / "images").mkdir(parents=True)
        masks = folder / ("masks" if folder.name == "data" else "labels")
        masks.mkdir()
        for i in range(n):
            f = generate_field(6, size=(128, 160), stains=1, seed=20 + i)
            write_tiff(folder / "images" / f"img{i:03d}.tif", f.image(1))
            write_labels(masks / f"img{i:03d}.tif", f.labels(1).astype(np.int32))
    (project / "pipeline.yaml").write_text(
        "name: nuclei-and-cells\n"
        "inputs:\n  paths: [plate1/]\n  pattern: bbbc005\n"
        "  channels: {by: stain, names: {1: DNA, 2: Cells}, group_by: [well, site], incomplete: skip}\n"
        "steps:\n"
        "  - segment: {objects: Nuclei, channel: DNA, model: otsu-watershed}\n"
        "  - segment: {objects: Cells, channel: Cells, model: otsu-watershed}\n"
        "  - relate: {parents: Cells, children: Nuclei}\n"
        "  - measure: {objects: [Nuclei, Cells], channels: [DNA, Cells]}\n")
    return project


_TEMPLATE: list[Path] = []


def make_sandbox(tmp: Path) -> Path:
    """A project folder with the files the documents name, and ``../shared/data`` beside it (a copy of one
    built once per process: the documents write into their copy)."""
    import torch  # noqa: F401  (the documents load models)

    if not _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="deepscope-docs-"))
        atexit.register(shutil.rmtree, root, True)
        _build_sandbox(root)
        _TEMPLATE.append(root)
    for part in ("project", "shared"):
        shutil.copytree(_TEMPLATE[0] / part, tmp / part)
    return tmp / "project"


# --------------------------------------------------------------------------- running

def _run_shell(command: str, project: Path) -> str:
    """Run one shell command of a document; return its output."""
    from typer.testing import CliRunner

    from deepscope.cli.app import app

    if command.startswith("deepscope "):
        args = shlex.split(command)[1:]
        r = CliRunner().invoke(app, args, catch_exceptions=True)
        if r.exit_code != 0:
            raise AssertionError(f"exit code {r.exit_code}\n{r.output[-3000:]}"
                                 + (f"\n{r.exception!r}" if r.exception and not isinstance(r.exception, SystemExit)
                                    else ""))
        return r.output
    # the documents' shell lines call `deepscope` as an installed user would: the venv's scripts come first
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    r2 = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=project, capture_output=True, text=True,
                        timeout=300, env=env)
    if r2.returncode != 0:
        raise AssertionError(f"exit code {r2.returncode}\n{r2.stdout[-2000:]}\n{r2.stderr[-2000:]}")
    return r2.stdout


@dataclass
class DocumentRun:
    """What running a document left: its project folder, its Python namespace, and each command's output."""

    project: Path
    namespace: dict[str, object]
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command as run, or "python:LINE", output)
    #: the namespace as each Python block left it, in the document's order (a later block may rebind a name)
    after_block: list[dict[str, object]] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return len(self.outputs)

    def output(self, start: str) -> str:
        """The output of the first command that starts with ``start`` (or of the Python block ``python:LINE``)."""
        for command, out in self.outputs:
            if command.startswith(start):
                return out
        raise AssertionError(f"no command starting with {start!r} ran; ran: {[c for c, _ in self.outputs]}")

    def python_output(self) -> str:
        """Everything the document's Python blocks printed."""
        return "".join(out for command, out in self.outputs if command.startswith("python:"))


def run_document(name: str, tmp: Path, monkeypatch: object) -> DocumentRun:
    """Run every command and Python block of ``name`` (relative to the repository) in a sandbox. Fails with
    the document, line and command of the first one that fails."""
    document = ROOT / name
    project = make_sandbox(tmp)
    monkeypatch.chdir(project)  # type: ignore[attr-defined]
    run = DocumentRun(project, {"__name__": "__docs__"})
    environ = dict(os.environ)  # `deepscope --max-pixels` sets its variable for the workers a run starts
    try:
        _run_blocks(name, document, run)
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return run


def _run_blocks(name: str, document: Path, run: DocumentRun) -> None:
    import contextlib
    import io

    times = bool(os.environ.get("DEEPSCOPE_DOCS_TIMES"))
    for block in blocks(document):
        t0, c0 = time.perf_counter(), time.process_time()
        if block.language == "python":
            code = apply_rules(block.text)
            assert code is not None
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, f"{name}:{block.line}", "exec"), run.namespace)  # noqa: S102 - the docs' code
            except Exception as exc:
                raise AssertionError(f"{name}, line {block.line}: the Python block fails: "
                                     f"{type(exc).__name__}: {exc}\nit printed: {printed.getvalue()[-2000:]}") from exc
            run.outputs.append((f"python:{block.line}", printed.getvalue()))
            run.after_block.append(dict(run.namespace))
            if times:
                print(f"{time.perf_counter() - t0:6.1f} s {time.process_time() - c0:6.1f} cpu  python block, line {block.line}")
            continue
        for line, command in shell_commands(block):
            command_run = apply_rules(command)
            if command_run is None:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                out = _run_shell(command_run, run.project)
            except AssertionError as exc:
                raise AssertionError(f"{name}, line {line}: `{command_run}` fails: {exc}") from None
            run.outputs.append((command_run, out))
            if times:
                print(f"{time.perf_counter() - t0:6.1f} s {time.process_time() - c0:6.1f} cpu  {command_run}")


# --------------------------------------------------------------------------- checking what a page states

def true_count(path: str | Path) -> int:
    """The count in a BBBC005 file name (``..._C18_...`` -> 18)."""
    m = re.search(r"_C(\d+)_", Path(path).name)
    assert m, f"no _C<count>_ in {path}"
    return int(m.group(1))


def page(name: str) -> str:
    """The text of a document, whitespace collapsed (so a test can check that a figure it checks is still stated)."""
    return " ".join((ROOT / name).read_text(encoding="utf-8").split())
