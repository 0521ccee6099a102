"""The files of a training run folder that several commands read (resume, fine-tune, export)."""

CHECKPOINT = "checkpoint.safetensors"  # a run's latest state, rewritten as it trains
