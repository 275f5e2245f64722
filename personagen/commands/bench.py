"""`personagen bench` group: reproducible benchmarks (solver, simulate; census is added by the calibrate workstream)."""

from __future__ import annotations

import json

import click

from personagen.commands.types import SEED, Count


@click.group()
def bench() -> None:
    """Reproducible benchmarks: solver speed/accuracy, the P2P simulation, census calibration."""


@bench.command("solver")
@click.option("--agents", type=Count(2, 1_000_000), default=1000, show_default=True)
@click.option("--questions", type=Count(2, 100_000), default=500, show_default=True,
              help="questions (each with --options rows), not rows")
@click.option("--options", type=Count(2, 100), default=4, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--no-cvxpy", is_flag=True, help="skip the cvxpy/Clarabel reference")
@click.option("--no-cv", is_flag=True, help="skip the full-CV timing")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def bench_solver_cmd(agents: int, questions: int, options: int, seed: int, no_cvxpy: bool, no_cv: bool,
                     as_json: bool) -> None:
    """Fast simplex solver vs cvxpy/Clarabel at λ = 0 and λ > 0, plus full CV time."""
    from personagen.bench import bench_solver

    out = bench_solver(agents, questions, options=options, seed=seed, cvxpy=not no_cvxpy, cv=not no_cv)
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{agents} agents × {questions} questions ({out['rows']} rows)")
    for f in out["fits"]:
        line = f"  λ={f['lam']:.3g}: fast {f['fast_seconds']:.3f}s nonzeros {f['nonzeros']}"
        if "cvxpy_seconds" in f:
            line += f", clarabel {f['cvxpy_seconds']:.2f}s, ratio {f['ratio']:.1f}×, gap {f['gap']:.1e}"
        click.echo(line)
    if "cv" in out:
        c = out["cv"]
        click.echo(f"  CV {c['folds']} folds × {c['grid_size']} λ: {c['seconds']:.2f}s (λ={c['lam']:.3g})")


@bench.command("simulate")
@click.option("--agents", type=Count(10, 1_000_000), default=200, show_default=True)
@click.option("--k-true", type=Count(1, 1_000_000), default=10, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def bench_simulate_cmd(agents: int, k_true: int, seed: int, as_json: bool) -> None:
    """P2P Appendix-B-style simulation: agent-recovery precision and test MSE over two sweeps."""
    from personagen.bench import bench_simulate

    out = bench_simulate(agents, k_true=k_true, seed=seed)
    if as_json:
        click.echo(json.dumps(out))
        return
    for key, label in (("ratio_sweep", "obs_to_agent_ratio"), ("ecr_sweep", "ecr")):
        click.echo(key)
        for row in out[key]:
            s, x = row["sparse"], row["simplex"]
            click.echo(f"  {label}={row[label]:.2f}: sparse prec {s['precision']:.2f} mse {s['test_mse']:.2e} | "
                       f"simplex prec {x['precision']:.2f} mse {x['test_mse']:.2e}")


@bench.command("census")
@click.option("--census", "census", required=True, type=click.Path(), help="PUMS person file (csv, csv.gz, zip, parquet).")
@click.option("--pool-size", type=Count(10, 10_000_000), default=1000, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="first pool seed")
@click.option("--repeats", type=Count(1, 1000), default=1, show_default=True,
              help="pools to average over (seeds SEED .. SEED+REPEATS-1)")
@click.option("--calib-vars", default=None, help="comma-separated calibration variables (default: 6 demographics)")
@click.option("--test-vars", default=None, help="comma-separated held-out variables (default: 8)")
@click.option("--methods", default=None, help="comma-separated subset of simplex,simplex-lam0,sparse,rake,uniform")
@click.option("--block-weighting", is_flag=True, help="each calibration variable counts equally")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def bench_census_cmd(census: str, pool_size: int, seed: int, repeats: int, calib_vars: str | None,
                     test_vars: str | None, methods: str | None, block_weighting: bool, as_json: bool) -> None:
    """Calibrate a uniformly drawn (biased) PUMS pool on some census variables; score the held-out ones."""
    from personagen.bench import CALIB_VARS, METHODS, TEST_VARS, format_table, run_census_bench

    def split(s: str | None, default: tuple[str, ...]) -> list[str]:
        return [v.strip() for v in s.split(",") if v.strip()] if s else list(default)

    out = run_census_bench(census, pool_size=pool_size, seeds=list(range(seed, seed + repeats)),
                           calib_vars=split(calib_vars, CALIB_VARS), test_vars=split(test_vars, TEST_VARS),
                           methods=split(methods, METHODS), block_weighting=block_weighting)
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    click.echo(format_table(out))
