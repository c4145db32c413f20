"""A class on a cluster, measured: the generated mixed class (benchmarks/make_class.py) graded
by ``llm-grade batch`` with the local pool (``--jobs N``) and on a Dask LocalCluster of N
worker processes (one thread each), the whole rubric, sandboxed. Prints seconds per
submission and submissions per minute per worker; on a real cluster each worker machine
adds its own share (the scheduler only hands out tasks).

    python benchmarks/cluster_bench.py --students 12 --workers 2

A script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import distributed

    from benchmarks.make_class import make_class
    from llm_grade.classroom.batch import grade_class

    with tempfile.TemporaryDirectory() as tmp:
        klass = Path(tmp) / "class"
        make_class(klass, args.students)
        started = time.perf_counter()
        local = grade_class(klass, Path(tmp) / "local", jobs=args.workers)
        local_s = time.perf_counter() - started
        with distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, dashboard_address=None
        ) as cluster, distributed.Client(cluster) as client:
            started = time.perf_counter()
            remote = grade_class(klass, Path(tmp) / "dask", executor="dask", scheduler=client)
            dask_s = time.perf_counter() - started
        same = all(
            (a.result is None) == (b.result is None)
            and (a.result is None or a.result.score == b.result.score)
            for a, b in zip(local, remote, strict=True)
        )
        n = len(local)
        for label, seconds in (("local pool", local_s), ("dask LocalCluster", dask_s)):
            per_worker = n / seconds * 60 / args.workers
            print(
                f"{label}: {n} submissions in {seconds:.1f} s = {seconds / n:.2f} s each "
                f"with {args.workers} workers; {per_worker:.1f} submissions/min per worker"
            )
        print(f"same scores: {same}")


if __name__ == "__main__":
    main()
