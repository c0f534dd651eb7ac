"""Issue 30, findings 5 and 7: a model card is data. Its file must be a regular file, and the weights it
names (``weights.file``) must lie in the card's own folder and be a regular file: a card pointing at
``/dev/zero`` (hashed forever) or ``/etc/passwd`` (read) is refused, naming the card, the value and the rule.
What could hang if the refusal regressed runs in a guarded child process (2 GiB, a timeout)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from deepscope.errors import ModelError
from deepscope.models import ZOO
from deepscope.models.registry import card_weights_path

from ..io.test_hardening_files import run_guarded

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="needs POSIX FIFOs and /dev/zero")
RULE = "weights.file must name a file in the card's own folder"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from deepscope.models import ArchConfig, CountModel

    d = tmp_path_factory.mktemp("m") / "good"
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d)
    return d


def _card_with(good: Path, folder: Path, file: str) -> Path:
    """A copy of ``good``'s card in ``folder`` whose weights.file is ``file``."""
    folder.mkdir(parents=True)
    card = json.loads((good / "model.json").read_text())
    card["weights"]["file"] = file
    (folder / "model.json").write_text(json.dumps(card))
    return folder


LOAD = """
import json, sys
from deepscope.models import load_model
out = {}
for ref in sys.argv[1:]:
    try:
        load_model(ref, device="cpu")
        out[ref] = "no error"
    except Exception as exc:
        out[ref] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_cards_pointing_at_devices_and_fifos_are_refused(good, tmp_path):
    linked = tmp_path / "linked"  # model.json is a link to /dev/zero
    linked.mkdir()
    (linked / "model.json").symlink_to("/dev/zero")
    up = "../" * len(tmp_path.resolve().parts)  # from tmp_path/zero/ up to / and down to /dev/zero
    zero = _card_with(good, tmp_path / "zero", up + "dev/zero")
    fifo = _card_with(good, tmp_path / "fifo", "model.safetensors")  # the weights beside the card are a FIFO
    os.mkfifo(fifo / "model.safetensors")
    link = _card_with(good, tmp_path / "link", "model.safetensors")  # ... or a link to /dev/zero
    (link / "model.safetensors").symlink_to("/dev/zero")
    r = run_guarded(["-c", LOAD, str(linked), str(zero), str(fifo), str(link)])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out[str(linked)] == (f"ModelError: {linked / 'model.json'}: this model card is a character device, not a "
                                "regular file; only regular files are read (a device or pipe would be read forever). "
                                "Point at the file itself; nothing was loaded")
    assert out[str(zero)] == (f"ModelError: model card '{zero / 'model.json'}': weights.file '{up}dev/zero' is an "
                              f"absolute path, empty or contains '..'; {RULE}: a file name such as "
                              "'model.safetensors' or a relative path without '..'. Put the weights beside the card "
                              "and give their name; nothing was loaded")
    assert out[str(fifo)].startswith(f"ModelError: model card '{fifo / 'model.json'}': weights.file "
                                     f"'model.safetensors': {fifo / 'model.safetensors'}: this weights file is a "
                                     "FIFO (named pipe), not a regular file")
    assert out[str(link)].startswith(f"ModelError: model card '{link / 'model.json'}': weights.file "
                                     "'model.safetensors' leads outside the card's folder (to '/dev/zero', "
                                     "through a link)")


@pytest.mark.parametrize("file", ["/etc/passwd", "../model.safetensors", "sub/../../model.safetensors",
                                  "..\\model.safetensors", "C:/weights.safetensors", ""])
def test_weights_outside_the_cards_folder_are_refused(good, tmp_path, file):
    """Even real weights of the right model (so a regression would load them) are refused outside the folder."""
    shutil.copy(good / "model.safetensors", tmp_path / "model.safetensors")
    card = _card_with(good, tmp_path / "card", file)
    from deepscope.models import load_model

    with pytest.raises(ModelError, match=rf"model card '.*card/model.json': weights.file '.*' is an absolute path, "
                                         rf"empty or contains '..'; {RULE}"):
        load_model(card, device="cpu")


def test_weights_reached_through_a_link_out_of_the_folder_are_refused(good, tmp_path):
    shutil.copy(good / "model.safetensors", tmp_path / "real.safetensors")
    card = _card_with(good, tmp_path / "card", "model.safetensors")
    (card / "model.safetensors").symlink_to(tmp_path / "real.safetensors")
    from deepscope.models import load_model

    with pytest.raises(ModelError, match=rf"weights.file 'model.safetensors' leads outside the card's folder .*{RULE}"):
        load_model(card, device="cpu")


def test_weights_in_a_sub_folder_of_the_card_load(good, tmp_path):
    card = _card_with(good, tmp_path / "card", "weights/model.safetensors")
    (card / "weights").mkdir()
    shutil.copy(good / "model.safetensors", card / "weights" / "model.safetensors")
    from deepscope.models import load_model

    assert load_model(card, device="cpu").model_card.weights.file == "weights/model.safetensors"


@pytest.mark.parametrize("card", sorted(ZOO.glob("*.json")), ids=lambda p: p.stem)
def test_shipped_cards_name_weights_beside_them(card):
    file = json.loads(card.read_text())["weights"]["file"]
    assert card_weights_path(card, file) == card.parent / file
