"""Helpers shared by tests (importable because pyproject sets pytest's pythonpath to tests/)."""

from __future__ import annotations


def train_params(**train_overrides: object) -> dict:
    """Complete model and train sections for a small MLP, as the config loader would produce them."""
    from workflow import config as cfg

    raw = {
        "datasets": {"d": {"tfds_name": "sklearn_digits"}},
        "experiments": {
            "e": {
                "dataset": "d",
                "model": {"name": "mlp", "hidden_units": [16]},
                "train": {"epochs": 2, "batch_size": 64, "shuffle_buffer": 500, **train_overrides},
            }
        },
    }
    return cfg.train_params(cfg.load_config(raw), "e")
