"""BLAS thread policy of the dense engines (sampler, training).

Their matrix products are either small or one per network, so a multithreaded
BLAS spends more time synchronising its threads than it saves: on a loaded
2-core machine one GD step of 16 width-2048 networks takes ~3x longer with 2
OpenBLAS threads than with one.  The engines therefore run BLAS single-threaded
and, where the work splits into independent groups of networks, spread those
groups over as many Python threads as the BLAS was allowed (numpy releases the
GIL inside BLAS calls).  In a worker process limited to one BLAS thread this is
plain sequential work, so the results never depend on the thread count.
"""
from __future__ import annotations

from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def controller() -> ThreadpoolController:
    """The process's BLAS libraries, found once (~8 ms) and reused."""
    return ThreadpoolController()


def threads() -> int:
    """BLAS threads currently allowed: the fewest over the loaded BLAS libraries (numpy
    and scipy may each bring one; a limit set before one of them was loaded binds only
    the other), at least 1."""
    return max(1, min([lib.num_threads for lib in controller().lib_controllers if lib.user_api == "blas"],
                      default=1))


def single_threaded():
    """Context manager: BLAS limited to one thread inside."""
    return controller().limit(limits=1, user_api="blas")
