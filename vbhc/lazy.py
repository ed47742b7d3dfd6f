"""Modules imported where they are first used, not when the module that names them is imported.

Why: importing SciPy's statistics takes ~0.8 s of CPU (its optimisation and linear algebra packages ~0.4 s more),
several seconds on a busy 2-core host, and every vbhc module that computes indicators named them at its top. A
restarted server's first page reads precomputed results from the store (vbhc.results) and calls none of their
functions, yet waited for the imports (issue 13, item 2: restart -> first page < 5 s). The calls themselves are
unchanged, so every figure is the same.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "optimize", "scipy_linalg", "special", "stats"]


class LazyModule:
    """Stands for the module `name`: imports it at the first attribute read (e.g. `stats.norm.ppf(...)`), then
    hands out its attributes. Python's import lock makes a first use from two threads safe."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy, pickle and introspection ask for dunders: not the module's business
            raise AttributeError(attr)
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    @property
    def loaded(self) -> bool:
        """Whether the module has been imported (by this stand-in or anywhere else)."""
        return self._module is not None or self._name in sys.modules

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


#: scipy.stats: distributions and tests (binomial, Poisson, chi-squared, t, normal)
stats = LazyModule("scipy.stats")
#: scipy.optimize: the case-mix and random-effects fits
optimize = LazyModule("scipy.optimize")
#: scipy.linalg: the pivoted QR of the case-mix design
scipy_linalg = LazyModule("scipy.linalg")
#: scipy.special: expit and logit of the case-mix models
special = LazyModule("scipy.special")
