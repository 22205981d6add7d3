"""numpy's BLAS on one thread in `trustmh run`, unless the environment already chooses a number.

numpy's wheels load OpenBLAS, which starts a thread per core when numpy is imported, and those
threads spin while they wait: on 2 cores that doubles the CPU numpy's import takes (0.14 s instead
of 0.06 s; `bench/throughput.py --whole` counts a run's CPU), for nothing, since a run's numpy
work (bootstrap intervals over at most tens of thousands of items, a few correlations) gains
nothing from BLAS threads. `trustmh judge-check`, whose resampling multiplies large matrices,
keeps OpenBLAS's default. Child processes (the `local:` backend's server) get the environment the
user gave, without this setting.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "OPENBLAS_NUM_THREADS"
# each of these sets OpenBLAS's thread count: when the user set any, their choice stands
CHOSEN_BY = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
_set_here = False


def one_blas_thread() -> None:
    """Before numpy is loaded, have OpenBLAS start no threads of its own (no effect once numpy is
    loaded, or when the environment names a thread count)."""
    global _set_here
    if "numpy" in sys.modules or any(name in os.environ for name in CHOSEN_BY):
        return
    os.environ[VARIABLE] = "1"
    _set_here = True


def environment_for_children() -> dict[str, str]:
    """This process's environment without the setting `one_blas_thread` made for it."""
    env = dict(os.environ)
    if _set_here and env.get(VARIABLE) == "1":
        del env[VARIABLE]
    return env
