"""Reading and writing microscopy images faithfully; atomic writes, SHA-256 of files, JSON encoding.

>>> from deepscope.io import read_image, find_images, expand_inputs, get_pattern

Imports: ``io`` is the bottom of deepscope's package graph (it imports only ``errors``); every
other package may import it.
"""

from deepscope.io.discover import expand_inputs, extract_zip, find_images, natural_key, open_source
from deepscope.io.image import AXES_LETTERS, FileMeta, Image, as_pixels
from deepscope.io.jsonable import to_jsonable
from deepscope.io.limits import LimitError, limits, set_limits
from deepscope.io.names import csv_arrow, csv_cell, csv_frame_plain, csv_plain, csv_text, safe_text, unique_names
from deepscope.io.patterns import PRESETS, FilenamePattern, get_pattern
from deepscope.io.readers import SUPPORTED_EXTENSIONS, image_format, read_image, read_meta, sha256_file
from deepscope.io.rois import read_rois, write_rois
from deepscope.io.writers import atomic_path, check_output, write_labels, write_png, write_text, write_tiff

__all__ = [
    "AXES_LETTERS", "FileMeta", "Image", "as_pixels", "read_image", "read_meta", "image_format", "sha256_file",
    "SUPPORTED_EXTENSIONS", "find_images", "expand_inputs", "natural_key", "extract_zip", "open_source",
    "FilenamePattern", "PRESETS", "get_pattern", "atomic_path", "write_tiff", "write_png",
    "write_labels", "write_text", "to_jsonable", "safe_text", "unique_names", "csv_cell", "csv_plain",
    "csv_text", "csv_arrow", "csv_frame_plain", "limits", "set_limits", "LimitError",
    "check_output", "read_rois", "write_rois",
]
