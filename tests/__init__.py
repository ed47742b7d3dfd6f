"""The test suite. Every process it starts does linear algebra with one OpenBLAS thread (OPENBLAS_NUM_THREADS=1,
unless set): set here, before any test module or conftest imports numpy, and inherited by the suite's child
processes (the command line, the servers).

Why: the fits' matrices are small (a few dozen columns; scipy's L-BFGS-B calls LAPACK on 2x2 at every step), and
OpenBLAS's threads spun on both cores for each call, beside the other xdist worker: the same numbers cost ~1.5x the
CPU (tests/test_app_casemix.py: 42.5 s with the default threads, 28.6 s with one).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
