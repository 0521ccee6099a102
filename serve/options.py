"""Limits the command line checks before torch loads (so usage errors answer at once)."""

MAX_STRENGTH = 2.0  # colour strength: 0 the grey photo, 1 the model's colours, up to this
PRECISIONS = ("auto", "float32", "bfloat16")  # the generators' float type (serve.precision)
