"""The default weights the project trained itself, shipped as package data.

``serve.weights.default_weights_dir`` finds this folder beside the ``serve`` package, both in a
checkout and after ``pip install .``. What is in it and how it was made: ``README.md`` here and
the model cards (``router/MODEL_CARD.md``, ``specialists/<domain>.md``).
"""
