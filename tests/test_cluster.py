"""A class on a Dask cluster (llm_grade/classroom/cluster.py): a LocalCluster with two worker
processes grades a small mixed class, and every result equals the local executor's."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from lg_paths import REFERENCE, REPO
from notebooks import as_notebook

from llm_grade.classroom.batch import grade_class, student_dir

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow
SELECT = "softmax or LayerNorm"


def _class(root: Path) -> Path:
    klass = root / "class"
    klass.mkdir()
    shutil.copytree(REFERENCE, klass / "ada", ignore=shutil.ignore_patterns("__pycache__"))
    as_notebook(
        REPO / "examples" / "buggy", klass / "ben.ipynb", modules=("attention", "normalization")
    )
    with zipfile.ZipFile(klass / "cy.zip", "w") as zf:  # unsafe: rejected, never sent
        zf.writestr("../escape.py", "x = 1\n")
    return klass


def _checks(out: Path, name: str) -> dict:
    data = json.loads((student_dir(out, name) / "results.json").read_text())
    return {
        (c["name"], t["name"]): (t["status"], t["points"])
        for c in data["components"]
        for t in c["tests"]
    }


def test_a_dask_cluster_grades_the_class_as_this_machine_does(tmp_path):
    klass = _class(tmp_path)
    local_out, dask_out = tmp_path / "local", tmp_path / "dask"
    local = grade_class(klass, local_out, jobs=2, select=SELECT)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        seen = []
        remote = grade_class(
            klass, dask_out, select=SELECT, executor="dask", scheduler=client, on_done=seen.append
        )
    assert [o.name for o in remote] == [o.name for o in local] == ["ada", "ben", "cy"]
    assert sorted(o.name for o in seen) == ["ada", "ben", "cy"]  # progress, one by one
    for name in ("ada", "ben"):
        assert _checks(dask_out, name) == _checks(local_out, name)
        assert (student_dir(dask_out, name) / "results.hmac").is_file()
    by_name = {o.name: o for o in remote}
    assert by_name["ada"].result.score == by_name["ada"].result.max_score
    assert by_name["ben"].result.origin["file"] == "ben.ipynb"
    assert "points outside the archive" in by_name["cy"].error
    # resuming: nothing changed, nothing is sent to the cluster again (no scheduler there)
    again = grade_class(klass, dask_out, select=SELECT, executor="dask", scheduler="tcp://0:1")
    assert [o.name for o in again if o.skipped] == ["ada", "ben"]
    assert "points outside the archive" in {o.name: o for o in again}["cy"].error
