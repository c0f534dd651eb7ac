"""Where acquisition metadata comes from, and how the sources are merged.

Sources, from weakest to strongest (:data:`SOURCE_ORDER`); a later source overrides an earlier
one, and every override that changes a value is reported as a :class:`Conflict`:

1. ``yaml`` -- folder defaults: a YAML file passed with ``--meta`` or a ``deepscope-meta.yaml``
   found beside the images. They are *defaults*: anything the file or its name says wins.
2. ``tiff`` -- plain TIFF tags (pixel size from the resolution tags when the unit is a length).
3. ``imagej`` -- ImageJ metadata (pixel size with its unit, z spacing, channel labels).
4. ``ome`` -- OME-XML inside an OME-TIFF (or OME-Zarr attributes): instrument, objective,
   channels with wavelengths, pixel sizes, acquisition date, experimenter, plate/well.
5. ``pattern`` -- named groups of a file-name regex (as in :class:`deepscope.data.ImageLoader`).
6. ``csv`` -- a sidecar CSV keyed by file name (``--meta table.csv`` or ``deepscope-meta.csv``
   beside the images): curated per image, so it is the strongest file-based source.
7. ``explicit`` -- values passed in code (``overrides=``).

The embedded metadata outranks folder defaults because it was written by the instrument for
this very file; names and curated tables outrank it because a person wrote them for this file
and they are how a wrong embedded value is corrected.

A YAML of defaults looks like this (every key optional; ``rules`` apply values to the files
whose file-name fields match, ``pattern`` gives the folder's file-name pattern)::

    pattern: bbbc005
    instrument: {microscope: SIMCEP simulation, modality: widefield}
    objective: {magnification: 20, na: 0.45}
    experimenter: A. Lehmussola
    rules:
      - match: {stain: 1}
        set: {channels: [{name: w1, stain: nuclei, fluor: Hoechst 33342}]}
      - match: {stain: 2}
        set: {channels: [{name: w2, stain: cell body, fluor: phalloidin}]}
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepscope.errors import ConfigError, InputError
from deepscope.io import FileMeta, FilenamePattern, get_pattern, read_image, read_meta
from deepscope.provenance.meta import ImageMeta, _UNIT_TO_UM, flatten_mapping

__all__ = [
    "SOURCE_ORDER", "SIDECAR_YAML", "SIDECAR_CSV", "VERIFY", "Conflict", "MergedMeta", "MetadataDefaults",
    "MetadataSources", "load_defaults", "load_sidecar_csv", "merge_sources", "file_meta", "file_layers",
    "parse_ome_xml",
]

logger = logging.getLogger(__name__)

#: Metadata sources from weakest to strongest; later ones override earlier ones.
SOURCE_ORDER = ("yaml", "tiff", "imagej", "ome", "pattern", "csv", "explicit")
#: File names of sidecars found automatically in an image's folder.
SIDECAR_YAML = ("deepscope-meta.yaml", "deepscope-meta.yml")
SIDECAR_CSV = "deepscope-meta.csv"
#: How files are checked when catalogued: TIFF header only (fast) or a full decode.
VERIFY = ("header", "full")


@dataclass(frozen=True)
class Conflict:
    """Two sources gave one field different values; the stronger one was kept.

    Attributes
    ----------
    key : str
        Dotted metadata key.
    value : object
        The value kept.
    source : str
        Where the kept value came from.
    overridden : object
        The value dropped.
    overridden_source : str
        Where the dropped value came from.
    """

    key: str
    value: Any
    source: str
    overridden: Any
    overridden_source: str

    def __str__(self) -> str:
        return (f"{self.key}: {self.source}={self.value!r} overrides "
                f"{self.overridden_source}={self.overridden!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source, "overridden": self.overridden,
                "overridden_source": self.overridden_source}


@dataclass(frozen=True)
class MergedMeta:
    """The merged metadata of one image with where each field came from.

    Attributes
    ----------
    meta : ImageMeta
        The merged metadata.
    sources : dict of str to str
        Source of each flat key of ``meta``.
    conflicts : tuple of Conflict
        Overrides that changed a value.
    notes : tuple of str
        Things worth knowing (a file name the pattern did not match, a bad embedded value dropped).
    """

    meta: ImageMeta
    sources: dict[str, str] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[str, ...] = ()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _canonical(layer: Mapping[str, Any], *, source: str, strict: bool,
               notes: list[str] | None = None) -> dict[str, Any]:
    """Validate one layer and return it with canonical keys and typed values."""
    try:
        return ImageMeta.from_flat(layer).flatten()
    except InputError:
        if strict:
            raise
    out: dict[str, Any] = {}
    for k, v in layer.items():  # find and drop the bad keys of an embedded source
        try:
            out.update(ImageMeta.from_flat({k: v}).flatten())
        except InputError as exc:
            msg = f"{source} metadata ignored: {exc}"
            logger.warning(msg)
            if notes is not None:
                notes.append(msg)
    return out


def merge_sources(layers: Sequence[tuple[str, Mapping[str, Any]]], *,
                  strict_sources: Iterable[str] = ("yaml", "pattern", "csv", "explicit"),
                  cache: dict[Any, dict[str, Any]] | None = None) -> MergedMeta:
    """Merge metadata layers in :data:`SOURCE_ORDER` and report the overrides.

    Parameters
    ----------
    layers : sequence of (source, flat dict)
        Each source's metadata as dotted keys (aliases allowed). Layers of the same source
        are applied in the order given.
    strict_sources : iterable of str
        Sources whose invalid values raise; invalid values from other (embedded) sources are
        dropped with a note.
    cache : dict, optional
        Memo of validated layers, for callers merging many files that share layers (folder
        defaults); owned by the caller.

    Returns
    -------
    MergedMeta

    Raises
    ------
    deepscope.errors.InputError
        If a source is unknown or a value of a strict source is invalid.

    Examples
    --------
    >>> m = merge_sources([("pattern", {"well": "A05"}), ("yaml", {"well": "B01", "na": 0.45})])
    >>> m.meta.well, m.sources["well"], str(m.conflicts[0])
    ('A05', 'pattern', "well: pattern='A05' overrides yaml='B01'")
    """
    strict = set(strict_sources)
    for src, _ in layers:
        if src not in SOURCE_ORDER:
            raise InputError(f"metadata source {src!r} is not one of {SOURCE_ORDER}")
    ordered = sorted(layers, key=lambda sl: SOURCE_ORDER.index(sl[0]))
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    conflicts: list[Conflict] = []
    notes: list[str] = []
    for src, layer in ordered:
        memo_key: Any = None
        if cache is not None and src == "yaml":
            try:
                memo_key = (src, frozenset(layer.items()))
            except TypeError:  # unhashable value
                memo_key = None
        if memo_key is not None and cache is not None and memo_key in cache:
            canon = cache[memo_key]
        else:
            canon = _canonical(layer, source=src, strict=src in strict, notes=notes)
            if memo_key is not None and cache is not None:
                cache[memo_key] = canon
        for k, v in canon.items():
            if k in merged and not _same(merged[k], v):
                conflicts.append(Conflict(k, v, src, merged[k], origin[k]))
            merged[k] = v
            origin[k] = src
    return MergedMeta(ImageMeta._assemble(merged, validate=False), origin, tuple(conflicts), tuple(notes))


# --------------------------------------------------------------------------- YAML defaults

def _matches(match: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    lowered = {str(k).lower(): v for k, v in fields.items()}
    for k, want in match.items():
        have = lowered.get(str(k).lower())
        if have is None:
            return False
        w, h = str(want).strip().lower(), str(have).strip().lower()
        if any(c in w for c in "*?["):
            if not fnmatch.fnmatchcase(h, w):
                return False
        elif w != h:
            try:
                if float(w) != float(h):
                    return False
            except ValueError:
                return False
    return True


@dataclass(frozen=True)
class MetadataDefaults:
    """Metadata defaults for a folder, read from YAML (see the module docs for the format).

    Attributes
    ----------
    path : str
        The YAML file.
    values : dict
        Flat defaults applied to every file.
    rules : tuple of (dict, dict)
        ``(match, values)``: values applied to files whose file-name fields (or ``filename``,
        a glob) match; later rules override earlier ones.
    pattern : str or None
        File-name pattern (preset or regex) for the folder, used when none is given.

    Examples
    --------
    >>> d = MetadataDefaults("x.yaml", {"objective.na": 0.45},
    ...                      (({"stain": 1}, {"channels.0.stain": "nuclei"}),))
    >>> d.resolve({"stain": 1, "filename": "a_w1.tif"})
    {'objective.na': 0.45, 'channels.0.stain': 'nuclei'}
    >>> d.resolve({"stain": 2})
    {'objective.na': 0.45}
    """

    path: str
    values: dict[str, Any] = field(default_factory=dict)
    rules: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = ()
    pattern: str | None = None

    def resolve(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The flat values for one file, given its file-name fields (plus ``filename``)."""
        out = dict(self.values)
        for match, values in self.rules:
            if _matches(match, fields):
                out.update(values)
        return out


