"""What a user reads: every command's output, captured from a real process whose
stdout and stderr are pipes (not a terminal), on small data (issue 29).

Each command runs as the user runs it (``python -m schemaretrieval``); the
checks: one "Epoch e/E" line per epoch, numbered 1..E; no escape codes or
carriage returns; no traceback, Python warning or unknown C++ log line; the
ETL's engine said once in the library's words; a user's error is one line
and exit status 2.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from schemaretrieval import datasets
from schemaretrieval.cli.startup import cuda_driver_loads

ROOT = Path(__file__).resolve().parents[2]
ML100K = ROOT / "tests" / "fixtures" / "ml-100k"
EPOCHS = 3
# What TensorFlow writes while it is imported, before any command runs (the
# README lists them): absl's preamble and two INFO lines, twice.
START_UP = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\.",
    r"^I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.$",
)]
CPP_LOG = re.compile(r"^[IWEF]\d{4} [\d:.]+ ")
PYTHON_WARNING = re.compile(r"\w+Warning: ")


def run(*argv, timeout=600):
    return run_all([argv], timeout)[0]


def run_all(commands, timeout=600, prefix=None):
    """Runs the commands at once (most of each is TensorFlow's import); their CompletedProcesses."""
    prefix = prefix or [sys.executable, "-m", "schemaretrieval"]
    started = [subprocess.Popen([*prefix, *map(str, argv)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for argv in commands]
    results = []
    for process in started:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def user_lines(result):
    """stderr less TensorFlow's start-up lines."""
    return [line for line in result.stderr.splitlines() if not any(p.search(line) for p in START_UP)]


def check_quiet(result):
    """No escape code, no carriage return, no traceback, no warning, no C++ line but the start-up ones."""
    both = result.stdout + result.stderr
    assert "\x1b" not in both and "\r" not in both, both[-2000:]
    assert "Traceback" not in both and "terminate called" not in both, both[-3000:]
    for line in result.stderr.splitlines():
        if any(p.search(line) for p in START_UP):
            continue
        assert not CPP_LOG.match(line), f"a C++ log line the README does not list: {line!r}"
        assert not PYTHON_WARNING.search(line), f"a Python warning reached the user: {line!r}"
    if not cuda_driver_loads():
        assert "failed call to cuInit" not in result.stderr


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """etl (a given split of the MovieLens fixture), train, evaluate, recommend, similar-items."""
    root = tmp_path_factory.mktemp("output")
    ratings = datasets.movielens(ML100K)
    rows = ratings[["user_id", "item_id", "rating", "timestamp"]]
    rows.iloc[:40].to_csv(root / "u1.base", sep="\t", header=False, index=False)   # ml-100k's own layout
    rows.iloc[40:].to_csv(root / "u1.test", sep="\t", header=False, index=False)
    out = {"root": root}
    out["etl"] = run("etl", "--movielens", ML100K, "--train-ids", root / "u1.base", "--valid-ids", root / "u1.test",
                     "--out", root / "etl", "--device", "cpu")
    assert out["etl"].returncode == 0, out["etl"].stderr[-3000:]
    out["train"] = run("train", "--data", root / "etl", "--epochs", EPOCHS, "--batch-size", 8, "--ks", "5",
                       "--out", root / "run")
    assert out["train"].returncode == 0, out["train"].stderr[-3000:]
    # user 1 rated 6 of the 8 items in training, which its recommendations leave out
    out["evaluate"], out["recommend"], out["similar-items"] = run_all([
        ("evaluate", "--model", root / "run", "--data", root / "etl", "--baseline", "popularity",
         "--baseline", "ease", "--exclude-seen", "--ks", "5"),
        ("recommend", "--model", root / "run", "--user", int(ratings["user_id"].iloc[0]), "-k", 2),
        ("similar-items", "--model", root / "run", "--item", int(ratings["item_id"].iloc[0]), "-k", 2),
    ])
    return out


@pytest.mark.parametrize("command", ["etl", "train", "evaluate", "recommend", "similar-items"])
def test_every_command_is_quiet_without_a_terminal(outputs, command):
    result = outputs[command]
    assert result.returncode == 0, result.stderr[-3000:]
    check_quiet(result)
    assert result.stdout.strip()  # and it says something


def test_train_writes_one_epoch_line_per_epoch_numbered_from_one(outputs):
    lines = outputs["train"].stdout.splitlines()
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert epochs == [f"Epoch {e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    # each followed by its one summary line (Keras's verbose=2), never a bar's updates
    for epoch in epochs:
        after = lines[lines.index(epoch) + 1]
        assert re.match(r"^\d+/\d+ - \d+s - .*loss: [\d.]+", after), after
    # the chosen values, the epochs, the table (header + 4 rows), the saved line
    assert len(lines) == 1 + 2 * EPOCHS + 5 + 1, lines
    assert re.match(rf"^fit: \d+ rows, {EPOCHS} epochs, batches of \d+, learning rate 0.001$", lines[0]), lines[0]
    assert lines[-1].startswith("saved the model to ")
    assert (outputs["root"] / "run" / "serving" / "saved_model.pb").is_file()
    # each stage's time, rows/s and peak memory, on stderr in the order they ran
    steps = [line.split(":")[0] for line in user_lines(outputs["train"]) if line.startswith("step ")]
    assert steps == ["step training", "step evaluation", "step save and export"], steps
    step = re.compile(r"^step [a-z ]+: [\dhms]+, [\d,]+ rows/s, peak RSS \d+\.\d\d GB$")
    assert all(step.match(line) for line in user_lines(outputs["train"]) if line.startswith("step "))


def test_train_leaves_out_tensorflows_info_of_the_export(outputs):
    # TensorFlow's INFO of the export (captured inputs renamed, assets written) goes
    # through Python's logging, which check_quiet's patterns do not see
    stderr = outputs["train"].stderr
    assert "renamed to unknown" not in stderr and "Assets written" not in stderr


def test_the_etl_says_its_engine_once_and_not_nvtabulars_cpu_warning(outputs):
    result = outputs["etl"]
    assert result.stderr.count("ETL on CPU (pandas ") == 1
    assert "CPU mode" not in result.stderr
    assert "split by --train-ids" in result.stderr and "into 40 train and 8 valid" in result.stderr
    assert result.stdout.splitlines() == [f"wrote 40 train and 8 valid rows to {outputs['root'] / 'etl'} (device cpu)"]
    assert [line for line in user_lines(result) if line.startswith("step ")][0].startswith("step ETL: ")


def test_evaluate_recommend_and_similar_items_print_their_tables(outputs):
    table = outputs["evaluate"].stdout.splitlines()
    assert table[0].split() == ["recall@5"] and [row.split()[0] for row in table[1:4]] == \
        ["two-tower", "popularity", "ease"]
    for command in ("recommend", "similar-items"):
        lines = outputs[command].stdout.splitlines()
        assert lines[0].split() == ["rank", "item", "score"] and len(lines) == 3, lines


USER_ERRORS = {
    "missing file": (["train", "--data", "{root}/nowhere.parquet", "--schema", "schemas/synthetic.yaml",
                      "--out", "{root}/x"], "does not exist"),
    "ids not in the folder": (["etl", "--movielens", str(ML100K), "--valid-ids", "{root}/bad.tsv", "--out", "{root}/y",
                               "--device", "cpu"], "bad.tsv: 1 line(s) name a rating that is not in"),
    "no export": (["recommend", "--model", "{root}/nowhere", "--user", "1"], "holds no export"),
    "unknown item": (["similar-items", "--model", "{root}/run", "--item", "999999"], "unknown item id '999999'"),
}


@pytest.fixture(scope="module")
def user_errors(outputs):
    root = outputs["root"]
    (root / "bad.tsv").write_text("1\t7\n1\t999999\n")
    commands = [[a.format(root=root) for a in argv] for argv, _ in USER_ERRORS.values()]
    return dict(zip(USER_ERRORS, run_all(commands)))


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_a_users_error_is_one_line_and_status_2(user_errors, case):
    argv, message = USER_ERRORS[case]
    result = user_errors[case]
    assert result.returncode == 2, result.stderr[-3000:]
    check_quiet(result)
    lines = user_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"schemaretrieval {argv[0]}: error: "), lines
    assert message in lines[0] and not result.stdout


def console_script():
    """The ``schemaretrieval`` command as pip installs it: pyproject's entry point, called as
    pip's wrapper script calls it (the installed script itself where it exists)."""
    installed = Path(sys.executable).parent / "schemaretrieval"
    if installed.is_file():
        return [str(installed)]
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["schemaretrieval"]
    module, function = entry.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.argv[0] = 'schemaretrieval'; "
                                  f"sys.exit({function}())"]


def test_python_m_is_the_schemaretrieval_command(outputs, user_errors):
    no_export = [a.format(root=outputs["root"]) for a in USER_ERRORS["no export"][0]]
    commands = [["--help"], no_export]
    # user_errors ran the second with python -m already
    module = [run(*commands[0]), user_errors["no export"]]
    script = run_all(commands, prefix=console_script())
    for a, b in zip(module, script):
        assert (a.returncode, a.stdout, user_lines(a)) == (b.returncode, b.stdout, user_lines(b))
    assert module[0].returncode == 0 and module[0].stdout.startswith("usage: schemaretrieval ")
    assert module[1].returncode == 2 and len(user_lines(module[1])) == 1
