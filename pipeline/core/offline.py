"""No stage may contact a host it was not asked to. Some libraries phone home on import
(albumentations, imported by img2dataset, checks PyPI for a newer version unless
``NO_ALBUMENTATIONS_UPDATE`` is set); :func:`stay_offline` switches that off in
``os.environ``, before those imports, so every worker process spawned later inherits it."""

from __future__ import annotations

import os

OFFLINE_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1"}


def stay_offline() -> None:
    os.environ.update(OFFLINE_ENV)
