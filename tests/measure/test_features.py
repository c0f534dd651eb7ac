"""Values of the CellProfiler features beyond regionprops' basics: hull, Euler, Feret, radii, Zernike,
intensity quartiles, edges; and the per-image quality control."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk
from skimage.measure import regionprops

from deepscope.measure import measure_image_quality, measure_objects


@pytest.fixture(scope="module")
def shapes():
    lab = np.zeros((60, 80), np.int32)
    lab[5:10, 5:15] = 1                                   # 5 x 10 rectangle
    rr, cc = disk((35, 20), 12)
    lab[rr, cc] = 2                                       # a disc of radius 12
    lab[10:30, 40:70] = 3
    lab[15:25, 50:60] = 0                                 # a square ring: one hole
    lab[40, 45:52] = 4                                    # a one-pixel line of 7 pixels
    lab[50:52, 60:62] = 5
    lab[50, 63] = 5                                       # two pieces of one object (8-connected? no)
    return lab


def test_hull_euler_feret_and_radii(shapes):
    t = measure_objects(shapes).set_index("ObjectNumber")
    props = {r.label: r for r in regionprops(shapes)}
    assert t["AreaShape_ConvexArea"].tolist() == [int(props[k].area_convex) for k in t.index]
    assert t.loc[3, "AreaShape_EulerNumber"] == 0 and t.loc[1, "AreaShape_EulerNumber"] == 1
    assert t.loc[5, "AreaShape_EulerNumber"] == 2  # two 8-separate pieces, no hole
    # Feret diameters over the hull of the pixel centres
    assert t.loc[1, "AreaShape_MaxFeretDiameter"] == pytest.approx(np.hypot(4, 9))
    assert t.loc[1, "AreaShape_MinFeretDiameter"] == pytest.approx(4.0)
    assert t.loc[4, "AreaShape_MaxFeretDiameter"] == pytest.approx(6.0) and t.loc[4, "AreaShape_MinFeretDiameter"] == 0
    assert t.loc[2, "AreaShape_MaxFeretDiameter"] == pytest.approx(24.0, abs=1.0)
    # radii: distance to the nearest pixel outside the object
    assert t.loc[2, "AreaShape_MaximumRadius"] == pytest.approx(12.0, abs=0.5)
    assert t.loc[4, "AreaShape_MaximumRadius"] == 1.0 == t.loc[4, "AreaShape_MedianRadius"]
    from scipy.ndimage import distance_transform_edt

    edt = distance_transform_edt(np.pad(shapes == 1, 1))[1:-1, 1:-1][shapes == 1]
    assert t.loc[1, "AreaShape_MeanRadius"] == pytest.approx(edt.mean()) and t.loc[1, "AreaShape_MaximumRadius"] == 3


def test_zernike_of_a_disc_is_its_filling_of_the_enclosing_circle(shapes):
    t = measure_objects(shapes).set_index("ObjectNumber")
    z00 = t.loc[2, "AreaShape_Zernike_0_0"]
    assert z00 == pytest.approx(t.loc[2, "AreaShape_Area"] / (np.pi * 11.5 ** 2), rel=0.1)
    odd = [c for c in t.columns if c.startswith("AreaShape_Zernike_") and c.endswith(("_1", "_3"))]
    assert (t.loc[2, odd] < 0.05).all()  # a disc has (nearly) no odd-symmetric moments
    assert (t.filter(like="Zernike").to_numpy() >= 0).all()


def test_intensity_quartiles_mad_edges_and_brightest_pixel():
    lab = np.zeros((6, 6), np.int32)
    lab[1:5, 1:5] = 1
    img = np.zeros((6, 6), np.float64)
    img[1:5, 1:5] = np.arange(16).reshape(4, 4)
    t = measure_objects(lab, {"X": img}).iloc[0]
    v = np.arange(16.0)
    assert t["Intensity_MedianIntensity_X"] == 7.5
    assert t["Intensity_LowerQuartileIntensity_X"] == 4.0 and t["Intensity_UpperQuartileIntensity_X"] == 12.0
    assert t["Intensity_MADIntensity_X"] == np.median(np.abs(v - 7.5))
    edge = np.array([0, 1, 2, 3, 4, 7, 8, 11, 12, 13, 14, 15], float)  # the ring of the 4 x 4 square
    assert t["Intensity_IntegratedIntensityEdge_X"] == edge.sum()
    assert t["Intensity_MeanIntensityEdge_X"] == edge.mean() and t["Intensity_StdIntensityEdge_X"] == edge.std()
    assert (t["Intensity_MinIntensityEdge_X"], t["Intensity_MaxIntensityEdge_X"]) == (0, 15)
    assert (t["Location_MaxIntensity_X_X"], t["Location_MaxIntensity_Y_X"]) == (4, 4)
    assert t["Intensity_MassDisplacement_X"] == pytest.approx(np.hypot(
        t["Location_CenterMassIntensity_X_X"] - t["Location_Center_X"],
        t["Location_CenterMassIntensity_Y_X"] - t["Location_Center_Y"]))


def test_quality_sees_blur_and_saturation():
    from scipy.ndimage import gaussian_filter

    from deepscope.data.synth import generate_field

    f = generate_field(10, size=(128, 160), blurs=(1, 48), stains=1, seed=0)
    sharp = measure_image_quality(f.image(1, 1), channel="DNA")
    blurred = measure_image_quality(f.image(1, 48), channel="DNA")
    assert blurred["ImageQuality_PowerLogLogSlope_DNA"] < sharp["ImageQuality_PowerLogLogSlope_DNA"]
    assert blurred["ImageQuality_FocusScore_DNA"] < sharp["ImageQuality_FocusScore_DNA"]
    clipped = np.clip(gaussian_filter(f.image(1, 1).astype(float), 1) * 4, 0, 255).astype(np.uint8)
    assert measure_image_quality(clipped)["ImageQuality_PercentMaximal_Image"] > 1.0
    assert sharp["ImageQuality_Percentile1_DNA"] <= sharp["ImageQuality_MedianIntensity_DNA"] <= \
        sharp["ImageQuality_Percentile99_DNA"]


@pytest.mark.parametrize("bad, match", [(np.zeros((2, 3, 4)), "2-D"), (np.array([["a"]]), "numeric")])
def test_quality_refuses_what_is_not_one_channel(bad, match):
    from deepscope.errors import InputError

    with pytest.raises(InputError, match=match):
        measure_image_quality(bad)
