"""The calibration solvers, one module each; this module names them all (the import point of simplex.py,
sparse.py, cv.py, fit.py, the benchmarks and the tests).

All quadratic problems are written as  min ½ wᵀ(G + μI)w − fᵀw + c  s.t. w ≥ 0 [, Σw = 1]  (calibrate/qp.py).

| module | what | used when |
| --- | --- | --- |
| quad.py | `Quad`: `DenseQuad` (N × N Gram) or `MatrixFreeQuad` (D itself) | dense: N ≤ 3,000 and rows ≥ N/2, KL pull |
| column_cache.py | `ColumnCache`: Gram columns of recent supports, bounded | matrix-free agent-space solves |
| row_space.py | `RowKernel`, `RowOperator`, `RowSpaceSolves` | matrix-free supports wider than the rows |
| support_factor.py | `SupportFactor`: a support's Cholesky factor, bordered / pinned to the next support | agent-space active-set steps |
| active_set.py | `active_set`: primal–dual active set, primal finish | every simplex / lasso / NNLS fit by default |
| first_order.py | `pg_simplex` (μ ≥ 0.9·‖PGP‖₂; `pg_simplex_folds`: all CV folds in lockstep), `fista_simplex` | top of the λ grid; solver="fista" |
| kl_newton.py | `kl_newton`: damped Newton for the KL pull | pull="kl", λ > 0 |
| tuning.py | `Tuning`/`TUNING`: every cut-off, with where it was measured | everywhere |
| question_rows.py | `reduce_questions`: one row fewer per question, exact on the simplex (not a solver: its input) | λ by CV, l2 pull (fit.py) |
"""

from __future__ import annotations

from personagen.calibrate.active_set import active_set
from personagen.calibrate.first_order import fista_simplex, pg_simplex, pg_simplex_folds
from personagen.calibrate.kl_newton import kl_newton
from personagen.calibrate.qp import QPResult, project_simplex
from personagen.calibrate.qp import combine as _combine
from personagen.calibrate.qp import eq_solve as _eq_solve
from personagen.calibrate.quad import DenseQuad, MatrixFreeQuad, Quad, gram, prefer_dense
from personagen.calibrate.row_space import RowKernel, RowOperator
from personagen.calibrate.row_space import RowOperator as _RowOperator
from personagen.calibrate.tuning import TUNING, Tuning

__all__ = [
    "TUNING", "DenseQuad", "MatrixFreeQuad", "QPResult", "Quad", "RowKernel", "RowOperator", "Tuning",
    "_RowOperator", "_combine", "_eq_solve", "active_set", "fista_simplex", "gram", "kl_newton", "pg_simplex", "pg_simplex_folds",
    "prefer_dense", "project_simplex",
]
