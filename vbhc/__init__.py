"""VBHC outcomes dashboard: the domain package (no Streamlit here).

One BLAS thread unless the operator sets OPENBLAS_NUM_THREADS: the models here multiply small matrices (scipy's
L-BFGS-B works on 2x2 at every step of a shrinkage fit), where OpenBLAS's extra threads only spin. Measured at
50,000 cycles on 2 cores: a comparison group's views took the same wall time with one thread and half the CPU, and
the registry's fits 6.8-6.9 s of wall and CPU against 7.2-8.0 s of wall and 12-13 s of CPU. A server's second core
is then free for other viewers. OpenBLAS reads the setting when numpy first loads: it is set on importing vbhc (the
command line, and the server `vbhc serve` starts, which inherits it), and has no effect where numpy came first.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
