"""Acquisition metadata of one image: :class:`ImageMeta` and its parts.

Field names follow the OME data model where it has one (``Objective.NominalMagnification`` is
``objective.magnification``, ``LensNA`` is ``objective.na``, ``Channel.Fluor`` is
``channels[i].fluor``, ``Pixels.PhysicalSizeX`` is ``physical_size_x_um``,
``Image.AcquisitionDate`` is ``acquisition_date``, ``Experimenter`` is ``experimenter``).
Every field is optional. Units are part of the name: ``_um`` micrometres, ``_nm`` nanometres,
``_kv`` kilovolts; dates are ISO 8601 strings.

Metadata travels as a *flat* dict of dotted keys (``"objective.na"``, ``"channels.0.stain"``,
``"extras.blur"``): that is how sources are merged, how the catalog stores and queries it and
how CSV sidecars name their columns. :func:`canonical_key` maps the friendly spellings users
write (``na``, ``operator``, ``pixel_size_um``) to those keys.

This module imports only the standard library: the lineage code calls it per output file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepscope.errors import InputError

__all__ = [
    "ImageMeta", "Instrument", "Objective", "Channel", "Sample", "Preparation", "MODALITIES",
    "IMMERSIONS", "canonical_key", "flatten_mapping", "key_name", "key_leaf", "format_value",
]

#: Imaging modalities :attr:`Instrument.modality` accepts (lower case).
MODALITIES = ("widefield", "brightfield", "phase-contrast", "dic", "confocal", "spinning-disk",
              "two-photon", "light-sheet", "tirf", "sim", "sted", "smlm", "electron", "sem", "tem",
              "afm", "other")
_MODALITY_ALIASES = {"lightsheet": "light-sheet", "light sheet": "light-sheet", "spim": "light-sheet",
                     "wide-field": "widefield", "wide field": "widefield", "em": "electron",
                     "phase": "phase-contrast", "phase contrast": "phase-contrast",
                     "2p": "two-photon", "multiphoton": "two-photon", "laser-scanning-confocal": "confocal",
                     "spinningdisk": "spinning-disk", "spinning disk": "spinning-disk",
                     "fluorescence": "widefield", "epifluorescence": "widefield"}

#: Objective immersion media (OME ``Objective.Immersion``, lower case).
IMMERSIONS = ("air", "water", "waterdipping", "oil", "glycerol", "silicone", "multi", "other")

#: Modalities that image with electrons (their wavelength comes from the accelerating voltage).
ELECTRON_MODALITIES = ("electron", "sem", "tem")


@dataclass(frozen=True)
class Instrument:
    """The microscope (OME ``Instrument`` / ``Microscope``).

    Attributes
    ----------
    microscope : str or None
        Free-text name of the microscope (``"Nikon Ti2"``, ``"SIMCEP simulation"``).
    manufacturer, model : str or None
        OME ``Microscope.Manufacturer`` / ``Model``.
    modality : str or None
        One of :data:`MODALITIES`.
    detector : str or None
        Camera or detector name.
    accelerating_voltage_kv : float or None
        Electron microscopes: accelerating voltage in kilovolts (sets the electron wavelength).
    """

    microscope: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    modality: str | None = None
    detector: str | None = None
    accelerating_voltage_kv: float | None = None


@dataclass(frozen=True)
class Objective:
    """The objective lens (OME ``Objective`` and ``ObjectiveSettings``).

    Attributes
    ----------
    model : str or None
        Lens name (``"Plan Apo 20x/0.75"``).
    magnification : float or None
        Nominal magnification (OME ``NominalMagnification``).
    na : float or None
        Numerical aperture (OME ``LensNA``), 0 < NA <= 1.7. For electron microscopes, the sine of
        the objective semi-angle.
    immersion : str or None
        One of :data:`IMMERSIONS`.
    refractive_index : float or None
        Refractive index of the immersion medium (OME ``ObjectiveSettings.RefractiveIndex``).
    """

    model: str | None = None
    magnification: float | None = None
    na: float | None = None
    immersion: str | None = None
    refractive_index: float | None = None


@dataclass(frozen=True)
class Channel:
    """One channel (OME ``Channel``).

    Attributes
    ----------
    name : str or None
        Channel name (OME ``Name``), e.g. ``"DAPI"`` or ``"w1"``.
    fluor : str or None
        Fluorophore (OME ``Fluor``), e.g. ``"Hoechst 33342"``.
    stain : str or None
        What the channel shows / the stain used (``"nuclei"``, ``"phalloidin"``).
    excitation_wavelength_nm, emission_wavelength_nm : float or None
        Wavelengths in nanometres (OME ``ExcitationWavelength`` / ``EmissionWavelength``).
    contrast_method : str or None
        OME ``ContrastMethod`` (``"fluorescence"``, ``"brightfield"`` ...).
    """

    name: str | None = None
    fluor: str | None = None
    stain: str | None = None
    excitation_wavelength_nm: float | None = None
    emission_wavelength_nm: float | None = None
    contrast_method: str | None = None


@dataclass(frozen=True)
class Sample:
    """What was imaged.

    Attributes
    ----------
    id : str or None
        Sample identifier.
    organism, cell_line, tissue, treatment : str or None
        Biological description (``"Homo sapiens"``, ``"HeLa"``, ``"liver"``, ``"10 uM nocodazole 2 h"``).
    """

    id: str | None = None
    organism: str | None = None
    cell_line: str | None = None
    tissue: str | None = None
    treatment: str | None = None


@dataclass(frozen=True)
class Preparation:
    """How the sample was prepared: where preparation artifacts come from.

    Attributes
    ----------
    fixation : str or None
        Fixation method (``"4% PFA 15 min"``, ``"glutaraldehyde + OsO4"``, ``"live"``).
    staining_protocol : str or None
        Staining protocol.
    sectioning : str or None
        Sectioning (``"none"``, ``"cryosection 10 um"``, ``"ultramicrotome 70 nm"``).
    mounting : str or None
        Mounting medium.
    """

    fixation: str | None = None
    staining_protocol: str | None = None
    sectioning: str | None = None
    mounting: str | None = None


_SECTIONS: dict[str, type] = {"instrument": Instrument, "objective": Objective, "sample": Sample,
                              "preparation": Preparation}
_TOP_SCALARS = ("physical_size_x_um", "physical_size_y_um", "physical_size_z_um", "acquisition_date",
                "experimenter", "plate", "well", "site", "location")


@dataclass(frozen=True)
class ImageMeta:
    """Acquisition metadata of one image; every field optional, units in the names.

    Attributes
    ----------
    instrument : Instrument
        Microscope and modality.
    objective : Objective
        Magnification, numerical aperture, immersion.
    channels : tuple of Channel
        One entry per channel, in the file's channel order.
    physical_size_x_um, physical_size_y_um : float or None
        Pixel size along columns (x) and rows (y) in micrometres (OME ``PhysicalSizeX/Y``).
    physical_size_z_um : float or None
        Distance between z-planes in micrometres (OME ``PhysicalSizeZ``).
    acquisition_date : str or None
        ISO 8601 date or date-time (OME ``AcquisitionDate``).
    experimenter : str or None
        Who acquired the image: operator / technician (OME ``Experimenter``).
    sample : Sample
        What was imaged.
    preparation : Preparation
        Fixation, staining, sectioning, mounting.
    plate, well : str or None
        Plate id and well (``"A05"``) for plate-based screens (OME ``Plate`` / ``Well``).
    site : int or None
        Field of view within the well (OME ``WellSample`` index).
    location : str or None
        Where the sample was collected (free text or ``"lat,lon"``).
    extras : dict
        Anything else (file-name fields such as BBBC005's ``blur`` and ``count``), scalar values.

    Examples
    --------
    >>> meta = ImageMeta.from_flat({"na": 0.75, "magnification": 20, "channels.0.stain": "DAPI",
    ...                             "pixel_size_um": 0.325, "blur": 48})
    >>> meta.objective.na, meta.channels[0].stain, meta.physical_size_x_um, meta.extras["blur"]
    (0.75, 'DAPI', 0.325, 48)
    >>> sorted(meta.flatten())[:3]
    ['channels.0.stain', 'extras.blur', 'objective.magnification']
    >>> ImageMeta.from_dict(meta.to_dict()) == meta
    True
    """

    instrument: Instrument = field(default_factory=Instrument)
    objective: Objective = field(default_factory=Objective)
    channels: tuple[Channel, ...] = ()
    physical_size_x_um: float | None = None
    physical_size_y_um: float | None = None
    physical_size_z_um: float | None = None
    acquisition_date: str | None = None
    experimenter: str | None = None
    sample: Sample = field(default_factory=Sample)
    preparation: Preparation = field(default_factory=Preparation)
    plate: str | None = None
    well: str | None = None
    site: int | None = None
    location: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ conversions
    def flatten(self) -> dict[str, Any]:
        """Return the set (non-None) fields as ``{dotted key: value}``.

        Examples
        --------
        >>> ImageMeta(channels=(Channel(name="w1"),), site=3).flatten()
        {'channels.0.name': 'w1', 'site': 3}
        """
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES[ImageMeta]:
            v = getattr(self, name)
            if name in _SECTIONS:
                for sub in _FIELD_NAMES[_SECTIONS[name]]:
                    sv = getattr(v, sub)
                    if sv is not None:
                        out[f"{name}.{sub}"] = sv
            elif name == "channels":
                for i, ch in enumerate(v):
                    for sub in _FIELD_NAMES[Channel]:
                        sv = getattr(ch, sub)
                        if sv is not None:
                            out[f"channels.{i}.{sub}"] = sv
            elif name == "extras":
                for k, ev in v.items():
                    if ev is not None:
                        out[f"extras.{k}"] = ev
            elif v is not None:
                out[name] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a nested, JSON-serialisable dict of the set fields (None left out)."""
        out: dict[str, Any] = {}
        for key, value in self.flatten().items():
            parts = key.split(".", 2) if key.startswith("channels.") else key.split(".", 1)
            if parts[0] == "channels":
                chans = out.setdefault("channels", [])
                i = int(parts[1])
                while len(chans) <= i:
                    chans.append({})
                chans[i][parts[2]] = value
            elif len(parts) == 2:
                out.setdefault(parts[0], {})[parts[1]] = value
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageMeta:
        """Build from a nested dict such as :meth:`to_dict` returns or a YAML file holds.

        Raises
        ------
        deepscope.errors.InputError
            If a field has a value of the wrong type or out of range.
        """
        return cls.from_flat(flatten_mapping(data))

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> ImageMeta:
        """Build from a flat ``{dotted key: value}`` dict, validating and converting values.

        Keys go through :func:`canonical_key` (so ``na``, ``operator``, ``pixel_size_um`` work);
        keys that name no field go to :attr:`extras`. Numbers given as strings are converted;
        lengths may carry a unit (``"650 nm"`` for a ``_um`` field becomes 0.65).

        Raises
        ------
        deepscope.errors.InputError
            If a value has the wrong type, is out of range, or a section has no such field
            (``objective.numerical_apperture``); the message names the valid fields.
        """
        return cls._assemble(flat, validate=True)

    @classmethod
    def _assemble(cls, flat: Mapping[str, Any], *, validate: bool) -> ImageMeta:
        # validate=False: ``flat`` is already canonical and converted (from ``flatten()``)
        sections: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
        channels: dict[int, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for raw_key, value in flat.items():
            if value is None:
                continue
            pairs = _expand_alias(str(raw_key), value) if validate else ((raw_key, value),)
            for key, v in pairs:
                head, _, rest = key.partition(".")
                if head == "extras" and rest:
                    extras[rest] = _extra_value(v) if validate else v
                elif head in _SECTIONS and rest:
                    sections[head][rest] = _convert(key, _SECTIONS[head], rest, v) if validate else v
                elif head == "channels" and rest:
                    idx, _, attr = rest.partition(".")
                    if not idx.isdigit() or not attr:
                        raise InputError(f"metadata key {raw_key!r}: channel fields are named "
                                         "'channels.<index>.<field>', e.g. 'channels.0.stain'")
                    channels.setdefault(int(idx), {})[attr] = _convert(key, Channel, attr, v) if validate else v
                elif key in _TOP_SCALARS:
                    top[key] = _convert(key, cls, key, v) if validate else v
                else:
                    extras[key] = _extra_value(v) if validate else v
        chans: list[Channel] = []
        if channels:
            for i in range(max(channels) + 1):
                chans.append(Channel(**channels.get(i, {})))
        return cls(instrument=Instrument(**sections["instrument"]), objective=Objective(**sections["objective"]),
                   channels=tuple(chans), sample=Sample(**sections["sample"]),
                   preparation=Preparation(**sections["preparation"]), extras=extras, **top)

    def to_json(self) -> str:
        """Serialise :meth:`to_dict` as compact JSON with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    def get(self, key: str, default: Any = None) -> Any:
        """Value of one dotted key (``"objective.na"``, ``"channels.1.stain"``, ``"extras.blur"``)."""
        return self.flatten().get(canonical_key(key), default)


# --------------------------------------------------------------------------- keys

_ALIASES: dict[str, str | tuple[str, ...]] = {
    "operator": "experimenter", "technician": "experimenter", "acquired_by": "experimenter",
    "date": "acquisition_date", "acquired": "acquisition_date", "acquisition_time": "acquisition_date",
    "microscope": "instrument.microscope", "modality": "instrument.modality",
    "manufacturer": "instrument.manufacturer", "detector": "instrument.detector",
    "accelerating_voltage_kv": "instrument.accelerating_voltage_kv",
    "magnification": "objective.magnification", "nominal_magnification": "objective.magnification",
    "objective.nominal_magnification": "objective.magnification",
    "na": "objective.na", "numerical_aperture": "objective.na", "lens_na": "objective.na",
    "objective.numerical_aperture": "objective.na", "objective.lens_na": "objective.na",
    "immersion": "objective.immersion", "refractive_index": "objective.refractive_index",
    "pixel_size_um": ("physical_size_y_um", "physical_size_x_um"),
    "pixel_size": ("physical_size_y_um", "physical_size_x_um"),
    "physical_size_x": "physical_size_x_um", "physical_size_y": "physical_size_y_um",
    "physical_size_z": "physical_size_z_um", "z_step_um": "physical_size_z_um", "z_step": "physical_size_z_um",
    "sample_id": "sample.id", "organism": "sample.organism", "cell_line": "sample.cell_line",
    "tissue": "sample.tissue", "treatment": "sample.treatment",
    "fixation": "preparation.fixation", "staining_protocol": "preparation.staining_protocol",
    "sectioning": "preparation.sectioning", "mounting": "preparation.mounting",
    "collection_location": "location",
}
_CHANNEL_ALIASES = {"fluorophore": "fluor", "excitation_nm": "excitation_wavelength_nm",
                    "emission_nm": "emission_wavelength_nm", "excitation_wavelength": "excitation_wavelength_nm",
                    "emission_wavelength": "emission_wavelength_nm", "ex_nm": "excitation_wavelength_nm",
                    "em_nm": "emission_wavelength_nm"}
_SECTION_ALIASES = {"objective": {"numerical_aperture": "na", "lens_na": "na",
                                  "nominal_magnification": "magnification"},
                    "instrument": {"voltage_kv": "accelerating_voltage_kv"}}


def canonical_key(key: str) -> str:
    """Map a user's spelling of a metadata key to the dotted key :class:`ImageMeta` uses.

    Keys are lower-cased (except under ``extras.``) and friendly aliases resolved; a key that
    names no field is returned as is (it will land in ``extras``). A key that expands to several
    fields (``pixel_size_um`` sets x and y) returns the first.

    Examples
    --------
    >>> canonical_key("NA"), canonical_key("operator"), canonical_key("channels.0.Fluorophore")
    ('objective.na', 'experimenter', 'channels.0.fluor')
    >>> canonical_key("blur")
    'blur'
    """
    return _expand_key(key)[0]


def _expand_key(key: str) -> tuple[str, ...]:
    k = key.strip()
    if k.lower().startswith("extras."):
        return ("extras." + k[7:],)
    k = k.lower().replace(" ", "_")
    alias = _ALIASES.get(k)
    if alias is not None:
        return alias if isinstance(alias, tuple) else (alias,)
    head, _, rest = k.partition(".")
    if head == "channels" and rest:
        idx, _, attr = rest.partition(".")
        if not attr:  # "channels.<field>": any channel (queries, policies)
            return (f"channels.{_CHANNEL_ALIASES.get(idx, idx)}",)
        return (f"channels.{idx}.{_CHANNEL_ALIASES.get(attr, attr)}",)
    if head in _SECTION_ALIASES:
        return (f"{head}.{_SECTION_ALIASES[head].get(rest, rest)}",)
    return (k,)


_KNOWN_PREFIXES = tuple(f"{s}." for s in (*_SECTIONS, "channels", "extras"))


def _expand_alias(key: str, value: Any) -> list[tuple[str, Any]]:
    keys = _expand_key(key)
    if keys[0] not in _TOP_SCALARS and not keys[0].startswith(_KNOWN_PREFIXES):
        return [(key, value)]  # unknown: extras, with the user's spelling kept
    return [(k, value) for k in keys]


def key_name(key: str) -> str:
    """Dotted key without channel indices: ``channels.0.stain`` -> ``channels.stain``.

    Examples
    --------
    >>> key_name("channels.1.stain"), key_name("objective.na")
    ('channels.stain', 'objective.na')
    """
    return re.sub(r"\.\d+(?=\.|$)", "", key)


def key_leaf(key: str) -> str:
    """Last part of a dotted key: ``extras.blur`` -> ``blur``.

    Examples
    --------
    >>> key_leaf("extras.blur"), key_leaf("site")
    ('blur', 'site')
    """
    return key.rsplit(".", 1)[-1]


def flatten_mapping(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts and lists into dotted keys (lists of channels get indices).

    Examples
    --------
    >>> flatten_mapping({"objective": {"na": 0.5}, "channels": [{"stain": "DAPI"}]})
    {'objective.na': 0.5, 'channels.0.stain': 'DAPI'}
    """
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_mapping(v, key + "."))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, Mapping) for x in v):
            for i, item in enumerate(v):
                out.update(flatten_mapping(item, f"{key}.{i}."))
        else:
            out[key] = v
    return out


