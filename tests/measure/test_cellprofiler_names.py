"""Column names against CellProfiler's documentation (CellProfiler 4 manual, "Measurements made by this module").

The lists below are written from the manual pages of MeasureObjectSizeShape, MeasureObjectIntensity,
MeasureImageQuality and ExportToSpreadsheet (2-D images, default settings), not from deepscope's code.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.measure import aggregate_objects, measure_image_quality, measure_objects

# MeasureObjectSizeShape, 2-D, "Calculate the Zernike features?" = Yes, advanced features = No.
CP_SIZE_SHAPE = [
    "Area", "BoundingBoxArea", "BoundingBoxMaximum_X", "BoundingBoxMaximum_Y", "BoundingBoxMinimum_X",
    "BoundingBoxMinimum_Y", "Center_X", "Center_Y", "Compactness", "ConvexArea", "Eccentricity",
    "EquivalentDiameter", "EulerNumber", "Extent", "FormFactor", "MajorAxisLength", "MaxFeretDiameter",
    "MaximumRadius", "MeanRadius", "MedianRadius", "MinFeretDiameter", "MinorAxisLength", "Orientation",
    "Perimeter", "Solidity",
] + [f"Zernike_{n}_{m}" for n in range(10) for m in range(n + 1) if (n - m) % 2 == 0]
# MeasureObjectIntensity (category Intensity, then Location), 2-D: the Z coordinates are left out.
CP_INTENSITY = ["IntegratedIntensity", "MeanIntensity", "StdIntensity", "MinIntensity", "MaxIntensity",
                "IntegratedIntensityEdge", "MeanIntensityEdge", "StdIntensityEdge", "MinIntensityEdge",
                "MaxIntensityEdge", "MassDisplacement", "LowerQuartileIntensity", "MedianIntensity", "MADIntensity",
                "UpperQuartileIntensity"]
CP_INTENSITY_LOCATION = ["CenterMassIntensity_X", "CenterMassIntensity_Y", "MaxIntensity_X", "MaxIntensity_Y"]
# MeasureObjectSizeShape also gives each object's location (Location_Center_X/Y) and its number.
CP_OBJECT_LOCATION = ["Center_X", "Center_Y"]
# MeasureImageQuality: blur (FocusScore, PowerLogLogSlope), saturation, intensity (LocalFocusScore and
# Correlation need a spatial scale and the threshold features a thresholding method: not computed).
CP_IMAGE_QUALITY = ["FocusScore", "PowerLogLogSlope", "PercentMaximal", "PercentMinimal", "TotalIntensity",
                    "MeanIntensity", "MedianIntensity", "StdIntensity", "MADIntensity", "MinIntensity",
                    "MaxIntensity"]
# ExportToSpreadsheet: per-image aggregates of every object measurement.
CP_AGGREGATES = ["Mean", "Median", "StDev"]
#: deepscope's additions, named in the same style (documented as additions).
DEEPSCOPE_IMAGE_QUALITY = ["Percentile1", "Percentile99"]


@pytest.fixture(scope="module")
def table():
    labels = np.zeros((40, 50), np.int32)
    labels[3:15, 4:20] = 7
    labels[20:35, 25:45] = 9
    labels[25:30, 30:35] = 0  # a hole
    dna = np.random.default_rng(0).integers(0, 200, (40, 50)).astype(np.uint16)
    return measure_objects(labels, {"DNA": dna}, object_name="Nuclei")


def test_object_columns_are_exactly_cellprofilers(table):
    expected = (["ObjectNumber"] + [f"AreaShape_{f}" for f in CP_SIZE_SHAPE]
                + [f"Location_{f}" for f in CP_OBJECT_LOCATION]
                + [f"Intensity_{f}_DNA" for f in CP_INTENSITY] + [f"Location_{f}_DNA" for f in CP_INTENSITY_LOCATION])
    assert sorted(table.columns) == sorted(expected)


def test_image_quality_columns_are_cellprofilers_plus_two_percentiles():
    q = measure_image_quality(np.arange(64, dtype=np.uint8).reshape(8, 8), channel="DNA")
    assert sorted(q) == sorted(f"ImageQuality_{f}_DNA" for f in CP_IMAGE_QUALITY + DEEPSCOPE_IMAGE_QUALITY)


def test_aggregates_are_named_as_exporttospreadsheet_names_them(table):
    agg = aggregate_objects(table, object_name="Nuclei")
    measured = [c for c in table.columns if c != "ObjectNumber"]
    assert sorted(agg) == sorted(f"{a}_Nuclei_{c}" for a in CP_AGGREGATES for c in measured)
