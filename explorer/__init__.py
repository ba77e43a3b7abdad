"""Attention Explorer: see, edit and train attention, from the formula to pretrained Transformers and CBAM."""

import os

# Hugging Face libraries draw progress bars; in a notebook those are widgets, made in whatever thread loads a
# model or a data set. The explorer loads in workers and shows its own progress, so their bars stay off.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

__version__ = "0.1.0"

# The notebook surface, imported when first used: `import explorer` stays light for the command line.
_EXPORTS = {"capture_attention": "explorer.capture", "show": "explorer.widgets.show",
            "head_view": "explorer.widgets.dropins", "model_view": "explorer.widgets.dropins"}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
