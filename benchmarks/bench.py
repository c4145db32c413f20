"""How long llm-grade takes to grade one complete, correct submission (``reference/``) here.

Why: the performance issues set targets (a full grade < 10 s wall and within 2x the floor,
``-k softmax`` within 1.3x a bare ``import torch``, a hang < 60 s more than a correct grade,
``--jobs 2`` >= 1.7x ``--jobs 1``, a class of 30 at <= 2.5 s a submission with 2 jobs in
<= 1.5 GB, a full grade <= 1.5x Otter-Grader's 6-check notebook, ``llm-grade --help`` < 0.5 s).
This script measures them on this machine and prints each number next to its target. It is a
script, not a test: timings depend on the machine and its load. Wall times are of
subprocesses, medians of ``--runs``.

- **floor** = bare ``python -c "import torch"`` + the raw compute of the reference on the
  same inputs: an in-process grading of ``reference/`` with the executor's ``call`` and
  ``gradients`` timed (there the "learner's" calls are the reference's forward and backward
  passes on exactly the inputs the graders generate).
- ``llm-grade grade reference --isolation process --out DIR`` (``--jobs`` 2 by default on two
  cores: the second group of checks in a second process; also timed with ``--jobs 1``); the
  same runs give the **time
  to first result** (first pytest progress character at a line start on stdout, read byte by
  byte with PYTHONUNBUFFERED=1), **peak RSS** (``/usr/bin/time -f %M``, else ``os.wait4``:
  the largest *single* process; and the whole tree, sampled from /proc every 50 ms) and the
  **time per component** (sum of its checks' ``duration_s`` in results.json).
- ``pytest graders/ --grade-submission reference`` in-process (the learner's local loop); the
  **Hypothesis examples** run (passing + failing, from ``--hypothesis-show-statistics``); the
  **worker start** (spawn the sandboxed worker until every module is imported);
  ``llm-grade --help``; ``llm-grade batch`` on 20 submissions, ``--jobs 1`` vs ``--jobs 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference"
BUGGY = REPO / "examples" / "buggy"
LIVE_LINE = re.compile(r"^  [✓✗·] \w")  # a component's line, printed when its checks are in
PYTEST = [sys.executable, "-m", "pytest", "graders/", "--grade-submission", str(REFERENCE), "-q"]
PYTEST += ["-p", "no:cacheprovider"]
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
WORKER_START = """
import json, time
from llm_grade.sandbox.confine import bubblewrap
from llm_grade.sandbox.limits import Limits
from llm_grade.sandbox.transport import WorkerTransport
from llm_grade.paths import bundled
from llm_grade.engine.rubric import load_rubric
rubric = load_rubric(bundled("graders") / "rubric.toml")
sandbox = bubblewrap()  # probed (and cached) before the clock starts
worker = WorkerTransport(bundled("reference"), rubric.forbidden,
                         Limits.from_mapping(rubric.limits),
                         masks=[bundled("reference"), bundled("graders")])
start = time.perf_counter()
worker.start()
elapsed = time.perf_counter() - start
worker.close()
print(json.dumps({"start_s": elapsed, "bubblewrap": sandbox is not None}))
"""

WORKER_FORK = """
import json, shutil, time
from llm_grade.sandbox.limits import Limits
from llm_grade.sandbox.template import stage_area
from llm_grade.sandbox.transport import WorkerTransport
from llm_grade.paths import bundled
from llm_grade.engine.rubric import load_rubric
rubric = load_rubric(bundled("graders") / "rubric.toml")
limits = Limits.from_mapping(rubric.limits)
area = stage_area(limits, [bundled("reference"), bundled("graders")], gpu=False)
root = area.new_stage() / "submission"
shutil.copytree(bundled("reference"), root)
worker = WorkerTransport(root, rubric.forbidden, limits, masks=[])
worker.start()  # the template's own start (torch) is paid here, once
times = []
for _ in range(5):
    worker.kill()
    start = time.perf_counter()
    worker.start()
    times.append(time.perf_counter() - start)
