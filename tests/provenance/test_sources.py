from __future__ import annotations

import numpy as np
import pytest
import tifffile

from deepscope.errors import ConfigError, ImageReadError, InputError
from deepscope.provenance.sources import (MetadataSources, file_layers, file_meta, load_defaults,
                                          load_sidecar_csv, merge_sources)

OME_XML = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
<Experimenter ID="Experimenter:0" FirstName="Ada" LastName="Lovelace"/>
<Instrument ID="Instrument:0"><Microscope Manufacturer="Nikon" Model="Ti2"/>
<Detector ID="Detector:0" Model="Orca Flash4"/>
<Objective ID="Objective:0" Model="Plan Apo 60x" NominalMagnification="60" LensNA="1.4" Immersion="Oil"/></Instrument>
<Plate ID="Plate:0" Name="P1"><Well ID="Well:0" Row="1" Column="2"><WellSample ID="WellSample:0" Index="3">
<ImageRef ID="Image:0"/></WellSample></Well></Plate>
<Image ID="Image:0" Name="x"><AcquisitionDate>2024-05-06T10:11:12</AcquisitionDate>
<ExperimenterRef ID="Experimenter:0"/><InstrumentRef ID="Instrument:0"/>
<ObjectiveSettings ID="Objective:0" RefractiveIndex="1.515"/>
<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="8" SizeY="6" SizeC="2" SizeZ="1" SizeT="1"
 PhysicalSizeX="108" PhysicalSizeXUnit="nm" PhysicalSizeY="108" PhysicalSizeYUnit="nm">
<Channel ID="Channel:0:0" Name="DAPI" Fluor="DAPI" ExcitationWavelength="405" EmissionWavelength="461"
 AcquisitionMode="WideField" SamplesPerPixel="1"/>
