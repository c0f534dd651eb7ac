"""Inference: devices, batching, tiling, test-time augmentation, instance post-processing, and
classical baselines (:mod:`deepscope.predict.classical`)."""
