"""Statistical tolerances for tests of randomized (but seeded) sampling."""

from __future__ import annotations

import math


def binomial_tolerance(n: int, p: float, sigmas: float = 5.0) -> float:
    """``sigmas`` standard deviations of Binomial(n, p)."""
    return sigmas * math.sqrt(n * p * (1.0 - p))
