"""Every argument of every command is checked before any work: a user's error is one
line on stderr naming the argument and what it accepts, exit status 2, no traceback."""

import subprocess
import sys

import pytest

from schemaretrieval.cli import main

TRAIN = ["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "500", "--out"]
ETL = ["etl", "--schema", "schemas/synthetic.yaml", "--train", "raw.parquet", "--out"]
INT = r"expected an integer >= 1, got"

CASES = [
    (TRAIN, ["--batch-size", "0"], rf"argument --batch-size: {INT} '0'"),
    (TRAIN, ["--epochs", "0"], rf"argument --epochs: {INT} '0'"),
    (TRAIN, ["--epochs", "-3"], rf"argument --epochs: {INT} '-3'"),
    (TRAIN, ["--epochs", "2.5"], rf"argument --epochs: {INT} '2.5'"),
    (TRAIN, ["--learning-rate", "0"], r"argument --learning-rate: expected a finite number > 0, got '0'"),
    (TRAIN, ["--learning-rate", "nan"], r"argument --learning-rate: expected a finite number > 0, got 'nan'"),
    (TRAIN, ["--learning-rate", "inf"], r"argument --learning-rate: expected a finite number > 0, got 'inf'"),
    (TRAIN, ["--ema-momentum", "2"], r"argument --ema-momentum: expected a finite number >= 0 and <= 1, got '2'"),
    (TRAIN, ["--test-fraction", "1"], r"argument --test-fraction: expected a finite number > 0 and < 1, got '1'"),
    (TRAIN, ["--test-fraction", "x"], r"argument --test-fraction: expected a finite number > 0 and < 1, got 'x'"),
    (TRAIN, ["--seed", "-1"], r"argument --seed: expected an integer in \[0, 4294967295\], got '-1'"),
    (TRAIN, ["--seed", str(2**32)], r"argument --seed: expected an integer in \[0, 4294967295\]"),
    (TRAIN, ["--ks", "0,10"], r"argument --ks: expected comma-separated distinct integers >= 1 such as 10,100, got '0,10'"),
    (TRAIN, ["--ks", "ten"], r"argument --ks: expected comma-separated distinct integers >= 1"),
    (TRAIN, ["--ks", "10,10"], r"argument --ks: expected comma-separated distinct integers >= 1 .* got '10,10'"),
    (TRAIN, ["--early-stopping", "0"], rf"argument --early-stopping: {INT} '0'"),
    (TRAIN, ["--early-stopping", "2", "--validation-fraction", "1.5"],
     r"argument --validation-fraction: expected a finite number > 0 and < 1, got '1.5'"),
    (TRAIN, ["--validation-fraction", "0.3"], r"--validation-fraction is the share --early-stopping holds out"),
    (TRAIN, ["--checkpoint-every", "0"], rf"argument --checkpoint-every: {INT} '0'"),
    (TRAIN, ["--checkpoint-every", "5"], r"--checkpoint-every N saves into --checkpoint-dir: give --checkpoint-dir"),
    (TRAIN, ["--on-bad-rows", "drop"], r"argument --on-bad-rows: invalid choice: 'drop'"),
    (TRAIN, ["--split", "time"], r"--split applies to --movielens data only"),
    (TRAIN, ["--leave-out", "0"], rf"argument --leave-out: {INT} '0'"),
    (["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "0", "--out"], [], rf"argument --synthetic: {INT} '0'"),
    (["train", "--preset", "movielens-huge", "--out"], [], r"argument --preset: invalid choice: 'movielens-huge'"),
    (["train", "--schema", "no/such.yaml", "--synthetic", "10", "--out"], [], r"no/such.yaml"),
    (["train", "--schema", "schemas/synthetic.yaml", "--data", "no/such.parquet", "--out"], [], r"no/such.parquet"),
    (ETL, ["--split", "time"], r"--split applies to --movielens data only; split your own data beforehand"),
    (ETL, ["--leave-out", "2"], r"--leave-out applies to --movielens data only"),
    (ETL, ["--test-fraction", "2"], r"argument --test-fraction: expected a finite number > 0 and < 1, got '2'"),
    (ETL, ["--seed", "x"], r"argument --seed: expected an integer in \[0, 4294967295\], got 'x'"),
    (ETL, ["--movielens", "tests/fixtures/ml-100k"], r"give --movielens or --train, not both"),
    (["etl", "--movielens", "tests/fixtures/ml-100k", "--split", "random", "--leave-out", "3", "--out"], [],
     r"--leave-out is the number --split leave-last holds out; --split is random"),
    (["etl", "--train", "raw.parquet", "--out"], [], r"give --schema and --train"),
    (ETL, ["--train-ids", "u1.base"], r"--train-ids and --valid-ids select ratings of a --movielens folder"),
    (["etl", "--movielens", "tests/fixtures/ml-100k", "--split", "time", "--train-ids", "a", "--valid-ids", "b",
      "--out"], [], r"--train-ids and --valid-ids replace --split and --leave-out"),
    (["evaluate", "--baseline", "popularity", "--schema", "schemas/synthetic.yaml", "--synthetic", "100"],
     ["--ease-l2", "0"], r"argument --ease-l2: expected a finite number > 0, got '0'"),
    (["evaluate", "--baseline", "popularity", "--schema", "schemas/synthetic.yaml", "--synthetic", "100"],
     ["--ks", "a,b"], r"argument --ks: expected comma-separated distinct integers >= 1"),
    (["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "10", "--out", "README.md"], [],
     r"argument --out: expected a directory \(new or existing\), got the file 'README.md'"),
    (TRAIN, ["--checkpoint-dir", "README.md"], r"argument --checkpoint-dir: expected a directory .* 'README.md'"),
    # was: "[Errno 20] Not a directory" naming no flag, after the data was read
    (TRAIN, ["--checkpoint-dir", "README.md/ckpt"], r"--checkpoint-dir 'README.md/ckpt': cannot make the directory "
                                                    r"\(Not a directory\)"),
    (["etl", "--schema", "schemas/synthetic.yaml", "--train", "raw.parquet", "--out", "README.md"], [],
     r"argument --out: expected a directory .* 'README.md'"),
    (["evaluate", "--baseline", "popularity", "--schema", "schemas/synthetic.yaml", "--synthetic", "100"],
     ["--out", "README.md"], r"argument --out: expected a directory .* 'README.md'"),
    (["recommend", "--model", "m", "--user", "1"], ["-k", "0"], rf"argument -k: {INT} '0'"),
    (["similar-items", "--model", "m", "--item", "1"], ["-k", "-1"], rf"argument -k: {INT} '-1'"),
]


def _argv(prefix, extra, tmp_path):
    # commands that write take --out last in the prefix
    return [*prefix, str(tmp_path / "out"), *extra] if prefix[-1] == "--out" else [*prefix, *extra]


@pytest.mark.parametrize("prefix, extra, message", CASES, ids=[" ".join(c[0][:1] + c[1]) or c[2][:30] for c in CASES])
def test_a_bad_argument_is_one_line_naming_it(prefix, extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(_argv(prefix, extra, tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("schemaretrieval")]
    assert len(lines) == 1 and "Traceback" not in err, err
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out" / "model.keras").exists()


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "100", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "schemaretrieval train: error:" in err and "out" in err


def test_bad_arguments_print_no_traceback_as_a_user_runs_the_command(tmp_path):
    # the two processes at once: most of each is TensorFlow's import
    started = [subprocess.Popen([sys.executable, "-m", "schemaretrieval", *argv, "--out", str(tmp_path / "o")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for argv in (["train", "--batch-size", "0", "--synthetic", "10", "--schema", "schemas/synthetic.yaml"],
                            ["etl", "--schema", "schemas/synthetic.yaml", "--train", "x.parquet", "--split", "time"])]
    for process in started:
        stdout, stderr = process.communicate(timeout=300)
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert [line for line in done.stderr.splitlines() if line.startswith("schemaretrieval")], done.stderr


def test_a_finished_checkpoint_resumed_into_a_new_out_says_so_and_writes_the_run(tmp_path, capsys):
    args = ["train", "--schema", "schemas/synthetic.yaml", "--synthetic", "600", "--epochs", "1", "--batch-size", "256",
            "--ks", "10", "--no-export", "--checkpoint-dir", str(tmp_path / "ckpt"), "--out"]
    assert main([*args, str(tmp_path / "first")]) == 0
    capsys.readouterr()
    assert main([*args, str(tmp_path / "second")]) == 0
    out = capsys.readouterr().out
    assert "holds a finished run (1 epochs, epochs=1 asked): nothing left to train" in out
    assert "raise the epochs to train on from it" in out
    assert (tmp_path / "second" / "model.keras").exists() and (tmp_path / "second" / "metrics.json").exists()
    # raising --epochs trains on from the checkpoint
    assert main([*args[:6], "2", *args[7:], str(tmp_path / "third")]) == 0
    assert "resuming from" in capsys.readouterr().out