def load_defaults(path: str | os.PathLike[str]) -> MetadataDefaults:
    """Read a YAML file of metadata defaults and validate every value up front.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    deepscope.errors.ConfigError
        If it is not valid YAML, not a mapping, a rule is malformed, or a value is invalid
        (the message names the file, the key and what was expected).
    deepscope.errors.LimitError
        Over ``limits().yaml_bytes`` or, aliases expanded, ``limits().yaml_nodes``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "meta.yaml")
    >>> _ = open(p, "w").write("objective: {na: 0.45}\\nrules:\\n  - match: {stain: 1}\\n"
    ...                        "    set: {channels: [{stain: nuclei}]}\\n")
    >>> load_defaults(p).resolve({"stain": "1"})
    {'objective.na': 0.45, 'channels.0.stain': 'nuclei'}
    """
    from deepscope.io.yamlsafe import load_yaml, read_yaml_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such metadata file: '{p}'")
    # a regular file within limits().yaml_bytes; nesting and node count (aliases expanded) checked
    data = load_yaml(read_yaml_file(p, what="metadata file"), source=str(p))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"'{p}' must hold a mapping of metadata fields (e.g. 'objective: {{na: 0.45}}'); "
                          f"found a {type(data).__name__}")
    data = dict(data)
    pattern = data.pop("pattern", None)
    if pattern is not None:
        try:
            get_pattern(str(pattern))
        except InputError as exc:
            raise ConfigError(f"'{p}': {exc}") from exc
    raw_rules = data.pop("rules", None) or []
    if not isinstance(raw_rules, list):
        raise ConfigError(f"'{p}': 'rules' must be a list of {{match: {{...}}, set: {{...}}}} items")
    values = flatten_mapping(data)
    _validate(p, "defaults", values)
    rules = []
    for i, rule in enumerate(raw_rules):
        if (not isinstance(rule, dict) or not isinstance(rule.get("match"), dict)
                or not isinstance(rule.get("set"), dict) or set(rule) - {"match", "set"}):
            raise ConfigError(f"'{p}': rules[{i}] must be a mapping with exactly 'match' (file-name fields "
                              f"to values) and 'set' (metadata); found {rule!r}")
        flat = flatten_mapping(rule["set"])
        _validate(p, f"rules[{i}]", flat)
        rules.append((dict(rule["match"]), flat))
    return MetadataDefaults(str(p), values, tuple(rules), None if pattern is None else str(pattern))


