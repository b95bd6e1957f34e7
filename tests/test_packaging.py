"""What a user installs: the GPU extra resolves to RAPIDS 24.12 beside the pinned
stack, and a wheel installed outside the checkout runs with its bundled schemas."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_the_movielens_etl_without_a_schema(tmp_path):
    """The wheel carries the bundled schemas: installed outside the checkout, the
    ETL of a MovieLens folder finds its schema by the folder's variant."""
    # setuptools writes build/ beside the sources: build from a copy of the tracked files
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name, follow_symlinks=False)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("schemaretrieval-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "schemaretrieval/schemas/movielens-100k.yaml" in names
    assert any(name.endswith("etc/dask/schemaretrieval.yaml") for name in names)

    # A fresh environment that sees this one's dependencies but not its
    # editable install of the checkout (a .pth of the checkout is not copied).
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    site = fresh / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    ours = Path(sysconfig.get_paths()["purelib"])
    # processed first (.pth files go in name order), so that the copied ones below import from it
    (site / "00-dependencies.pth").write_text(f"{ours}\n")
    for pth in ours.glob("*.pth"):
        if "schemaretrieval" not in pth.name:
            shutil.copy(pth, site / pth.name)
    # --ignore-installed: without it pip first uninstalls this environment's own
    # (editable) schemaretrieval, which the tests and the console script run from
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q",
                                "--prefix", str(fresh), str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    python = fresh / "bin" / "python"
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # a checkout on it would win
    out = tmp_path / "etl"
    # Three processes at once (most of each is TensorFlow's import): where this
    # environment's schemaretrieval comes from, where the fresh one's does, and
    # the fresh one's ETL.
    here, where, run = _run_all([
        ([sys.executable, "-c", "import schemaretrieval; print(schemaretrieval.__file__)"], None),
        ([python, "-c", "import schemaretrieval; print(schemaretrieval.__file__)"], clean),
        ([python, "-m", "schemaretrieval", "etl", "--movielens", str(ROOT / "tests" / "fixtures" / "ml-100k"),
          "--out", str(out)], clean),
    ], cwd=tmp_path, timeout=900)
    assert here.stdout.strip() == str(ROOT / "schemaretrieval" / "__init__.py"), here.stderr[-2000:]  # still editable
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr[-2000:]
    assert "Error processing line" not in where.stderr, where.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert (out / "train").is_dir() and (out / "artifacts" / "vocabularies").is_dir()
    assert {"user_id", "item_id", "item_genres"} <= set(sr_schema_columns(out / "schema.yaml"))


@pytest.fixture(scope="module", autouse=True)
def gpu_extra_resolution(tmp_path_factory):
    """pip's resolution of the GPU extra, started with the module's first test:
    it waits on the package index, so the wheel's build and install (on the
    CPU) run meanwhile rather than after it. A dry run: resolves, downloads no
    wheel, installs nothing."""
    folder = tmp_path_factory.mktemp("gpu-extra")
    with open(folder / "stderr.txt", "w") as stderr:  # a file: a full pipe would stall pip meanwhile
        process = subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
             "--report", str(folder / "report.json"), "-c", "constraints.txt", ".[gpu]"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield process, folder
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_gpu_extra_resolves_to_rapids_24_12(gpu_extra_resolution):
    process, folder = gpu_extra_resolution
    assert process.wait(timeout=600) == 0, (folder / "stderr.txt").read_text()[-3000:]
    report = folder / "report.json"
    chosen = {p["metadata"]["name"].lower(): p["metadata"]["version"]
              for p in json.loads(report.read_text())["install"]}
    assert chosen["cudf-cu12"] == "24.12.0"
    assert chosen["dask-cudf-cu12"] == "24.12.0"
    assert chosen["cupy-cuda12x"].startswith("13.")
    assert (chosen["pandas"], chosen["dask"], chosen["numpy"]) == ("2.2.3", "2024.11.2", "1.26.4")
    assert chosen["tensorflow"] == "2.21.0"
    assert "nvidia-cudnn-cu12" in chosen  # tensorflow[and-cuda]: training on the GPU too


def _run_all(commands, cwd, timeout):
    """Runs the (command, environment) pairs at once; their CompletedProcesses."""
    started = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for command, env in commands]
    try:
        outputs = [process.communicate(timeout=timeout) for process in started]
        return [subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
                for process, (stdout, stderr) in zip(started, outputs)]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()


def sr_schema_columns(path):
    import yaml

    return list(yaml.safe_load(Path(path).read_text())["columns"])