worker.close()
print(json.dumps({"fork_s": sorted(times)[2]}))
"""

RAW_COMPUTE = """
import json, sys, time
from llm_grade.sandbox import executor
from llm_grade.engine.run import grade
spent, depth = [0.0], [0]
def timed(original):
    def run(self, *args, **kwargs):
        depth[0] += 1
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent[0] += time.perf_counter() - start
    return run
executor.Executor.op_call = timed(executor.Executor.op_call)
executor.Executor.op_gradients = timed(executor.Executor.op_gradients)
result = grade(sys.argv[1], isolation="none", quiet=True)
print(json.dumps({"compute_s": spent[0], "score": result.score}))
"""


def llm_grade() -> list[str]:
    script = Path(sys.executable).with_name("llm-grade")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llm_grade"]


def fail(cmd: list[str], code: int, output: str) -> None:
    sys.exit(f"{' '.join(cmd)} failed with status {code}:\n{output[-5000:]}")


def run(cmd: list[str], check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd`` in the repository; return its wall time and the finished process."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        fail(cmd, proc.returncode, proc.stdout + proc.stderr)
    return elapsed, proc


def timing(samples: list[float]) -> dict:
    return {"median_s": statistics.median(samples), "samples_s": [round(s, 3) for s in samples]}


def median_wall(cmd: list[str], runs: int) -> dict:
    return timing([run(cmd)[0] for _ in range(runs)])


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, from /proc."""
    todo, pages = [pid], 0
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                pages += int(fh.read().split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def grade_process(out: Path) -> dict:
    """One ``llm-grade grade reference --isolation process`` run, watched from outside."""
    cmd = llm_grade() + ["grade", str(REFERENCE), "--isolation", "process", "--out", str(out)]
    maxrss_file = out.with_suffix(".maxrss")
    if TIME:
        cmd = [TIME, "-f", "%M", "-o", str(maxrss_file)] + cmd
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    peak, done = [0.0], threading.Event()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, bufsize=0
        )

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        first, line, output = None, bytearray(), bytearray()
        while byte := proc.stdout.read(1):
            line += byte
            if byte == b"\n":
                if first is None and LIVE_LINE.match(line.decode(errors="replace")):
                    first = time.perf_counter() - start
                line = bytearray()
            output += byte
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
        if proc.returncode != 0:
            err.seek(0)
            fail(cmd, proc.returncode, output.decode() + err.read().decode())
    maxrss_kb = int(maxrss_file.read_text().split()[-1]) if TIME else usage.ru_maxrss
    results = json.loads((out / "results.json").read_text())
    return {
        "wall_s": wall,
        "first_s": first,
        "rss_mb": maxrss_kb / 1024,
        "tree_mb": peak[0],
        "results": results,
    }


def hypothesis_examples() -> dict:
    # one process: the helper of --grade-jobs 2 prints its statistics to its own log
    stdout = run(PYTEST + ["--hypothesis-show-statistics", "--grade-jobs", "1"])[1].stdout
    counts = re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", stdout)
    return {
        "examples": sum(int(p) + int(f) for p, f, _ in counts),
        "invalid": sum(int(i) for _, _, i in counts),
        "phases": len(counts),
    }


def batch(runs: int, size: int) -> dict | None:
    """``llm-grade batch`` with --jobs 1 and 2 on ``size`` submissions; None if unavailable."""
    if run(llm_grade() + ["batch", "--help"], check=False)[1].returncode != 0:
        return None
    times: dict = {"submissions": size}
    with tempfile.TemporaryDirectory(prefix="llm-grade-bench-") as tmp:
        subs = Path(tmp) / "submissions"
        for i in range(size):  # half correct, half with the example's bugs
            source = REFERENCE if i % 2 == 0 else BUGGY
            shutil.copytree(
                source, subs / f"s{i:02d}", ignore=shutil.ignore_patterns("__pycache__")
            )
        for jobs in (1, 2):
            cmd = llm_grade() + ["batch", str(subs), "--jobs", str(jobs), "--out"]
            samples = [run(cmd + [f"{tmp}/out-{jobs}-{r}"])[0] for r in range(runs)]
            times[f"jobs{jobs}"] = timing(samples)
    times["speedup"] = times["jobs1"]["median_s"] / times["jobs2"]["median_s"]
    return times


