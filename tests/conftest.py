"""The whole suite runs with the widget thread check on: a widget made outside the main thread is an error."""

import os

os.environ.setdefault("AE_DEBUG_THREADS", "1")

from explorer.widgets.thread_check import check_widget_threads  # noqa: E402

check_widget_threads(os.environ["AE_DEBUG_THREADS"] == "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm(tmp_path_factory):
    """The packaged SmolLM2, converted once into a fresh cache for the whole run."""
    from explorer.models import language

    cache = tmp_path_factory.mktemp("ae-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AE_CACHE", str(cache))
        yield language.load()
