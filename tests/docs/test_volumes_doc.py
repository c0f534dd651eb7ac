"""Every command and Python block of docs/volumes.md runs as written (the page makes its own synthetic stack), and
gives what the page says: OUT/<stem>.<method>.tif with the pixel size and a lineage sidecar (max in the stack's
dtype, mean and edf in float32), EDF about 4 dB closer to the all-in-focus image than max on the page's
widefield-like stack, a 3D measurement table with the named columns, `deepscope segment` on the stack giving ZYX
int32 labels with the voxel size that find its 20 nuclei, the classical 3D pipeline finding every nucleus of the
synthetic stack, and `deepscope analyze` on the stack counting its 20 nuclei with regionprops' volumes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")  # the harness's sandbox loads the models other pages use

from deepscope.io import read_image  # noqa: E402
from deepscope.provenance import lineage  # noqa: E402

from ._harness import page, run_document  # noqa: E402


def test_volumes_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/volumes.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace
    out = project / "projections"
    for stem, method, dtype in (("stack", "edf", np.float32), ("stack", "max", np.uint16),
                                ("pages", "mean", np.float32)):
        img = read_image(out / f"{stem}.{method}.tif")
        assert img.dtype == dtype and img.shape == (128, 128)
        assert img.meta.pixel_size == pytest.approx((0.5, 0.5))
        assert (out / f"{stem}.{method}.tif.prov.json").exists()
        assert lineage.read(out / f"{stem}.{method}.tif").extra["voxel_size"] == [1.0, 0.5, 0.5]
    assert ns["voxel_size"] == (1.0, 0.5, 0.5)

    # "EDF is about 4 dB closer to the all-in-focus image than the maximum projection"
    assert "about 4 dB closer" in page("docs/volumes.md")
    gain = float(ns["psnr_edf"]) - float(ns["psnr_max"])  # type: ignore[arg-type]
    assert 2.5 < gain < 6.0

    table = ns["table"]
    for col in ("AreaShape_Volume", "AreaShape_SurfaceArea", "AreaShape_EquivalentDiameter", "AreaShape_Sphericity",
                "Location_Center_Z_um", "Intensity_MeanIntensity_DNA"):
        assert col in table.columns  # type: ignore[attr-defined]
    assert ns["summary"]["Count_Nuclei"] == ns["vol"].count  # type: ignore[index,attr-defined]

    # "finds every nucleus (F1@0.5 1.00; DSB 0.43 ...)" on the page's synthetic stack
    assert "F1@0.5 1.00; DSB 0.43" in page("docs/volumes.md")
    assert float(ns["f1"]) >= 0.95  # type: ignore[arg-type]

    # "On the stack above it finds the 20 nuclei (F1@0.5 1.00)." (`deepscope segment stack.tif --out nuclei`)
    assert "it finds the 20 nuclei (F1@0.5 1.00)" in page("docs/volumes.md")
    lab3d, counts = ns["lab3d"], ns["counts"]
    assert lab3d.axes == "ZYX" and lab3d.dtype == np.int32  # type: ignore[attr-defined]
    assert lab3d.shape == ns["vol"].stack.shape  # type: ignore[attr-defined]
    assert lab3d.meta.z_step == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert lab3d.meta.pixel_size == pytest.approx((0.5, 0.5))  # type: ignore[attr-defined]
    assert float(ns["f1_cli"]) >= 0.995  # type: ignore[arg-type]
    assert int(counts["count"][0]) == ns["vol"].count == 20  # type: ignore[index,attr-defined]
    assert counts["method"][0] == "classical" and counts["voxel_size_source"][0] == "file"  # type: ignore[index]
    assert lineage.read(project / "nuclei" / "stack.labels.tif").extra["voxel_size"] == [1.0, 0.5, 0.5]
    # "OUT/<stem>.overlay.png, the stack's maximum projection with the outlines of the nuclei"
    assert lineage.read(project / "nuclei" / "stack.overlay.png").extra["projection"] == "max"
    pages = read_image(project / "nuclei_pages" / "pages.labels.tif")
    assert pages.shape == (16, 128, 128) and pages.meta.z_step == pytest.approx(1.0)

    # "On the stack above it counts the 20 nuclei, and the volumes are those of scikit-image's `regionprops`"
    # (`deepscope analyze stack.tif --out analysis`)
    assert "it counts the 20 nuclei, and the volumes are those of" in page("docs/volumes.md")
    images, objects = ns["images"], ns["objects"]
    assert images["Count_Nuclei"].tolist() == [20] and len(objects) == 20  # type: ignore[index,arg-type]
    assert images["Planes"].tolist() == [16] and images["VoxelSize_Z_um"].tolist() == [1.0]  # type: ignore[index]
    want = [p.area for p in ns["props"]]  # type: ignore[attr-defined]
    np.testing.assert_allclose(objects["AreaShape_Volume_um3"], want)  # type: ignore[index]
    assert read_image(project / "analysis" / "labels" / "stack.Nuclei.tif").meta.z_step == pytest.approx(1.0)
    assert (project / "analysis" / "overlays" / "stack.png").is_file()
    assert "Volume distribution" in (project / "analysis" / "report.html").read_text()
