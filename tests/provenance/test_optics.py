from __future__ import annotations

import warnings

import pytest

from deepscope.errors import InputError
from deepscope.provenance import ImageMeta
from deepscope.provenance.optics import (UndersamplingWarning, check_sampling, diffraction_limit_nm,
                                         electron_wavelength_nm, nyquist_pixel_size_um)


def test_abbe_and_rayleigh_limits():
    assert diffraction_limit_nm(500, 1.25) == pytest.approx(200.0)
    assert diffraction_limit_nm(500, 1.25, criterion="rayleigh") == pytest.approx(244.0)
    # Nyquist pixel = half the resolvable distance, in micrometres
    assert nyquist_pixel_size_um(500, 1.25) == pytest.approx(0.1)
    assert nyquist_pixel_size_um(500, 1.25, criterion="rayleigh") == pytest.approx(0.122)


@pytest.mark.parametrize("kv, pm", [(100, 3.701), (200, 2.508), (300, 1.969), (0.1, 122.6)])
def test_electron_wavelength_relativistic(kv, pm):
    # textbook values (Williams & Carter, Transmission Electron Microscopy, table 1.1)
    assert electron_wavelength_nm(kv) * 1000 == pytest.approx(pm, rel=1e-3)


def test_check_sampling_flags_undersampled_channels_only():
    meta = ImageMeta.from_flat({"na": 1.4, "pixel_size_um": 0.2, "channels.0.name": "DAPI",
                                "channels.0.emission_wavelength_nm": 461, "channels.1.name": "far red",
                                "channels.1.emission_wavelength_nm": 700})
    with pytest.warns(UndersamplingWarning) as caught:
        issues = check_sampling(meta)
    assert len(caught) == 2 and "channel 0 (DAPI): pixel size 0.2 um undersamples" in str(caught[0].message)
    # 461 nm / (2 * 1.4) / 2 = 82 nm pixels needed; 700 nm -> 125 nm: both undersampled at 200 nm
    assert [i.channel for i in issues] == [0, 1]
    assert issues[0].nyquist_um == pytest.approx(0.0823, rel=1e-3) and issues[0].ratio == pytest.approx(2.43, rel=1e-2)
    fine = ImageMeta.from_flat({"na": 0.45, "pixel_size_um": 0.25, "channels.0.emission_wavelength_nm": 520})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_sampling(fine) == ()
    # Rayleigh is looser: 0.61*520/0.45/2 = 352 nm pixels are fine, Abbe (289 nm) is not
    edge = ImageMeta.from_flat({"na": 0.45, "pixel_size_um": 0.3, "channels.0.emission_wavelength_nm": 520})
    assert len(check_sampling(edge, warn=False)) == 1 and check_sampling(edge, criterion="rayleigh", warn=False) == ()
    # no NA or no pixel size: cannot be checked, no issue
    assert check_sampling(ImageMeta.from_flat({"pixel_size_um": 5}), warn=False) == ()


def test_check_sampling_electron():
    meta = ImageMeta.from_flat({"modality": "tem", "accelerating_voltage_kv": 200, "na": 0.01,
                                "pixel_size_um": "0.5 nm"})
    issues = check_sampling(meta, warn=False)
    # 2.508 pm / (2 * 0.01) = 125 pm resolvable; Nyquist 62.7 pm << 0.5 nm pixel
    assert len(issues) == 1 and issues[0].channel is None
    assert issues[0].nyquist_um * 1e6 == pytest.approx(62.7, rel=1e-2)


@pytest.mark.parametrize("call, match", [
    (lambda: diffraction_limit_nm(500, 0), "not a numerical aperture"),
    (lambda: diffraction_limit_nm(-1, 0.5), "positive number of nanometres"),
    (lambda: diffraction_limit_nm(500, 0.5, criterion="sparrow"), "not one of"),
    (lambda: electron_wavelength_nm(0), "positive number of kilovolts"),
    (lambda: check_sampling(ImageMeta(), criterion="x"), "not one of"),
])
def test_optics_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()
