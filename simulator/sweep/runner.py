"""Run a sweep: make its traces once, evaluate the missing points in parallel, store each.

Workers receive a point (a small dict with the trace's path), never trace data. Generated
traces go to RESULTS.traces/<recipe hash> beside the results and are reused when present, so
a resumed or repeated sweep does not make them again. A sweep holds its results file's lock
(store.results_lock) while it runs: a second sweep on the same output is refused.
"""

from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .._atomic import output_path
from .._progress import progress as progress_bar
from ..errors import OptionError
from ..trace import generate, open_trace
from ..trace.generators import Drift, pooling_from_recipe
from ..workload import load_model
from .evaluate import evaluate
from .spec import load_spec, recipe_hash
from .store import ResultsStore, load_results, results_lock


def traces_dir(results_path) -> Path:
    results_path = Path(results_path)
    return results_path.with_name(results_path.name.rsplit(".", 1)[0] + ".traces")


def _make_trace(recipe: dict, path: Path) -> None:
    if (path / "meta.json").is_file():
        return
    drift = {o.name: recipe[o.name] for o in Drift.options if o.name in recipe}
    generate(recipe["generator"], path, recipe["table_rows"], batch_size=recipe["batch_size"],
             num_batches=recipe["batches"], seed=recipe["seed"], alpha=recipe["alpha"],
             pooling=pooling_from_recipe(recipe["pooling"]),
             multi_hot=recipe.get("multi_hot", "independent"), permute=recipe["permute"],
             show_progress=False, **drift)


def _check_models(spec, tasks: list[dict]) -> None:
    """Every (model, trace) pair fits before any point runs (OptionError naming the spec)."""
    for model, trace_dir in {(t["model"], t["trace_dir"]) for t in tasks
                             if t["model"] is not None and not t["tables_from_trace"]}:
        try:
            load_model(model).check_trace(open_trace(trace_dir))
        except OptionError as e:
            raise OptionError(f"{spec.source}: model: {e}") from None


def _run_local(tasks, workers):
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(evaluate, t): t for t in tasks}
        for f in as_completed(futures):
            yield futures[f], f.result()


def _run_dask(tasks, workers, address):
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(address if cluster is None else cluster)
    try:
        futures = {client.submit(evaluate, t, pure=False): t for t in tasks}
        for f in dask_completed(futures):
            yield futures[f], f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(spec_path, results_path, workers: int | None = None, dask: str | None = None,
              progress: bool = True):
    """Evaluate every point of the spec that results_path does not hold yet; return all the
    results as a DataFrame.

    workers: processes (default: os.cpu_count()). dask: None for a local process pool,
    "local" for a dask.distributed LocalCluster, or a scheduler address."""
    spec = load_spec(spec_path)
    if workers is not None and workers <= 0:
        raise OptionError(f"workers must be positive, got {workers}")
    workers = workers or os.cpu_count() or 1
    results_path = output_path(results_path)
    points = spec.points()
    with results_lock(results_path):  # one writer per results file
        store = ResultsStore(results_path)
        for number, problem in store.damaged:
            print(f"sweep: {store.journal}: line {number} is damaged ({problem}); it is "
                  "dropped and its point computed again", file=sys.stderr, flush=True)
        store.repair()
        _run_missing(spec, points, store, workers, dask, progress)
    return load_results(results_path)


def _run_missing(spec, points, store: ResultsStore, workers: int, dask: str | None,
                 progress: bool) -> None:
    """Evaluate the points the store lacks, appending each to it as it finishes."""
    results_path = store.path
    ids = [p.id for p in points]
    missing = [p for p in points if p.id not in store.rows]
    if not missing:
        store.write_csv(ids)
        return
    tasks = []
    for p in missing:
        if p.recipe is not None:
            trace_dir = traces_dir(results_path) / recipe_hash(p.recipe)
            trace_dir.parent.mkdir(exist_ok=True)
            _make_trace(p.recipe, trace_dir)
        else:
            trace_dir = Path(spec.trace_path)
        tasks.append({**p.config, "trace_dir": str(trace_dir),
                      "tables_from_trace": p.tables_from_trace, "point_id": p.id})
    _check_models(spec, tasks)
    store.write_csv(ids)
    run = _run_local(tasks, workers) if dask is None else _run_dask(tasks, workers, dask)
    with progress_bar(total=len(points), unit="points", desc="sweep", enabled=progress) as bar:
        bar.update(len(points) - len(missing))
        by_id = {p.id: p for p in missing}
        for task, metrics in run:
            store.append(task["point_id"], by_id[task["point_id"]].config, metrics)
            store.write_csv(ids)
            bar.update(1)
