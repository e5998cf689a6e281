"""Helpers behind S10.ipynb: settings, data, transforms, LR range test and one-cycle, training."""
