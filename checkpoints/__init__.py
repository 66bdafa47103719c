"""Shipped checkpoints (installed as ``codec.weights``): ``manifest.json`` and one ``<name>.pt`` per model."""
