from __future__ import annotations

import datetime as dt
import json

import pytest

from deepscope.errors import InputError
from deepscope.provenance import Channel, ImageMeta, Objective
from deepscope.provenance.meta import canonical_key, flatten_mapping, format_value, key_leaf, key_name


def test_from_flat_resolves_aliases_units_and_extras():
    meta = ImageMeta.from_flat({
        "NA": "1.4", "magnification": "63x", "immersion": "Oil", "operator": "kim",
        "pixel_size_um": "65 nm", "z_step": "0.3 um", "modality": "Light sheet",
        "channels.0.name": "DAPI", "channels.0.emission_nm": 461, "channels.1.fluorophore": "GFP",
        "date": dt.date(2024, 3, 5), "sample_id": "S1", "fixation": "4% PFA", "well": "b03", "site": "4",
        "blur": 48, "Count": 7,
    })
    assert meta.objective == Objective(magnification=63.0, na=1.4, immersion="oil")
    assert meta.experimenter == "kim" and meta.acquisition_date == "2024-03-05"
    assert meta.physical_size_x_um == pytest.approx(0.065) and meta.physical_size_y_um == pytest.approx(0.065)
    assert meta.physical_size_z_um == pytest.approx(0.3)
    assert meta.instrument.modality == "light-sheet"
    assert meta.channels == (Channel(name="DAPI", emission_wavelength_nm=461.0), Channel(fluor="GFP"))
    assert meta.sample.id == "S1" and meta.preparation.fixation == "4% PFA"
    assert meta.well == "B03" and meta.site == 4
    assert meta.extras == {"blur": 48, "Count": 7}  # unknown keys keep the user's spelling


def test_flatten_to_dict_roundtrip_is_json_serialisable():
    meta = ImageMeta.from_flat({"na": 0.75, "channels.1.stain": "actin", "extras.field": "C1_s01",
                                "instrument.accelerating_voltage_kv": "200 kV"})
    flat = meta.flatten()
    assert flat["channels.1.stain"] == "actin" and "channels.0.stain" not in flat
    assert flat["instrument.accelerating_voltage_kv"] == 200.0
    d = json.loads(json.dumps(meta.to_dict()))
    assert d["channels"][0] == {} and d["objective"] == {"na": 0.75}
    assert ImageMeta.from_dict(d) == meta
    assert ImageMeta.from_flat(flat) == meta
    assert meta.get("na") == 0.75 and meta.get("objective.magnification") is None


@pytest.mark.parametrize("flat, match", [
    ({"na": 2.5}, "out of range"),
    ({"na": "wide"}, "not a number"),
    ({"objective.numerical_apperture": 0.5}, "Objective has no field 'numerical_apperture'"),
    ({"modality": "holography"}, "not a known modality"),
    ({"immersion": "honey"}, "not a known immersion"),
    ({"acquisition_date": "12/03/2024"}, "not an ISO 8601 date"),
    ({"site": "s01"}, "not an integer"),
    ({"pixel_size_um": "3 kV"}, "unit 'kV' does not fit"),
    ({"channels.x.name": "a"}, "channels.<index>.<field>"),
])
def test_invalid_values_are_named(flat, match):
    with pytest.raises(InputError, match=match):
        ImageMeta.from_flat(flat)


def test_key_helpers():
    assert canonical_key("Objective.NA") == "objective.na"
    assert canonical_key("technician") == "experimenter"
    assert canonical_key("extras.Blur") == "extras.Blur"
    assert key_name("channels.12.stain") == "channels.stain" and key_leaf("channels.12.stain") == "stain"
    assert flatten_mapping({"a": {"b": [{"c": 1}, {"c": 2}]}, "d": [1, 2]}) == {"a.b.0.c": 1, "a.b.1.c": 2,
                                                                               "d": [1, 2]}
    assert [format_value(v) for v in (1.0, 0.1, False, [1])] == ["1", "0.1", "false", "[1]"]
