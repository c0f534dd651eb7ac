"""Inference: the predictor (batching, padding, tiling, test-time augmentation) over inference backends,
the batch runner, the one file driver of the commands and the out-of-core path, and classical baselines.

>>> from deepscope.predict import Predictor, TorchBackend, BatchRunner
>>> from deepscope.predict.files import predict_files, count_paths, segment_paths, restore_paths

Modules: ``predictor``/``backends``/``engine`` run a network; ``inputs`` resolves what a run is given
(model, pixels, tile overlap); ``runner`` is the batch engine and ``files`` the one file driver
(:func:`~deepscope.predict.files.predict_files`: decode -> the task's ``run`` -> the task's row and outputs)
of every task's command; ``large`` the out-of-core path; ``overlay`` draws outlines; ``evaluation`` runs a
model over a labelled dataset and scores it; ``domain`` the domain checks. Post-processing (density -> count,
flows -> instances) lives with its task (:mod:`deepscope.tasks`).

Imports: ``predict`` imports ``models``, ``evaluate``, ``provenance``, ``io`` and ``data``; ``train``,
``tasks``, ``pipeline`` and ``cli`` import it, ``models`` never does (a model finds its behaviour
through its task plugin).
"""

from deepscope.predict.backends import InferenceBackend, TorchBackend
from deepscope.predict.predictor import Predictor, label_tiles, run_network, stitch_tiles
from deepscope.predict.runner import BatchRunner, Decoded, Outcome

__all__ = ["InferenceBackend", "TorchBackend", "Predictor", "run_network", "stitch_tiles", "label_tiles",
           "BatchRunner", "Decoded", "Outcome"]
