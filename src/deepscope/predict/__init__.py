"""Inference: the predictor (batching, padding, tiling, test-time augmentation) over inference backends,
instance post-processing, the batch runner of the commands and pipelines, and classical baselines.

>>> from deepscope.predict import Predictor, TorchBackend, BatchRunner
>>> from deepscope.predict.files import count_paths, segment_paths, restore_paths

Modules: ``predictor``/``backends``/``engine`` run a network; ``inputs`` resolves what a run is given
(model, pixels, tile overlap); ``runner`` is the batch engine and ``files`` the file driver of the
``count``/``segment``/``restore`` commands; ``large`` the out-of-core path; ``overlay`` draws outlines;
``evaluation`` runs a model over a labelled dataset and scores it.

Imports: ``predict`` imports ``models``, ``evaluate``, ``provenance``, ``io`` and ``data``; ``train``,
``tasks``, ``pipeline`` and ``cli`` import it, ``models`` never does (a model finds its behaviour
through its task plugin).
"""

from deepscope.predict.backends import InferenceBackend, TorchBackend
from deepscope.predict.predictor import Predictor, label_tiles, run_network, stitch_tiles
from deepscope.predict.runner import BatchRunner, Decoded, Outcome

__all__ = ["InferenceBackend", "TorchBackend", "Predictor", "run_network", "stitch_tiles", "label_tiles",
           "BatchRunner", "Decoded", "Outcome"]
