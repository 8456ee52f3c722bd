"""Dataflow without a cloud: ``--runner=DataflowRunner --dry_run=True`` builds and translates
the full job graph of every Beam job (its composite transform on ``gs://`` paths, so nothing
is read on the launcher) and stages ``--setup_file ./setup.py`` with Beam's own stager. The
sdist Dataflow would upload as ``workflow.tar.gz`` holds every runtime package and nothing
from tests/bench, and it installs and imports outside this checkout.

Offline dry runs need valid-looking names (a project id, a region, a bucket of 3+ chars in
``--temp_location`` and ``--staging_location``): an invalid one makes Beam try to create a
default bucket over the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from apache_beam.portability.api import beam_runner_api_pb2
from helpers.jobs import every_job

from pipeline.core.beam import make_pipeline

REPO = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("queries", "pipeline", "schemas", "training")
BUCKET = "gs://wit-dry-run-bucket"
DATAFLOW_ARGS = ["--runner=DataflowRunner", "--dry_run=True", "--project=wit-dry-run",
                 "--region=us-central1", f"--temp_location={BUCKET}/tmp",
                 f"--staging_location={BUCKET}/staging", "--setup_file", str(REPO / "setup.py")]


# Beam's stager and job service leave temporary folders behind (conftest.py)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("beam_temp_files")]


def dry_run(build) -> tuple[beam_runner_api_pb2.Pipeline, dict[str, str]]:
    """Build a pipeline with ``build(pipeline)`` on the Dataflow runner in dry-run mode;
    returns the translated pipeline proto and the staged artifacts {staged name: local path}."""
    pipeline = make_pipeline(DATAFLOW_ARGS)
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    proto = result.job.proto_pipeline
    staged = {}
    for env in proto.components.environments.values():
        for dep in env.dependencies:
            path = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload)
            staged[role.staged_name] = path
    return proto, staged


def transform_names(proto: beam_runner_api_pb2.Pipeline) -> set[str]:
    return {t.unique_name for t in proto.components.transforms.values()}


@pytest.fixture(scope="module")
def staged_jobs(beam_temp_files):
    """Dry-run each Beam job once (the stager writes into ``beam_temp_files``)."""
    jobs = every_job(BUCKET)
    return {name: dry_run(build) for name, build in jobs.items()}


EXPECTED_STEPS = {
    "queries": ["BuildQueries/CountDumps", "BuildQueries/Bigrams", "BuildQueries/TitlesByInlinks",
                "BuildQueries/Write"],
    "crawl": ["Crawl/ReadSources/Readwarc", "Crawl/ReadSources/Readwat",
              "Crawl/ReadSources/Readurls", "Crawl/ReadSources/CrawlSites",
              "Crawl/Dedup", "Crawl/Balance", "Crawl/WriteCandidates", "Crawl/WriteStats"],
    "shards": ["BuildShards/Read", "BuildShards/Decontaminate", "BuildShards/ExactDups"],
}


@pytest.mark.parametrize("job", sorted(EXPECTED_STEPS))
def test_dry_run_builds_the_full_graph(staged_jobs, job):
    proto, staged = staged_jobs[job]
    names = transform_names(proto)
    for step in EXPECTED_STEPS[job]:
        assert step in names, f"{job}: {step} missing from the Dataflow graph"
    # Dataflow runs Docker environments only; the setup_file sdist is staged for the workers
    envs = list(proto.components.environments.values())
    assert envs and all(e.urn == "beam:env:docker:v1" for e in envs)
    assert "workflow.tar.gz" in staged and Path(staged["workflow.tar.gz"]).is_file()


def runtime_modules() -> set[str]:
    """Every .py file of the runtime packages in this checkout, relative to the repo."""
    return {str(p.relative_to(REPO)) for pkg in RUNTIME_PACKAGES
            for p in (REPO / pkg).rglob("*.py") if "__pycache__" not in p.parts}


def test_setup_file_sdist_holds_the_runtime_packages_only(staged_jobs):
    _, staged = staged_jobs["crawl"]
    with tarfile.open(staged["workflow.tar.gz"]) as tar:
        names = tar.getnames()
    root = names[0].split("/", 1)[0]
    inside = {n.split("/", 1)[1] for n in names if "/" in n}
    missing = runtime_modules() - inside
    assert not missing, f"sdist lacks {sorted(missing)[:10]}"
    for name in inside:
        top = name.split("/", 1)[0]
        assert top not in ("tests", "bench", ".venv", "out", "docs"), f"{root}: has {name}"
    assert "setup.py" in inside and "README.md" in inside  # setup.py reads README.md


def test_setup_file_sdist_installs_and_imports_elsewhere(staged_jobs, tmp_path):
    """``pip install --no-deps`` of the staged sdist into a fresh folder, then import the
    workers' entry modules from there (dependencies from this venv's site-packages, the
    checkout out of reach: ``python -S``, cwd elsewhere, the target first on sys.path)."""
    _, staged = staged_jobs["queries"]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    staged["workflow.tar.gz"]], check=True, capture_output=True, timeout=300)
    site_packages = sysconfig.get_paths()["purelib"]
    # site.addsitedir appends the venv after the standard library (PYTHONPATH would put it
    # before, and old backports there would shadow stdlib modules); the target comes first
    code = (f"import site, sys; site.addsitedir({site_packages!r}); "
            f"sys.path.insert(0, {str(target)!r})\n"
            "import queries.job, pipeline.crawl.transform, pipeline.shards.transform, "
            "training.clip.model, schemas, pipeline.cli\n"
            "for m in (queries.job, pipeline.crawl.transform, pipeline.shards.transform, "
            "training.clip.model, schemas):\n"
            "    print(m.__file__)\n")
    env = {"PATH": os.environ.get("PATH", ""), "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    files = result.stdout.split()
    assert len(files) == 5 and all(f.startswith(str(target)) for f in files), files
