"""bench: measurements of the calibration code (solver speed, the P2P simulation, the census benchmark).

The face; bench code may reach inside other stages, since it measures their internals.
"""

from personagen.bench.census import CALIB_VARS, METHODS, TEST_VARS, format_table, run_census_bench
from personagen.bench.simulate import bench_simulate
from personagen.bench.solver import bench_solver

__all__ = ["CALIB_VARS", "METHODS", "TEST_VARS", "bench_simulate", "bench_solver", "format_table",
           "run_census_bench"]