def _validate(path: Path, where: str, flat: Mapping[str, Any]) -> None:
    try:
        ImageMeta.from_flat(flat)
    except InputError as exc:
        raise ConfigError(f"'{path}' ({where}): {exc}") from exc


# --------------------------------------------------------------------------- sidecar CSV

def load_sidecar_csv(path: str | os.PathLike[str], *, key: str | None = None) -> dict[str, dict[str, Any]]:
    """Read a CSV of per-image metadata keyed by file name; columns are metadata keys.

    Column names are dotted keys or aliases (``objective.na``, ``channels.0.stain``, ``operator``);
    other columns become extras. Empty cells are left unset. The file-name column is found as in
    :class:`deepscope.data.ImageLoader` (``filename``, ``file``, ``image``, ``name``, ``path``) or
    named with ``key``.

    Returns
    -------
    dict of str to dict
        File name (without folder) to its flat metadata.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    deepscope.errors.InputError
        If it cannot be parsed, has no file-name column or lists a file twice.
    deepscope.errors.ConfigError
        If a cell holds an invalid value (the message names the file, row and column).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "meta.csv")
    >>> _ = open(p, "w").write("filename,objective.na,operator\\na.tif,0.75,kim\\nb.tif,,lee\\n")
    >>> load_sidecar_csv(p)["b.tif"]
    {'operator': 'lee'}
    """
    from deepscope.data.loader import ImageLoader, _py

    p = Path(path)
    df, key_col = ImageLoader(csv_key=key)._read_csv(p)
    out: dict[str, dict[str, Any]] = {}
    cols = [c for c in df.columns if c != key_col]
    for row_no, row in enumerate(df.itertuples(index=False, name=None), start=2):
        values = dict(zip(df.columns, row))
        flat: dict[str, Any] = {}
        for c in cols:
            v = _py(values[c])
            if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
                continue
            flat[str(c)] = v
        try:
            ImageMeta.from_flat(flat)
        except InputError as exc:
            raise ConfigError(f"'{p}' line {row_no} ({values[key_col]}): {exc}") from exc
        out[str(values[key_col])] = flat
    return out


