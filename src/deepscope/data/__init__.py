"""Datasets, loaders, splitters and transforms.

>>> from deepscope.data import ImageLoader, ImageDataset, GroupSplitter

Imports: ``data`` imports ``io`` and ``errors``; ``models`` and everything above import it.
"""

from deepscope.data.dataset import BATCH_POLICIES, Batch, ImageDataset, Sample
from deepscope.data.loader import ImageLoader, MaskPairing, PairRule, check_image, image_stem
from deepscope.data.pairing import downscale_pairs, format_rule, pair_by_metadata, parse_rule
from deepscope.data.splitters import (SPLITTERS, GroupSplitter, RandomSplitter, Splitter, StratifiedSplitter,
                                      get_splitter)
from deepscope.data.transforms import DIHEDRAL, dihedral, normalize_percentile, to_grey, to_uint8

__all__ = [
    "ImageDataset", "Sample", "Batch", "BATCH_POLICIES", "ImageLoader", "MaskPairing", "PairRule",
    "check_image", "image_stem", "Splitter", "RandomSplitter", "GroupSplitter", "StratifiedSplitter",
    "SPLITTERS", "get_splitter", "normalize_percentile", "to_uint8", "to_grey", "dihedral", "DIHEDRAL",
    "pair_by_metadata", "parse_rule", "format_rule", "downscale_pairs",
]
