"""The solver's cut-offs, in one place: every threshold that was tuned by measurement on the project's 2-core
machine (OpenBLAS, 2 threads), with where it was measured.

Why one object: the cut-offs trade one cost against another (a thread hand-off against a kernel's flops, a
dense Gram against passes over D, a Woodbury correction against a refactorisation); on a machine with more
cores or another BLAS they move together, and a reader looking for "why 1000?" finds every answer here.
`TUNING` is the instance the solvers read; tests may pass their own through `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """Cut-offs of the calibration solvers (see each field)."""

    # BLAS threads (calibrate/_blas.py). The solve loop runs on one thread: thread hand-off dominates a 200 × 200
    # Cholesky (10–20× slower with two threads on a busy 2-core machine, issue 15).
    big_rows: int = 1000  # O(m³) / O(m²·c) kernels of at least this size use every thread (a 4000² Cholesky)
    big_pass: int = 4_000_000  # a pass over a D of at least this many entries (32 MB) uses every thread (~25%)
    big_block_flops: float = 2e8  # a new Gram block (rows × new × cached) of this many flops uses every thread

    # Dense Gram or matrix-free (calibrate/quad.py): a dense N × N Gram pays when N is moderate and D is not
    # wide; measured at 1,000–5,000 agents × 500–2,000 questions (issue 7).
    dense_max_agents: int = 3000
    dense_min_rows_per_agent: float = 0.5  # dense only when rows ≥ this × agents
    # G·w from the agents with weight only when fewer than N // divisor have it. Issue 23, one G·w, best of 5-7:
    # a dense G (C order) by its rows of those agents (G symmetric): N = 1,000 full 166 µs, N/3 284, N/8 48; N =
    # 3,000 full 1.8 ms, N/3 2.5, N/8 0.9 (the columns, gathered, took 22 ms at N/3). D (C order, rows × N) by
    # gathering its columns: 5,000 × 20k full pass 40 ms, N/32 47, N/64 24; 1,000 × 100k 28 / 43 / 23; 8,000 ×
    # 5,000 11 / 15 / 7.5 (the cut-off was N // 4: a gather of 276 ms where the pass takes 40).
    dense_matvec_divisor: int = 5
    free_matvec_divisor: int = 48

    # Matrix-free storage (calibrate/column_cache.py, calibrate/row_space.py).
    cache_mb: float = 256.0  # the Gram-column cache of one quadratic (issue 15: 20k × 5,000 at 2.4 GB peak)
    # Columns gathered per rank-k update of the row-space kernel: as many as fill this many MB (a rows × chunk
    # buffer, kept), at least kernel_chunk_min. SYRK runs nearer its peak on wider blocks, the more so the fewer the
    # rows. Issue 23, sixth round, latent types, default CV fit, kernel-move seconds (the same columns moved):
    # 20k × 5,000 (49,103 columns) 23.6 / 25.9 at 512, 20.6 / 19.8 at 2,048, 21.2 at 4,096; 100k × 1,000 (640,087
    # columns) 35.9 at 512, 30.4 at 2,048, 22.9 at 8,192, 22.4 at 16,384. 80 MB gives 2,097 and 10,485 columns
    # there; peak RSS (these runs) 3.17 → 3.23 GB at 2,048 and 1.07 → 1.13 GB at 8,192.
    kernel_chunk_mb: float = 80.0
    kernel_chunk_min: int = 512
    kernel_rebuild_moves: float = 4.0  # rebuild the kernel after this many × N column moves (round-off guard)
    woodbury_min: int = 16  # a factored row operator is corrected by Woodbury for at most
    woodbury_divisor: int = 5  # max(woodbury_min, rows // woodbury_divisor) changed agents (issue 15, 10k × 2,500)
    lowrank_refine_mu: float = 1e-3  # below this × K's mean eigenvalue, a row-space solve is refined on the
    # full system (z = (f + ν − X_Pᵀa)/μ cancels large terms)

    # Active set (calibrate/active_set.py): the support grows by at most this many agents beyond its size.
    max_add_floor: int = 20
    # ... plus this × its size. Issue 15 took 1 (doubling); issue 23 found that from a predicted support the
    # doubling overshoots into row space (latent types 10k × 2,500 at λ_max/1000: 1,447 → 2,347 → 4,186 → … → 1,768
    # agents, four rows × rows factorisations a fold). Measured side by side (one thread, same λ and objective):
    # CV at 10k × 2,500 59.2 / 51.4 / 45.7 CPU s at 1 / 0.5 / 0.25; but the mid-grid single fit at 25k × 250
    # (support 9,747, row space from the start) 0.26–0.34 / 0.30–0.34 / 0.37–0.42 CPU s, 0.25 breaking the
    # issue's 1.2× rule for single fits. 0.5 keeps most of the CV gain and the single fits.
    max_add_ratio: float = 0.5
    # ... and this × its size for a run from a warm start (CV: a peer fold's fit, a predicted support), whose
    # violators are mostly near the boundary: adding all of them overshot and the next step removed half (100k ×
    # 1,000 latent types, peer folds at λ_max/1000: +12k −4.7k, then −6k, −0.8k agents, each a kernel move).
    # Issue 23, default CV fit, same λ and objective: 100k × 1,000 130.6 / 119.9 / 117.0 / 121.8 CPU s at
    # 0.5 / 0.2 / 0.1 / 0.05; 20k × 5,000 230 → 220 at 0.1; 10k × 2,500 32.5 → 29.7; sparse 20k × 5,000 85 / 87
    # (noise). Single fits start cold and keep `max_add_ratio`.
    warm_add_ratio: float = 0.1
    # An agent-space step moves the last step's Cholesky factor (calibrate/support_factor.py: bordered for the
    # agents that entered, those that left pinned at zero) while that costs fewer flops than this × a fresh
    # factor's |S|³/3 (issue 23, latent types 10k × 2,500: factorisations were 2/3 of the CPU time).
    factor_update_ratio: float = 1.0
    factor_min_pivot: float = 1e-10  # a factor with a pivot² below this × its largest diagonal entry is not moved

    # A CV fold starts from its own larger fit moved as the previous fold's fit moved from there to λ, priced on
    # this fold (`simplex.FoldPath._start`: one G·w, two passes over D), instead of the previous fold's fit, when
    # a fresh row-space factorisation costs at least this many passes (rows³/3 ≥ this × rows·N): the prediction
    # saves kernel moves and factorisations (its support is 2–5× closer to the fold's at 20k × 5,000), which only
    # weigh at many rows. Issue 23, five folds over the coarse grid, CPU s with the previous fold's fit / the
    # prediction: 20k × 5,000 (rows³/3 = 267 passes) latent types 127 / 104, resampled real answers 157 / 141,
    # sparse truth 41 / 39; 100k × 1,000 (2.1 passes) latent 71 / 85, resampled 66 / 70, sparse 37 / 32.
    predict_min_factor_passes: float = 20.0
    # ... but where this fold's larger fit is narrower than the rows (agent space), only when the moved start keeps at
    # least this share of the agents the peer's fit keeps at λ (else the larger fit): priced at a small μ it is too
    # narrow and grows 10% a step. Issue 23, fifth round, 20k × 5,000, default CV fit: moved always (fourth round)
    # latent 71.5 / sparse 23.0 s; the larger fit always 71.0 / 21.5 s (and sparse 2.46 GB: the wide first step
    # fills every fold's Gram cache); this rule at 2/3 69.8 / 16.0 s, 1.67 GB. Moved/peer support ratios seen: 0.15–0.5
    # where the larger fit was the better start (latent λ_max/10⁶: 212 agents where the fold keeps 1,043, 14–16 steps
    # against 4–5 from the larger fit's 1,400), 0.74–0.9 where the moved one was (sparse λ_max/100: 597 of 806,
    # against the larger fit's 3,667, whose first step took 3.3 s a fold against 0.7).
    moved_min_share: float = 2 / 3

    # Projected gradient (calibrate/first_order.py): μ/‖PGP‖₂ from which CV fits take projected-gradient steps,
    # each contracting by q = L/(L + 2μ) ≤ 0.37 (L = 1.05·‖PGP‖₂): ~25 pairs of passes over D to 1e-13. Issue 15
    # took 4.5 (q ≤ 0.1); issue 23 measured 0.9, which adds the grid's λ = λ_max/10 (μ = ‖PGP‖₂, supports of ~90%
    # of the agents, each active-set step a rows × rows factorisation): latent types 5,000 × 1,250, CV 12.7 → 8.8
    # CPU s; sparse truth 5.0 → 4.7 CPU s; the same λ and CV errors to 1e-14.
    pg_min_pull: float = 0.9

    # CV's λ = 0 fits start from the smallest λ's support only where the pure fit is unique (calibrate/simplex.py,
    # `unique_minimiser`): Cholesky pivots of G_PP above unique_pivot × its largest diagonal entry, and every
    # agent outside the support with a reduced gradient above unique_gap × the gradient scale (exact ties,
    # duplicate agents, fail both; generic answers pass with orders of magnitude to spare, issue 23).
    unique_pivot: float = 1e-10
    unique_gap: float = 1e-9

    # μ = 0 (calibrate/active_set.py): the primal–dual steps give up after this many iterates in a row with a
    # negative weight, and the primal active set finishes from the last iterate without one (`best`), as it did
    # after `max_iter` = 500 steps. Why: at μ = 0 on supports wider than the rows (G_PP singular; wide latent-type
    # answers, where the pure fit is not unique) the steps never settle and never again give an iterate without
    # negative weights; on every problem family measured (issue 23: latent, sparse, census-shaped, Dirichlet;
    # full problems and CV folds, 100 to 25,000 agents) `best` was set within the first few steps or the steps
    # converged within a few, so the finish starts from the same point and returns the same weights, 30 steps
    # instead of 500 (each a factorisation and a pass over D).
    zero_stall: int = 30
    # CV's warm λ = 0 attempt (`simplex.FoldPath._warm_zero`) takes at most this many primal–dual steps (and 4× as
    # many primal ones); unconverged, the fold is solved cold as before. Kept fits take 2–3 steps; at 100k × 1,000
    # latent (fold 0) the unbounded attempt from a 2,051-agent support cost ~147 CPU s (the fold's λ = 0: 219 s,
    # 72 s cold) and was not kept (issue 23). Same answer either way: only a unique minimiser is ever kept.
    warm_zero_iter: int = 30


TUNING = Tuning()