# --------------------------------------------------------------------------- the file itself

def file_meta(path: str | os.PathLike[str], *, verify: str = "header") -> FileMeta:
    """What a file says about itself, with the SHA-256 of its bytes (read once).

    With ``verify="header"`` the header is parsed without decoding the pixels
    (:func:`deepscope.io.read_meta`: for a TIFF the pixel data offsets are checked against the file
    size, so a truncated file is still caught); ``verify="full"`` decodes the image
    (:func:`deepscope.io.read_image`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    deepscope.errors.InputError
        If ``verify`` is not one of :data:`VERIFY`.
    deepscope.errors.ImageReadError, deepscope.errors.UnsupportedFormatError
        If the file is not a readable image.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.tif")
    >>> tifffile.imwrite(p, np.zeros((3, 4, 5), np.uint16), photometric="minisblack")
    >>> m = file_meta(p)
    >>> m.shape, m.dtype, len(m.sha256)
    ((3, 4, 5), 'uint16', 64)
    """
    if verify not in VERIFY:
        raise InputError(f"verify={verify!r} is not one of {VERIFY}")
    p = Path(path)
    if verify == "full":
        return read_image(p).meta
    return read_meta(p)


def file_layers(fm: FileMeta) -> list[tuple[str, dict[str, Any]]]:
    """Metadata layers from the file itself: ``tiff``, ``imagej`` or ``ome``.

    Examples
    --------
    >>> fm = FileMeta("a.tif", "imagej-tiff", (2, 8, 8), "uint16", 16, 2, "CYX", pixel_size=(0.5, 0.5),
    ...               channel_names=("DAPI", "GFP"))
    >>> file_layers(fm)
    [('imagej', {'physical_size_y_um': 0.5, 'physical_size_x_um': 0.5, 'channels.0.name': 'DAPI', \
'channels.1.name': 'GFP'})]
    """
    source = {"ome-tiff": "ome", "ome-zarr": "ome", "imagej-tiff": "imagej", "tiff": "tiff"}.get(fm.format)
    if source is None:
        return []
    flat: dict[str, Any] = {}
    if fm.pixel_size is not None:
        flat["physical_size_y_um"], flat["physical_size_x_um"] = fm.pixel_size
    if fm.z_step is not None:
        flat["physical_size_z_um"] = fm.z_step
    for i, name in enumerate(fm.channel_names):
        if name:
            flat[f"channels.{i}.name"] = name
    if fm.ome_xml:
        flat.update(parse_ome_xml(fm.ome_xml))
    return [(source, flat)] if flat else []


_ACQ_MODES = {"widefield": "widefield", "brightfield": "brightfield", "phasecontrast": "phase-contrast",
              "differentialinterferencecontrast": "dic", "laserscanningconfocalmicroscopy": "confocal",
              "spinningdiskconfocal": "spinning-disk", "slitscanconfocal": "confocal",
              "multiphotonmicroscopy": "two-photon", "totalinternalreflection": "tirf",
              "structuredillumination": "sim", "stimulatedemissiondepletion": "sted",
              "singlemoleculeimaging": "smlm", "photoactivatedlocalizationmicroscopy": "smlm",
              "stochasticopticalreconstructionmicroscopy": "smlm", "spim": "light-sheet",
              "selectiveplaneillumination": "light-sheet", "lightsheet": "light-sheet"}


