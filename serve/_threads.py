"""OpenMP threads that sleep rather than spin while they wait (set before torch loads).

By default OpenMP's idle threads spin. When other processes share the cores (a training
job, a Slurm node, a Kubernetes CPU limit), a spinning thread that has lost its core holds
every parallel region up: on this project's 2-core machine, shared with two training jobs,
two torch threads coloured a photo 35 times slower than one, and with passive waiting
(``OMP_WAIT_POLICY=PASSIVE``) as fast as one (see benchmarks/). An explicit setting in the
environment is left alone; once torch is loaded this has no effect.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
