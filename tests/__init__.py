"""The test suite. Every process it starts does linear algebra with one OpenBLAS thread, as the product does
(vbhc/__init__.py sets OPENBLAS_NUM_THREADS=1 unless set): vbhc is imported here, before any test module or conftest
imports numpy, and the suite's child processes (the command line, the servers) inherit the setting.

Why: the fits' matrices are small (scipy's L-BFGS-B calls LAPACK on 2x2 at every step), and OpenBLAS's threads spun
on both cores for each call, beside the other xdist worker: the same numbers cost ~1.5x the CPU
(tests/test_app_casemix.py: 42.5 s with the default threads, 28.6 s with one).
"""

import vbhc  # noqa: F401  (sets the BLAS threads before numpy loads)