def _wavelength_nm(el: ET.Element, attr: str) -> float | None:
    v = el.get(attr)
    if v is None:
        return None
    unit = el.get(attr + "Unit", "nm").replace("\\u00B5", "µ")
    factor = _UNIT_TO_UM.get(unit.lower() if unit != "Å" else "å")
    try:
        return float(v) * (factor * 1e3 if factor is not None else 1.0)
    except ValueError:
        return None


def parse_ome_xml(xml: str) -> dict[str, Any]:
    """Acquisition metadata from an OME-XML document as flat keys (first image only).

    Reads the image's ``AcquisitionDate``, its ``Experimenter``, ``Instrument`` (microscope,
    detector), ``Objective`` (magnification, NA, immersion; refractive index from
    ``ObjectiveSettings``), each channel's name, fluor, wavelengths and acquisition mode
    (as ``instrument.modality``), and the plate/well holding the image. Pixel sizes come from
    :func:`deepscope.io.read_image`. Unparseable XML gives an empty dict (with a log message).

    Examples
    --------
    >>> xml = ('<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    ...        '<Instrument ID="Instrument:0"><Objective ID="Objective:0" LensNA="1.4" '
    ...        'NominalMagnification="63" Immersion="Oil"/></Instrument>'
    ...        '<Image ID="Image:0"><InstrumentRef ID="Instrument:0"/>'
    ...        '<ObjectiveSettings ID="Objective:0" RefractiveIndex="1.518"/>'
    ...        '<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="4" SizeY="4" SizeC="1" '
    ...        'SizeZ="1" SizeT="1"><Channel ID="Channel:0:0" Name="DAPI" EmissionWavelength="461"/>'
    ...        '</Pixels></Image></OME>')
    >>> d = parse_ome_xml(xml)
    >>> d["objective.na"], d["objective.immersion"], d["channels.0.emission_wavelength_nm"]
    (1.4, 'Oil', 461.0)
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        logger.warning("OME-XML could not be parsed (%s); its acquisition metadata is ignored", exc)
        return {}

    def tag(el: ET.Element) -> str:
        return el.tag.rsplit("}", 1)[-1]

    def children(el: ET.Element, name: str) -> list[ET.Element]:
        return [c for c in el if tag(c) == name]

    by_id = {el.get("ID"): el for el in root.iter()
             if el.get("ID") and not tag(el).endswith(("Ref", "Settings"))}  # definitions, not references
    image = next((el for el in root.iter() if tag(el) == "Image"), None)
    out: dict[str, Any] = {}
    if image is None:
        return out
    date = next((c.text for c in children(image, "AcquisitionDate") if c.text), None)
    if date:
        out["acquisition_date"] = date.strip()
    ref = next(iter(children(image, "ExperimenterRef")), None)
    exp = by_id.get(ref.get("ID")) if ref is not None else None
    if exp is not None:
        name = " ".join(x for x in (exp.get("FirstName"), exp.get("LastName")) if x) or exp.get("UserName")
        if name:
            out["experimenter"] = name
    iref = next(iter(children(image, "InstrumentRef")), None)
    instrument = by_id.get(iref.get("ID")) if iref is not None else None
    if instrument is None:
        instrument = next((el for el in root.iter() if tag(el) == "Instrument"), None)
    objective = None
    osettings = next(iter(children(image, "ObjectiveSettings")), None)
    if osettings is not None:
        objective = by_id.get(osettings.get("ID"))
        if osettings.get("RefractiveIndex"):
            out["objective.refractive_index"] = osettings.get("RefractiveIndex")
    if instrument is not None:
        mic = next(iter(children(instrument, "Microscope")), None)
        if mic is not None:
            for attr, key in (("Manufacturer", "manufacturer"), ("Model", "model")):
                if mic.get(attr):
                    out[f"instrument.{key}"] = mic.get(attr)
        det = next(iter(children(instrument, "Detector")), None)
        if det is not None and (det.get("Model") or det.get("Manufacturer")):
            out["instrument.detector"] = det.get("Model") or det.get("Manufacturer")
        if objective is None:
            objs = children(instrument, "Objective")
            objective = objs[0] if len(objs) == 1 else None
    if objective is not None:
        for attr, key in (("NominalMagnification", "magnification"), ("LensNA", "na"),
                          ("Immersion", "immersion"), ("Model", "model")):
            if objective.get(attr):
                v = objective.get(attr)
                out[f"objective.{key}"] = float(v) if key in ("magnification", "na") and _isnum(v) else v
    pixels = next(iter(children(image, "Pixels")), None)
    if pixels is not None:
        for i, ch in enumerate(children(pixels, "Channel")):
            for attr, key in (("Name", "name"), ("Fluor", "fluor"), ("ContrastMethod", "contrast_method")):
                if ch.get(attr):
                    out[f"channels.{i}.{key}"] = ch.get(attr)
            for attr, key in (("ExcitationWavelength", "excitation_wavelength_nm"),
                              ("EmissionWavelength", "emission_wavelength_nm")):
                wl = _wavelength_nm(ch, attr)
                if wl is not None:
                    out[f"channels.{i}.{key}"] = wl
            mode = (ch.get("AcquisitionMode") or "").lower()
            if mode and "instrument.modality" not in out:
                out["instrument.modality"] = _ACQ_MODES.get(mode, "other")
    image_id = image.get("ID")
    for well in (el for el in root.iter() if tag(el) == "Well"):
        for ws in children(well, "WellSample"):
            ir = next(iter(children(ws, "ImageRef")), None)
            if ir is not None and ir.get("ID") == image_id:
                try:
                    r, c = int(well.get("Row", "")), int(well.get("Column", ""))
                    out["well"] = f"{_row_letters(r)}{c + 1:02d}"
                except ValueError:
                    pass
                if ws.get("Index") is not None and _isnum(ws.get("Index") or ""):
                    out["site"] = int(float(ws.get("Index") or 0))
                plate = next((p for p in root.iter() if tag(p) == "Plate" and well in list(p)), None)
                if plate is not None and (plate.get("Name") or plate.get("ID")):
                    out["plate"] = plate.get("Name") or plate.get("ID")
    return out


def _isnum(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _row_letters(r: int) -> str:
    s = ""
    r += 1
    while r:
        r, rem = divmod(r - 1, 26)
        s = chr(65 + rem) + s
    return s


# --------------------------------------------------------------------------- all together

class MetadataSources:
    """Gathers and merges an image's metadata from every source (see the module docs).

    Parameters
    ----------
    pattern : str or FilenamePattern, optional
        File-name pattern: a preset (``"bbbc005"``) or a regex with named groups.
    meta : path or sequence of paths, optional
        YAML files of defaults (``.yaml``/``.yml``) and CSV sidecars keyed by file name
        (``.csv``/``.tsv``), applied to every file.
    discover : bool, default True
        Also use ``deepscope-meta.yaml`` and ``deepscope-meta.csv`` found in each image's folder
        (they come before the files given in ``meta``, which win).
    csv_key : str, optional
        Name of the file-name column of the CSV sidecars.

    Raises
    ------
    FileNotFoundError
        If a ``meta`` file does not exist.
    deepscope.errors.InputError
        If a ``meta`` file is neither YAML nor CSV, or the pattern is invalid.
    deepscope.errors.ConfigError
        If a YAML or CSV holds invalid metadata.

    Examples
    --------
    >>> src = MetadataSources(pattern="bbbc005")
    >>> from deepscope.io import FileMeta
    >>> fm = FileMeta("/d/SIMCEPImages_P05_C18_F48_s05_w1.TIF", "tiff", (8, 8), "uint8", 8, 1, "YX")
    >>> m = src.gather(fm)
    >>> m.meta.well, m.meta.site, m.meta.extras["blur"], m.sources["extras.blur"]
    ('P05', 5, 48, 'pattern')
    """

    def __init__(self, *, pattern: str | FilenamePattern | None = None,
                 meta: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                 discover: bool = True, csv_key: str | None = None) -> None:
        self.pattern = get_pattern(pattern)
        self.discover = discover
        self.csv_key = csv_key
        files = [meta] if isinstance(meta, (str, os.PathLike)) else list(meta or [])
        self.defaults: list[MetadataDefaults] = []
        self.tables: list[dict[str, dict[str, Any]]] = []
        for f in files:
            kind = _sidecar_kind(f)
            if kind == "yaml":
                self.defaults.append(load_defaults(f))
            else:
                self.tables.append(load_sidecar_csv(f, key=csv_key))
        self._folder_cache: dict[str, tuple[list[MetadataDefaults], list[dict[str, dict[str, Any]]]]] = {}
        self._layer_cache: dict[Any, dict[str, Any]] = {}

    def _folder(self, folder: Path) -> tuple[list[MetadataDefaults], list[dict[str, dict[str, Any]]]]:
        key = str(folder)
        if key not in self._folder_cache:
            ds, ts = [], []
            if self.discover:
                for name in SIDECAR_YAML:
                    if (folder / name).is_file():
                        ds.append(load_defaults(folder / name))
                        break
                if (folder / SIDECAR_CSV).is_file():
                    ts.append(load_sidecar_csv(folder / SIDECAR_CSV, key=self.csv_key))
            self._folder_cache[key] = (ds, ts)
        return self._folder_cache[key]

    def layers(self, fm: FileMeta, *, overrides: Mapping[str, Any] | None = None
               ) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
        """The (source, flat) layers of one file and notes, before merging."""
        p = Path(fm.path)
        notes: list[str] = []
        folder_defaults, folder_tables = self._folder(p.parent)
        defaults = folder_defaults + self.defaults
        tables = folder_tables + self.tables
        pattern = self.pattern
        if pattern is None:
            names = [d.pattern for d in defaults if d.pattern]
            pattern = get_pattern(names[-1]) if names else None
        fields: dict[str, Any] = {"filename": p.name}
        layers: list[tuple[str, dict[str, Any]]] = []
        if pattern is not None:
            parsed = pattern.parse(p.name)
            if parsed is None:
                label = pattern.name if pattern.name != "custom" else pattern.regex
                notes.append(f"file name does not match pattern {label!r}")
            else:
                fields.update(parsed)
        rows = [t[p.name] for t in tables if p.name in t]
        for row in rows:
            for k, v in row.items():
                fields.setdefault(k, v)
        if defaults:
            yaml_flat: dict[str, Any] = {}
            for d in defaults:
                yaml_flat.update(d.resolve(fields))
            layers.append(("yaml", yaml_flat))
        layers.extend(file_layers(fm))
        if pattern is not None and len(fields) > 1:
            layers.append(("pattern", {k: v for k, v in fields.items()
                                       if k != "filename" and k in pattern.columns}))
        for row in rows:
            layers.append(("csv", row))
        if overrides:
            layers.append(("explicit", dict(overrides)))
        return layers, notes

    def gather(self, fm: FileMeta | str | os.PathLike[str], *,
               overrides: Mapping[str, Any] | None = None) -> MergedMeta:
        """Merge the metadata of one file (a :class:`~deepscope.io.FileMeta` or a path to read).

        Raises
        ------
        deepscope.errors.InputError
            If a file-name field, CSV cell or override has an invalid value for its field.
        """
        if not isinstance(fm, FileMeta):
            fm = file_meta(fm)
        layers, notes = self.layers(fm, overrides=overrides)
        merged = merge_sources(layers, cache=self._layer_cache)
        if notes:
            merged = MergedMeta(merged.meta, merged.sources, merged.conflicts, tuple(notes) + merged.notes)
        return merged


def _sidecar_kind(path: str | os.PathLike[str]) -> str:
    low = os.fspath(path).lower()
    if low.endswith((".yaml", ".yml")):
        return "yaml"
    if low.endswith((".csv", ".tsv")):
        return "csv"
    raise InputError(f"metadata file '{path}' is neither YAML (.yaml/.yml, defaults for a folder) nor CSV "
                     "(.csv/.tsv, one row per file name)")