def class_batch(size: int) -> dict:
    """``llm-grade batch`` with --jobs 1 and 2 on the generated mixed class (correct, buggy,
    not started, partial, hostile; folders, zips, notebooks), its scores checked."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_class import make_class, problems

    from llm_grade.output.exporters import load_results

    times: dict = {"submissions": size}
    with tempfile.TemporaryDirectory(prefix="llm-grade-class-") as tmp:
        expected = make_class(Path(tmp) / "class", size)
        for jobs in (1, 2):
            out = Path(tmp) / f"out-{jobs}"
            cmd = llm_grade() + ["batch", f"{tmp}/class", "--jobs", str(jobs), "--out", str(out)]
            seen = watched(cmd)
            times[f"jobs{jobs}"] = timing([seen["wall_s"]])
            times[f"jobs{jobs}"]["peak_rss_mb"] = seen["rss_mb"]
            times[f"jobs{jobs}"]["peak_pss_mb"] = seen["pss_mb"]
            wrong = {}
            for name, want in expected.items():
                path = out / "students" / name / "results.json"
                found = problems(load_results(path), want) if path.is_file() else ["no results"]
                if found:
                    wrong[name] = found
            times[f"jobs{jobs}"]["wrong_scores"] = wrong
    times["speedup"] = times["jobs1"]["median_s"] / times["jobs2"]["median_s"]
    return times


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants (shared pages counted once
    across the tree: forked workers share their template's torch)."""
    todo, kb = [pid], 0
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                kb += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError, IndexError, StopIteration):
            continue
    return kb / 1024


