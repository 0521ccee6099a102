"""Shipping: from finished training runs to the weights folder that ``serve`` loads.

    python -m training.ship --data photos --out my-weights --keep weights --steps 3000

does every step (see ``cli`` and ``--help``); each step is also a command of its own:

- ``python -m training.ship.export``: a run's checkpoint as serving weights (float16 with
  ``--half``), no optimizer state;
- ``python -m training.ship.fit_chroma``: each specialist's chroma gain, on held-out photos;
- ``python -m training.ship.calibrate_judge``: the fallback judge's calibration;
- ``python -m training.ship.fit_restraint``: the per-photo colour restraint;
- ``python -m training.ship.model_cards``: a model card beside every model.

``calibrate_router`` (the router's kNN index, calibration and threshold) is the last stage of
``training.train_router`` and has no command of its own.
"""
