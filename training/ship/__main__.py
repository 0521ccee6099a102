"""``python -m training.ship``: see ``training.ship.cli`` and ``--help``."""

import sys

import torch

from training.ship.cli import main

torch.set_grad_enabled(False)
sys.exit(main())
