"""Attention Explorer: see, edit and train attention, from the formula to pretrained Transformers and CBAM."""

__version__ = "0.1.0"
