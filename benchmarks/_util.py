"""Small helpers shared by the benchmark scripts (machine description, JSON results)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPSCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    """Describe the machine a benchmark ran on."""
    cpu = platform.processor() or ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_result(topic: str, result: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<topic>.json`` with the machine and a timestamp."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"topic": topic, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **result}
    path = RESULTS / f"{topic}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def report(topic: str, result: dict[str, Any]) -> Path:
    """Print every figure of a result (floats to 4 decimals), then write it as :func:`write_result` does."""
    for k, v in result.items():
        print(f"{k:40s} {round(v, 4) if isinstance(v, float) else v}")
    path = write_result(topic, result)
    print("wrote", path)
    return path


def start(*datasets: str, threads: int = 2) -> bool:
    """Common start of a benchmark on the shared data: False (said) when a dataset of ``../shared/data`` is
    missing; else torch on ``threads`` threads and warnings off (they are not the figures)."""
    import warnings

    missing = [d for d in datasets if not (SHARED / d).exists()]
    if missing:
        print(f"shared data not found ({', '.join(missing)}); nothing to benchmark")
        return False
    import torch

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    return True
