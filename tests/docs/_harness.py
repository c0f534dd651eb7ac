"""Run every shell command and Python block of a Markdown document, as written, on small stand-in data.

The documents name data the reader has (``../shared/data/bbbc005/images``, ``plate1/``,
``stack.ome.tif`` ...). :func:`make_sandbox` builds a project folder holding small files of those
names, made by deepscope's synthetic generator or copied from the bundled samples; :func:`run_document`
then runs, in order, each ``bash`` block (``deepscope`` commands in this process, other lines in
bash) and each ``python`` block (one namespace per document), and fails on the first command that
fails, naming the document, its line and the command.

What is changed before running is listed in :data:`RULES` (each with its reason): training runs one
epoch, a cluster is replaced by local processes, and the ``make`` targets are left to CI (``make
test`` is CI itself; ``make demo`` is ``tests/test_demo.py``). ``tests/docs/test_rules.py`` checks
that every rule still matches the documents, so a rule cannot outlive its text.
"""

from __future__ import annotations

import os
import re
import shlex
import time
import shutil
import subprocess
import sys
from dataclasses import dataclass
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
    Rule(r"--time-budget \d+", "--time-budget 5", "a fine-tune shows it works in seconds; minutes are for real data"),
    Rule(r"time_budget=\d+", "time_budget=5", "a fine-tune shows it works in seconds"),
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

def _copy_samples(dest: Path, pattern: str = "*.TIF") -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(SAMPLES.glob(pattern)):
        shutil.copy(p, dest / p.name)


def make_sandbox(tmp: Path) -> Path:
    """A project folder with the files the documents name, and ``../shared/data`` beside it."""
    import tifffile
    import torch  # noqa: F401  (the documents load models)

    from deepscope.data.synth import generate_field, write_dataset
    from deepscope.io import write_labels, write_tiff
    from deepscope.models import ArchConfig, CountModel, RestoreModel

    project = tmp / "project"
    shared = tmp / "shared" / "data"
    bbbc = shared / "bbbc005" / "images"
    write_dataset(bbbc, counts=[1, 5, 18], blurs=(1, 48), sites=4, stains=(1, 2), size=(192, 256), seed=0)
    shutil.move(bbbc / "masks", bbbc.parent / "masks")  # as in the real set: the images folder holds images only
    project.mkdir()
    shutil.copytree(bbbc, project / "bbbc005" / "images")
    shutil.copytree(bbbc, project / "bbbc005", dirs_exist_ok=True)
    _copy_samples(project / "plate1")
    for name in ("images", "nuclei", "plate"):
        _copy_samples(project / name, "*_w1.TIF")
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


# --------------------------------------------------------------------------- running

def _run_shell(command: str, project: Path) -> None:
    from typer.testing import CliRunner

    from deepscope.cli.app import app

    if command.startswith("deepscope "):
        args = shlex.split(command)[1:]
        r = CliRunner().invoke(app, args, catch_exceptions=True)
        if r.exit_code != 0:
            raise AssertionError(f"exit code {r.exit_code}\n{r.output[-3000:]}"
                                 + (f"\n{r.exception!r}" if r.exception and not isinstance(r.exception, SystemExit)
                                    else ""))
    else:
        # the documents' shell lines call `deepscope` as an installed user would: the venv's scripts come first
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        r2 = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=project, capture_output=True, text=True,
                            timeout=300, env=env)
        if r2.returncode != 0:
            raise AssertionError(f"exit code {r2.returncode}\n{r2.stdout[-2000:]}\n{r2.stderr[-2000:]}")


def run_document(name: str, tmp: Path, monkeypatch: object) -> int:
    """Run every command and Python block of ``name`` (relative to the repository) in a sandbox; return how
    many ran. Fails with the document, line and command of the first one that fails."""
    document = ROOT / name
    project = make_sandbox(tmp)
    monkeypatch.chdir(project)  # type: ignore[attr-defined]
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for block in blocks(document):
        if block.language == "python":
            code = apply_rules(block.text)
            assert code is not None
            try:
                exec(compile(code, f"{name}:{block.line}", "exec"), namespace)  # noqa: S102 - the docs' own code
            except Exception as exc:
                raise AssertionError(f"{name}, line {block.line}: the Python block fails: "
                                     f"{type(exc).__name__}: {exc}") from exc
            ran += 1
            continue
        for line, command in shell_commands(block):
            run = apply_rules(command)
            if run is None:
                continue
            t0 = time.perf_counter()
            try:
                _run_shell(run, project)
            except AssertionError as exc:
                raise AssertionError(f"{name}, line {line}: `{run}` fails: {exc}") from None
            ran += 1
            if os.environ.get("DEEPSCOPE_DOCS_TIMES"):
                print(f"{time.perf_counter() - t0:6.1f} s  {run}")
    return ran
