"""serve._threads: numpy's OpenBLAS stays in the calling thread when serving."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOLS = (  # numpy's own OpenBLAS (faiss's is an OpenMP build: OpenMP's settings rule it)
    "import serve, numpy, threadpoolctl, json; "
    "print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info() "
    "if p['internal_api'] == 'openblas' and 'numpy' in p['filepath']]))"
)


def openblas_threads(**env: str) -> list[int]:
    """Thread counts of numpy's OpenBLAS in a fresh process that imports ``serve`` first."""
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", POOLS],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    pools = json.loads(out.stdout)
    assert pools, "numpy loads no OpenBLAS here: nothing to check"
    return pools


def test_serving_runs_openblas_in_the_calling_thread() -> None:
    # multi-threaded, its threads spin on the cores torch's threads need (serve._threads)
    assert set(openblas_threads()) == {1}


def test_an_explicit_openblas_setting_is_left_alone() -> None:
    assert set(openblas_threads(OPENBLAS_NUM_THREADS="2")) == {2}