def watched(cmd: list[str]) -> dict:
    """Run ``cmd`` in the repository; its wall time and the peak memory of its whole process
    tree (resident and proportional), sampled from /proc every 100 ms."""
    peak = {"rss_mb": 0.0, "pss_mb": 0.0}
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def sample() -> None:
        while not done.wait(0.1):
            peak["rss_mb"] = max(peak["rss_mb"], tree_rss_mb(proc.pid))
            peak["pss_mb"] = max(peak["pss_mb"], tree_pss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        fail(cmd, proc.returncode, err.decode(errors="replace"))
    return {"wall_s": wall, **peak}


HANG = "    while True:  # the bench's hanging softmax\n        pass\n"


def hanging_grade(runs: int) -> dict:
    """A full grade of the reference whose softmax never returns (one component hangs)."""
    with tempfile.TemporaryDirectory(prefix="llm-grade-hang-") as tmp:
        sub = Path(tmp) / "hang"
        shutil.copytree(REFERENCE, sub, ignore=shutil.ignore_patterns("__pycache__"))
        path = sub / "attention.py"
        anchor = "    x_max = x.amax(dim=dim, keepdim=True)\n"
        path.write_text(path.read_text().replace(anchor, HANG + anchor, 1))
        cmd = llm_grade() + ["grade", str(sub), "--isolation", "process", "-q"]
        return median_wall(cmd, runs)


def otter(runs: int) -> dict | None:
    """``benchmarks/otter_compare.py``: Otter-Grader on a correct notebook with 6 checks
    (its virtual environment is made on first use: a few minutes)."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "otter_compare.py"), "--runs", str(runs)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  otter comparison failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout)


def warm_grades(runs: int) -> dict:
    """``llm-grade grade`` through a warm grading server (``llm-grade server start``, of
    this bench's own): the learner's loop after the first grade of a session."""
    name = f"bench-{os.getpid()}"
    os.environ.update(LLM_GRADE_SERVER="1", LLM_GRADE_SERVER_NAME=name)
    try:
        start, _ = run(llm_grade() + ["server", "start", str(REFERENCE)])
        softmax = median_wall(llm_grade() + ["grade", str(REFERENCE), "-q", "-k", "softmax"], runs)
        full = median_wall(llm_grade() + ["grade", str(REFERENCE), "-q"], runs)
        served = run(llm_grade() + ["server", "status"], check=False)[1].stdout.strip()
        run(llm_grade() + ["server", "stop"])
    finally:
        os.environ["LLM_GRADE_SERVER"] = "0"
        os.environ.pop("LLM_GRADE_SERVER_NAME", None)
    return {"start_s": start, "softmax": softmax, "full": full, "status": served}


def measure(
    runs: int, with_batch: bool, batch_size: int, class_size: int, with_otter: bool = False
) -> dict:
    os.environ["LLM_GRADE_SERVER"] = "0"  # cold runs are cold (a warm server is measured apart)

    def step(name: str) -> None:
        print(f"  measuring {name} ...", file=sys.stderr, flush=True)

    m: dict = {"runs": runs, "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    step("torch import")
    m["torch_import"] = median_wall([sys.executable, "-c", "import torch"], runs)
    step("the reference's own compute on the graders' inputs")
    raw = [
        json.loads(run([sys.executable, "-c", RAW_COMPUTE, str(REFERENCE)])[1].stdout)
        for _ in range(runs)
    ]
    m["raw_compute"] = timing([r["compute_s"] for r in raw])
    step("in-process grading of the reference (--isolation none)")
    m["in_process"] = median_wall(
        llm_grade() + ["grade", str(REFERENCE), "--isolation", "none"], runs
    )
    step("llm-grade grade --isolation process")
    with tempfile.TemporaryDirectory(prefix="llm-grade-bench-") as tmp:
        graded = [grade_process(Path(tmp) / f"run{i}") for i in range(runs)]
    m["grade_process"] = timing([g["wall_s"] for g in graded])
    m["first_result"] = timing([g["first_s"] or float("nan") for g in graded])
    m["peak_rss_mb"] = {
        "tree_sampled": max(g["tree_mb"] for g in graded),
        "largest_process": max(g["rss_mb"] for g in graded),
    }
    results = graded[-1]["results"]
    m["sandbox"] = results["isolation"].get("sandbox", "")
    m["component_s"] = {
        c["name"]: sum(t["duration_s"] for t in c["tests"]) for c in results["components"]
    }
    step("llm-grade grade reference -k softmax (one component)")
    m["softmax_only"] = median_wall(
        llm_grade() + ["grade", str(REFERENCE), "--isolation", "process", "-q", "-k", "softmax"],
        runs,
    )
    step("llm-grade grade through a warm grading server (-k softmax, full)")
    m["warm"] = warm_grades(runs)
    step("llm-grade grade of a submission whose softmax hangs")
    m["hanging"] = hanging_grade(1)
    step("llm-grade grade --jobs 1 (the checks' two groups one after the other)")
    m["grade_jobs1"] = median_wall(
        llm_grade() + ["grade", str(REFERENCE), "--isolation", "process", "--jobs", "1"], runs
    )
    step("llm-grade grade --train (the full grade and both models trained on their tasks)")
    m["grade_train"] = median_wall(
        llm_grade() + ["grade", str(REFERENCE), "--isolation", "process", "-q", "--train"], 1
    )
    step("pytest graders/ in-process")
    m["pytest_in_process"] = median_wall(PYTEST, runs)
    step("Hypothesis examples")
    m["hypothesis"] = hypothesis_examples()
    step("worker start")
    starts = [json.loads(run([sys.executable, "-c", WORKER_START])[1].stdout) for _ in range(runs)]
    m["worker_start"] = timing([s["start_s"] for s in starts])
    step("worker fork from a template")
    forks = [json.loads(run([sys.executable, "-c", WORKER_FORK])[1].stdout) for _ in range(runs)]
    m["worker_fork"] = timing([f["fork_s"] for f in forks])
    step("llm-grade --help")
    m["help"] = median_wall(llm_grade() + ["--help"], 5)
    if with_batch:
        step("llm-grade batch")
        m["batch"] = batch(runs, batch_size)
        if class_size:
            step(f"llm-grade batch on a generated class of {class_size}")
            m["class_batch"] = class_batch(class_size)
    if with_otter:
        step("otter run on a correct notebook with 6 checks (benchmarks/otter_compare.py)")
        m["otter"] = otter(runs)
    m["load_after"] = os.getloadavg()
    return m


def report(m: dict) -> list[tuple]:
    """The table's rows: (name, value, unit, target, met?)."""
    rows: list[tuple] = []

    def row(name: str, value: float, unit: str = "s", target: str = "", ok=None) -> None:
        rows.append((name, value, unit, target, ok))

    def med(key: str) -> float:
        return m[key]["median_s"]

    floor = med("torch_import") + med("raw_compute")
    grade, checks = med("grade_process"), sum(m["component_s"].values())
    torch_s = med("torch_import")
    row("floor: python -c 'import torch'", torch_s)
    row("floor: reference's compute on the same inputs", med("raw_compute"))
    row("floor = torch import + that compute", floor)
    row("cold: grade --isolation process (full grade)", grade, "s", "< 10 s", grade < 10)
    row("  ... the same with --jobs 1", med("grade_jobs1"))
    row("  ... as a multiple of the floor", grade / floor, "x", "<= 2x", grade / floor <= 2)
    if m.get("grade_train"):
        trained = med("grade_train")
        row("cold: grade --train (1 run)", trained, "s", "< 60 s", trained < 60)
        row("  ... of which training on the tasks", trained - grade)
    softmax = med("softmax_only")
    row("cold: grade -k softmax (one component)", softmax)
    row(
        "  ... as a multiple of import torch",
        softmax / torch_s,
        "x",
        "<= 1.3x",
        softmax / torch_s <= 1.3,
    )
    if m.get("warm"):
        w = m["warm"]
        row("warm server: llm-grade server start", w["start_s"])
        served = re.search(r"(\d+) gradings? served", w["status"])
        wanted = 2 * m["runs"]
        count = int(served.group(1)) if served else 0
        row("  ... gradings it served (else: cold)", count, "", str(wanted), count == wanted)
        warm_softmax, warm_full = w["softmax"]["median_s"], w["full"]["median_s"]
        row("warm: grade -k softmax", warm_softmax)
        row(
            "  ... as a multiple of import torch",
            warm_softmax / torch_s,
            "x",
            "<= 1.3x",
            warm_softmax / torch_s <= 1.3,
        )
        row("warm: full grade", warm_full, "s", "< 10 s", warm_full < 10)
        row(
            "  ... as a multiple of the floor",
            warm_full / floor,
            "x",
            "<= 2x",
            warm_full / floor <= 2,
        )
        if m.get("otter"):
            ratio = warm_full / m["otter"]["otter_run_s"]
            row("  ... as a multiple of otter run", ratio, "x", "<= 1.5x", ratio <= 1.5)
    extra = med("hanging") - grade
    row("grade with a hanging softmax", med("hanging"))
    row("  ... more than a correct submission", extra, "s", "< 60 s", extra < 60)
    row("grade --isolation none (in-process)", med("in_process"))
    row("  ... time to first result", med("first_result"))
    row("  ... sum of checks' duration_s", checks)
    row("  ... outside checks (start, setup, report)", grade - checks)
    row("pytest graders/ in-process (local loop)", med("pytest_in_process"))
    row("worker start (spawn + torch + preload)", med("worker_start"))
    if "worker_fork" in m:
        row("worker fork from a template (+ preload)", med("worker_fork"))
    row("llm-grade --help", med("help"), "s", "< 0.5 s", med("help") < 0.5)
    row("peak RSS: whole tree (sampled /proc)", m["peak_rss_mb"]["tree_sampled"], "MB")
    tool = "time -f %M" if TIME else "wait4"
    row(f"peak RSS: largest process ({tool})", m["peak_rss_mb"]["largest_process"], "MB")
    row("Hypothesis examples (passing + failing)", m["hypothesis"]["examples"], "")
    if m.get("otter"):
        otter_s = m["otter"]["otter_run_s"]
        row("otter run: 6 one-example checks", otter_s)
        row(
            "  ... full grade as a multiple of it",
            grade / otter_s,
            "x",
            "<= 1.5x",
            grade / otter_s <= 1.5,
        )
    if m.get("batch"):
        n, speedup = m["batch"]["submissions"], m["batch"]["speedup"]
        row(f"batch {n} submissions --jobs 1", m["batch"]["jobs1"]["median_s"])
        row(f"batch {n} submissions --jobs 2", m["batch"]["jobs2"]["median_s"])
        row("  ... speed-up jobs 2 / jobs 1", speedup, "x", ">= 1.7x", speedup >= 1.7)
    if m.get("class_batch"):
        c = m["class_batch"]
        n, speedup = c["submissions"], c["speedup"]
        wrong = len(c["jobs1"]["wrong_scores"]) + len(c["jobs2"]["wrong_scores"])
        row(f"mixed class of {n} --jobs 1", c["jobs1"]["median_s"])
        each = c["jobs2"]["median_s"] / n
        row(f"mixed class of {n} --jobs 2", c["jobs2"]["median_s"])
        row("  ... per submission", each, "s", "<= 2.5 s", each <= 2.5)
        row(
            "  ... 300 submissions (extrapolated)", each * 300 / 60, "min", "<= 15", each * 20 <= 15
        )
        row("  ... speed-up jobs 2 / jobs 1", speedup, "x", ">= 1.6x", speedup >= 1.6)
        row("  ... submissions scored wrongly", wrong, "", "0", wrong == 0)
        pss = c["jobs2"]["peak_pss_mb"]
        row("  ... peak memory of 2 jobs (PSS, tree)", pss, "MB", "<= 1500", pss <= 1500)
        row("  ... peak memory of 2 jobs (RSS sum)", c["jobs2"]["peak_rss_mb"], "MB")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 run each, skip batch")
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "benchmarks" / "results.json",
        help="write the numbers here (default: benchmarks/results.json)",
    )
    parser.add_argument("--batch-size", type=int, default=20, help="submissions for batch")
    parser.add_argument(
        "--class-size",
        type=int,
        default=30,
        help="submissions in the generated mixed class (benchmarks/make_class.py); 0: skip",
    )
    parser.add_argument(
        "--otter",
        action="store_true",
        help="also time Otter-Grader (benchmarks/otter_compare.py; installs it in a venv)",
    )
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    print(f"llm-grade benchmarks on reference/: medians of {runs} run(s)", flush=True)
    m = measure(runs, not args.quick, args.batch_size, args.class_size, args.otter)
    rows = report(m)

    print(f"\n{'measurement':<46} {'median':>10}   {'target':<8} verdict")
    for name, value, unit, target, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        shown = f"{value:>8.2f}" if unit in ("s", "x", "min") else f"{value:>8.0f}"
        print(f"{name:<46} {shown} {unit:<3} {target:<8} {verdict}")
    if m.get("batch") is None:
        print("batch: skipped (--quick)" if args.quick else "batch: not available yet")
    print("\ntime per component (sum of its checks' duration_s, --isolation process):")
    for name, seconds in sorted(m["component_s"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<32} {seconds:6.2f} s")
    print(
        f"\nfloor = bare torch import + the reference's own forward/backward time on every\n"
        f"input the graders send (its calls timed inside an in-process grading). "
        f"{m['hypothesis']['invalid']} invalid Hypothesis "
        f"examples not counted.\nSandbox: {m['sandbox'].split(':')[0]}. Load average "
        f"{m['load_before'][0]:.2f} -> {m['load_after'][0]:.2f} on {m['cpus']} CPUs."
    )
    m["targets"] = {
        r[0].strip(" ."): {"value": r[1], "target": r[3], "ok": r[4]} for r in rows if r[3]
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    print(f"(numbers written to {args.json})")


if __name__ == "__main__":
    main()