def format_value(value: Any) -> str:
    """The text form of a metadata value used for storage and display (``48``, ``0.75``, ``DAPI``).

    Examples
    --------
    >>> format_value(48.0), format_value(True), format_value("DAPI")
    ('48', 'true', 'DAPI')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


# --------------------------------------------------------------------------- values

_UNIT_TO_UM = {"nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "mm": 1e3,
               "m": 1e6, "a": 1e-4, "å": 1e-4, "angstrom": 1e-4, "pm": 1e-6}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµμÅå]*)\s*$")
_RANGES = {"na": (0.0, 1.7, False), "magnification": (0.0, 1e6, False), "refractive_index": (1.0, 2.6, True),
           "excitation_wavelength_nm": (0.0, 1e5, False), "emission_wavelength_nm": (0.0, 1e5, False),
           "accelerating_voltage_kv": (0.0, 1e4, False), "physical_size_x_um": (0.0, 1e6, False),
           "physical_size_y_um": (0.0, 1e6, False), "physical_size_z_um": (0.0, 1e6, False)}


def _kind(annotation: Any) -> str:
    t = str(annotation)
    return "float" if "float" in t else "int" if "int" in t else "str"


#: field names and value kinds ("str", "int", "float") of each metadata class (fixed at import)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {
    c: tuple(f.name for f in dataclasses.fields(c))
    for c in (ImageMeta, Instrument, Objective, Channel, Sample, Preparation)}
_FIELD_KINDS: dict[type, dict[str, str]] = {
    c: {f.name: _kind(f.type) for f in dataclasses.fields(c)}
    for c in (ImageMeta, Instrument, Objective, Channel, Sample, Preparation)}


def _field_type(owner: type, attr: str) -> str | None:
    return _FIELD_KINDS[owner].get(attr)


def _convert(key: str, owner: type, attr: str, value: Any) -> Any:
    kind = _field_type(owner, attr)
    if kind is None or attr in {"instrument", "objective", "sample", "preparation", "channels", "extras"}:
        valid = [f.name for f in dataclasses.fields(owner)]
        raise InputError(f"metadata key {key!r}: {owner.__name__} has no field {attr!r}; valid fields are "
                         f"{', '.join(valid)}")
    if kind == "str":
        if isinstance(value, _dt.datetime):
            text = value.isoformat()
        elif isinstance(value, _dt.date):
            text = value.isoformat()
        elif isinstance(value, float) and value == int(value):
            text = str(int(value))
        else:
            text = str(value).strip()
        if attr == "modality":
            low = text.lower()
            low = _MODALITY_ALIASES.get(low, low)
            if low not in MODALITIES:
                raise InputError(f"metadata {key!r}={text!r} is not a known modality; use one of "
                                 f"{', '.join(MODALITIES)}")
            return low
        if attr == "immersion":
            low = text.lower().replace(" ", "").replace("-", "")
            if low not in IMMERSIONS:
                raise InputError(f"metadata {key!r}={text!r} is not a known immersion; use one of "
                                 f"{', '.join(IMMERSIONS)}")
            return low
        if attr == "acquisition_date":
            try:
                _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise InputError(f"metadata {key!r}={text!r} is not an ISO 8601 date; write it as "
                                 "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS") from None
        if attr == "well":
            return text.upper()
        return text
    if kind == "int":
        try:
            f = float(value) if not isinstance(value, bool) else math.nan
            if not f.is_integer():
                raise ValueError
            return int(f)
        except (TypeError, ValueError):
            raise InputError(f"metadata {key!r}={value!r} is not an integer") from None
    # float, possibly with a unit
    number = _to_float(key, attr, value)
    lo, hi, inclusive = _RANGES.get(attr, (-math.inf, math.inf, True))
    ok = (lo <= number <= hi) if inclusive else (lo < number <= hi)
    if not math.isfinite(number) or not ok:
        raise InputError(f"metadata {key!r}={value!r} is out of range; expected "
                         f"{lo} {'<=' if inclusive else '<'} value <= {hi}")
    return number


def _to_float(key: str, attr: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"metadata {key!r}={value!r} is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    m = _QUANTITY.match(str(value))
    if not m:
        raise InputError(f"metadata {key!r}={value!r} is not a number (optionally with a unit such as "
                         "'0.65 um' or '488 nm')")
    number, unit = float(m.group(1)), m.group(2)
    if not unit:
        return number
    unit_l = unit.lower() if unit not in ("Å",) else "å"
    if attr.endswith(("_um", "_nm")) and unit_l in _UNIT_TO_UM:
        um = number * _UNIT_TO_UM[unit_l]
        return um if attr.endswith("_um") else um * 1e3
    if attr.endswith("_kv") and unit_l in ("kv", "v"):
        return number if unit_l == "kv" else number / 1e3
    if attr == "magnification" and unit_l == "x":
        return number
    raise InputError(f"metadata {key!r}={value!r}: unit {unit!r} does not fit this field "
                     f"({'length' if attr.endswith(('_um', '_nm')) else attr})")


def _extra_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, default=str))
    return str(value)
