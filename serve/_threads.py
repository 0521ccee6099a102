"""Thread settings that must precede torch and numpy: set when ``serve`` is first imported.

OpenMP's idle threads sleep rather than spin (``OMP_WAIT_POLICY=PASSIVE``). By default they
spin, and when other processes share the cores (a training job, a Slurm node, a Kubernetes
CPU limit), a spinning thread that has lost its core holds every parallel region up: on
this project's 2-core machine, shared with two training jobs, two torch threads coloured a
photo 35 times slower than one, and with passive waiting as fast as one (see benchmarks/).

numpy's OpenBLAS runs in the calling thread (``OPENBLAS_NUM_THREADS=1``). Serving calls it
only for one small product per batch (the colour restraint's nearest held-out photos), but
a multi-threaded OpenBLAS wakes its own threads for it, which then spin on the cores
torch's threads need: a mixed folder took 6-13% less wall time and 11-20% less CPU time
with them off (five paired runs), byte-identical outputs and report (README, "OpenBLAS in
the calling thread").
(faiss's OpenBLAS is an OpenMP build: it follows the OpenMP settings, passive waiting
included.)

An explicit setting in the environment is left alone; once torch or numpy is loaded the
corresponding one has no effect.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
