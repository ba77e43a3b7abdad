"""transformers, imported once and whole, safely from any thread.

transformers 5 is a lazy module: ``import transformers`` puts a half-made module in ``sys.modules`` for a
second or two, and names are filled in as they are first asked for. Two threads doing that at once fail:
"ImportError: cannot import name 'AutoConfig' from 'transformers'" (vllm #40442 and others), and datasets'
pickler, which looks at ``transformers.PreTrainedTokenizerBase`` whenever transformers is in ``sys.modules``,
gets "module 'transformers' has no attribute 'PreTrainedTokenizerBase'" while a tab's worker imports it. Both
happened here. So the explorer takes transformers' names through ``transformers_names()``, one thread at a time,
and code that builds datasets runs under ``transformers_quiet()``, so no import is under way meanwhile.
"""

from __future__ import annotations

import contextlib
import sys
import threading

_LOCK = threading.RLock()  # re-entrant: dataset builders call each other
_WHOLE = threading.Event()  # set once transformers and the names datasets reads are resolved
DATASETS_READS = ("PreTrainedTokenizerBase",)


def transformers_names(*wanted: str) -> tuple:
    """``transformers_names("AutoModel", "AutoTokenizer")``: those attributes of transformers, resolved safely."""
    module = sys.modules.get("transformers")
    if _WHOLE.is_set() and all(name in module.__dict__ for name in wanted):
        return tuple(module.__dict__[name] for name in wanted)
    with _LOCK:
        import transformers

        for name in DATASETS_READS:
            getattr(transformers, name)
        _WHOLE.set()
        return tuple(getattr(transformers, name) for name in wanted)


@contextlib.contextmanager
def transformers_quiet():
    """Around code that builds datasets (also a decorator): no import of transformers starts or is under way
    meanwhile, because datasets' pickler reads transformers whenever it is in ``sys.modules``. Free once
    transformers is whole."""
    if _WHOLE.is_set():
        yield
        return
    with _LOCK:
        yield