<Channel ID="Channel:0:1" Name="GFP" EmissionWavelength="0.51" EmissionWavelengthUnit="um" SamplesPerPixel="1"/>
<TiffData IFD="0" PlaneCount="2"/></Pixels></Image></OME>"""


@pytest.fixture
def ome_tiff(tmp_path):
    p = tmp_path / "plate1_B03_s3.ome.tif"
    tifffile.imwrite(p, np.arange(96, dtype=np.uint16).reshape(2, 6, 8), description=OME_XML, metadata=None,
                     photometric="minisblack")
    return p


def test_ome_tiff_gives_instrument_objective_channels_plate(ome_tiff):
    fm = file_meta(ome_tiff)
    assert fm.format == "ome-tiff" and fm.shape == (2, 6, 8) and fm.axes == "CYX"
    m = MetadataSources().gather(fm).meta
    assert (m.instrument.manufacturer, m.instrument.model, m.instrument.detector) == ("Nikon", "Ti2", "Orca Flash4")
    assert m.instrument.modality == "widefield"
    assert (m.objective.magnification, m.objective.na, m.objective.immersion) == (60.0, 1.4, "oil")
    assert m.objective.refractive_index == pytest.approx(1.515)
    assert m.physical_size_x_um == pytest.approx(0.108) and m.physical_size_y_um == pytest.approx(0.108)
    assert [c.name for c in m.channels] == ["DAPI", "GFP"]
    assert m.channels[0].excitation_wavelength_nm == 405 and m.channels[1].emission_wavelength_nm == pytest.approx(510)
    assert (m.experimenter, m.acquisition_date) == ("Ada Lovelace", "2024-05-06T10:11:12")
    assert (m.plate, m.well, m.site) == ("P1", "B03", 3)


def test_header_read_matches_full_read(ome_tiff, tmp_path):
    ij = tmp_path / "stack.tif"
    tifffile.imwrite(ij, np.zeros((3, 5, 4), np.uint8), imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "um", "spacing": 0.7, "axes": "ZYX"})
    for p in (ome_tiff, ij):
        a, b = file_meta(p), file_meta(p, verify="full")
        assert (a.sha256, a.shape, a.axes, a.format, a.pixel_size, a.z_step, a.channel_names) == \
               (b.sha256, b.shape, b.axes, b.format, b.pixel_size, b.z_step, b.channel_names)
    assert file_layers(file_meta(ij)) == [("imagej", {"physical_size_y_um": 0.5, "physical_size_x_um": 0.5,
                                                       "physical_size_z_um": 0.7})]


def test_truncated_and_bad_files_raise(tmp_path):
    p = tmp_path / "cut.tif"
    tifffile.imwrite(p, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), compression=None)
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(ImageReadError, match="truncated"):
        file_meta(p)
    with pytest.raises(InputError, match="verify='fast' is not one of"):
        file_meta(p, verify="fast")


def test_precedence_and_conflicts(tmp_path, ome_tiff):
    (tmp_path / "defaults.yaml").write_text(
        "objective: {na: 0.95, magnification: 60}\n"   # OME says 1.4: file beats folder defaults
        "sample: {cell_line: HeLa}\n"
        "pattern: '(?P<plate>[^_]+)_(?P<well>[A-P]\\d\\d)_s(?P<site>\\d+)'\n")
    (tmp_path / "table.csv").write_text("filename,well,operator\nplate1_B03_s3.ome.tif,C07,kim\n")
    src = MetadataSources(meta=[tmp_path / "defaults.yaml", tmp_path / "table.csv"])
    m = src.gather(file_meta(ome_tiff))
    assert m.meta.objective.na == 1.4 and m.sources["objective.na"] == "ome"
    assert m.meta.sample.cell_line == "HeLa" and m.sources["sample.cell_line"] == "yaml"
    assert m.meta.plate == "plate1" and m.sources["plate"] == "pattern"          # name beats OME's P1
    assert m.meta.well == "C07" and m.sources["well"] == "csv"                   # CSV beats the name
    assert m.meta.experimenter == "kim"
    found = {(c.key, c.source, c.overridden_source) for c in m.conflicts}
    assert found == {("objective.na", "ome", "yaml"), ("plate", "pattern", "ome"), ("well", "csv", "pattern"),
                     ("experimenter", "csv", "ome")}
    # the same value from two sources is no conflict (magnification 60 in YAML and OME; well B03 and
    # site 3 in OME and in the name)
    assert not any(c.key in ("objective.magnification", "site") for c in m.conflicts)
    assert str(next(c for c in m.conflicts if c.key == "well")) == "well: csv='C07' overrides pattern='B03'"


def test_yaml_rules_and_discovered_sidecars(tmp_path):
    img = tmp_path / "SIMCEPImages_P05_C18_F48_s05_w2.TIF"
    tifffile.imwrite(img, np.zeros((4, 4), np.uint8))
    (tmp_path / "deepscope-meta.yaml").write_text(
        "pattern: bbbc005\ninstrument: {microscope: SIMCEP, modality: widefield}\n"
        "rules:\n  - match: {stain: 1}\n    set: {channels: [{stain: nuclei}]}\n"
        "  - match: {stain: 2}\n    set: {channels: [{stain: cell body}]}\n"
        "  - match: {filename: '*_F48_*'}\n    set: {extras: {focus: out}}\n")
    (tmp_path / "deepscope-meta.csv").write_text("file,treatment\nSIMCEPImages_P05_C18_F48_s05_w2.TIF,DMSO\n")
    m = MetadataSources().gather(img)
    assert m.meta.channels[0].stain == "cell body" and m.meta.extras["focus"] == "out"
    assert m.meta.extras["blur"] == 48 and m.meta.well == "P05" and m.meta.site == 5
    assert m.meta.sample.treatment == "DMSO" and m.sources["sample.treatment"] == "csv"
    assert MetadataSources(discover=False).gather(img).meta.channels == ()


def test_pattern_mismatch_is_a_note_not_an_error(tmp_path):
    img = tmp_path / "other.tif"
    tifffile.imwrite(img, np.zeros((4, 4), np.uint8))
    m = MetadataSources(pattern="bbbc005").gather(img)
    assert m.notes and "does not match pattern 'bbbc005'" in m.notes[0]


def test_bbbc005_labels_csv_as_sidecar_is_rejected_with_the_cell(bbbc005_labels):
    # the real labels.csv writes sites as 's01': not an integer site, and the error says where
    with pytest.raises(ConfigError, match=r"labels.csv' line 2 .*'site'='s01' is not an integer"):
        load_sidecar_csv(bbbc005_labels)


@pytest.mark.parametrize("text, match", [
    ("- a\n- b\n", "must hold a mapping"),
    ("instrument: {modality: holography}\n", r"\(defaults\): metadata 'instrument.modality'"),
    ("rules: [{match: {a: 1}}]\n", r"rules\[0\] must be a mapping with exactly 'match'"),
    ("rules:\n  - match: {a: 1}\n    set: {objective: {na: 7}}\n", r"\(rules\[0\]\).*out of range"),
    ("pattern: '(no groups)'\n", "neither a preset"),
    ("a: [unclosed\n", "not valid YAML"),
])
def test_bad_yaml_is_a_config_error(tmp_path, text, match):
    p = tmp_path / "meta.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_defaults(p)


def test_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such metadata file"):
        load_defaults(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="neither YAML"):
        MetadataSources(meta=tmp_path / "meta.json")
    with pytest.raises(InputError, match="metadata source 'exif' is not one of"):
        merge_sources([("exif", {"na": 1})])
    (tmp_path / "bad.csv").write_text("filename,na\na.tif,7\n")
    with pytest.raises(ConfigError, match=r"bad.csv' line 2 \(a.tif\).*out of range"):
        load_sidecar_csv(tmp_path / "bad.csv")


def test_bad_embedded_value_is_dropped_with_a_note():
    # an instrument wrote NA 0 (unset): not an error for the image, just ignored and noted
    m = merge_sources([("ome", {"objective.na": 0.0, "objective.magnification": 40}), ("pattern", {"well": "A01"})])
    assert m.meta.objective.na is None and m.meta.objective.magnification == 40
    assert m.notes and "ome metadata ignored" in m.notes[0]
    with pytest.raises(InputError, match="out of range"):
        merge_sources([("pattern", {"na": 0.0})])
