"""Datasets, losses, metrics and the training loops for specialists and the router."""
