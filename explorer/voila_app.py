"""Voila as ``attention-explorer serve`` runs it: the same server, with its responses gzip-compressed.

tornado reads ``compress_response`` only when its ``Application`` is made, and standalone Voila makes it from
``init_settings()`` and applies ``--Voila.tornado_settings`` afterwards, where that key has no effect. Asking
for it in ``init_settings`` turns compression on: the dashboard's HTML and JavaScript (about 17 MB) travel as
about a third of that. ``python -m explorer.voila_app`` takes Voila's own command line.
"""

from __future__ import annotations

from voila.app import Voila


class CompressedVoila(Voila):
    """Voila whose tornado application compresses every response the browser accepts gzip for."""

    def init_settings(self) -> dict:
        settings = super().init_settings()
        settings["compress_response"] = True
        return settings


main = CompressedVoila.launch_instance

if __name__ == "__main__":
    main()
