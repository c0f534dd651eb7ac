"""Synthetic microscopy images with exact ground truth.

Two scene types, both deterministic for a seed:

* :func:`generate_field`: SIMCEP-style fluorescent cell populations like BBBC005 (nuclear
  stain ``w1`` and cell-body stain ``w2`` of the same field, any count, blur level, clustering,
  bit depth and size) with instance labels of nuclei and cell bodies and the in-focus image.
  Calibrated against the real BBBC005 images (``benchmarks/bench_synth.py``).
* :func:`generate_two_class`: rods and cocci with a class per instance (multi-class segmentation).

:func:`generate_movie` simulates a time-lapse of moving, dividing nuclei with exact Cell Tracking Challenge
ground truth (label = track id, the ``L B E P`` table).

:func:`generate_volume` simulates z-stacks of nuclei on anisotropic voxels with exact 3D labels and the
all-in-focus image (for volumes and projections).

:func:`generate_unfamiliar` draws pictures that are *not* microscopy (text both ways, drawings,
plots, screenshots, gradients, noise, photographs) for calibrating and measuring domain checks.

:func:`write_dataset` writes a whole BBBC005-style data set (files named like BBBC005, masks,
``labels.csv``), in parallel if asked, byte-identical to a serial run; ``deepscope synth`` is
its command line.

Examples
--------
>>> from deepscope.data.synth import generate_field
>>> f = generate_field(20, size=(260, 348), blurs=(1, 23), seed=0)
>>> f.count == int(f.nuclei.max()) == int(f.cells.max())
True
>>> sorted(f.images)
[(1, 1), (1, 23), (2, 1), (2, 23)]
"""

from deepscope.data.synth.cells import STAINS, CellParams, SynthField, focus_sigma, generate_field
from deepscope.data.synth.movie import SynthMovie, generate_movie
from deepscope.data.synth.presets import (BBBC005_BLURS, BBBC005_COUNTS, BBBC005_SITES, BBBC005_STAINS, DESIGNS,
                                          Design, field_seed, get_design, image_name, mask_name, well_positions)
from deepscope.data.synth.two_class import CLASS_NAMES, TwoClassScene, generate_two_class
from deepscope.data.synth.unfamiliar import (CALIBRATION_PHOTOS, HELD_OUT_PHOTOS, PHOTOS, UNFAMILIAR_KINDS,
                                             generate_unfamiliar, unfamiliar_photo)
from deepscope.data.synth.volume import SynthVolume, generate_volume
from deepscope.data.synth.writer import LABEL_COLUMNS, MASK_TEMPLATE, plan_dataset, write_dataset

__all__ = [
    "generate_movie", "SynthMovie",
    "generate_volume", "SynthVolume",
    "generate_field", "SynthField", "CellParams", "STAINS", "focus_sigma",
    "generate_two_class", "TwoClassScene", "CLASS_NAMES",
    "generate_unfamiliar", "unfamiliar_photo", "UNFAMILIAR_KINDS", "PHOTOS", "CALIBRATION_PHOTOS", "HELD_OUT_PHOTOS",
    "write_dataset", "plan_dataset", "LABEL_COLUMNS", "MASK_TEMPLATE",
    "BBBC005_COUNTS", "BBBC005_BLURS", "BBBC005_SITES", "BBBC005_STAINS", "Design", "DESIGNS", "get_design",
    "well_positions", "image_name", "mask_name", "field_seed",
]
