"""Writes MovieLens-100K in GroupLens's own files from the copy RecBole ships.

The RecBole wheel on PyPI (recbole 1.2.1) carries ML-100K as "atomic" files
(dataset_example/ml-100k). This script downloads that wheel with pip (no
install, no dependencies), reads the three files, and writes u.data, u.item,
u.user and u.genre as GroupLens lays them out, so that
`sr.datasets.movielens(DIR)`, `schemaretrieval etl --movielens DIR` and
`benchmarks/quality.py --movielens DIR` read it like the original download.

The ratings, users and genre flags are GroupLens's; RecBole keeps only the
release year of each film, so u.item's date column is "01-Jan-YEAR" (the
reader uses the year alone). The data set's licence is GroupLens's: do not
commit the output.

    python benchmarks/movielens_from_recbole.py --out ~/data/ml-100k [--wheel recbole-1.2.1-py3-none-any.whl]
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemaretrieval.datasets.movielens import ML_100K_GENRES  # noqa: E402

PREFIX = "recbole/dataset_example/ml-100k/ml-100k"


def download_wheel(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "recbole==1.2.1", "-d", str(directory)],
                   check=True)
    return next(directory.glob("recbole-*.whl"))


def atomic_rows(wheel: zipfile.ZipFile, suffix: str):
    """The rows of one RecBole atomic file (tab-separated, a typed header line)."""
    text = wheel.read(f"{PREFIX}.{suffix}").decode("utf-8")
    rows = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    next(rows)
    return rows


def write_grouplens(wheel_path: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as wheel:
        with open(out / "u.data", "w") as f:
            for user, item, rating, timestamp in atomic_rows(wheel, "inter"):
                f.write(f"{user}\t{item}\t{int(float(rating))}\t{int(float(timestamp))}\n")
        with open(out / "u.item", "w", encoding="latin-1", errors="replace") as f:
            for item, title, year, genres in atomic_rows(wheel, "item"):
                flags = ["1" if genre in genres.split() else "0" for genre in ML_100K_GENRES]
                named = f"{title} ({year})" if year else title
                f.write("|".join([item, named, f"01-Jan-{year}" if year else "", "", ""] + flags) + "\n")
        with open(out / "u.user", "w") as f:
            for row in atomic_rows(wheel, "user"):
                f.write("|".join(row) + "\n")
    (out / "u.genre").write_text("".join(f"{genre}|{i}\n" for i, genre in enumerate(ML_100K_GENRES)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="the folder to write (e.g. ~/data/ml-100k)")
    p.add_argument("--wheel", type=Path, help="a recbole wheel already downloaded (default: pip download it)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        write_grouplens(args.wheel or download_wheel(Path(tmp)), args.out)
    print(f"wrote MovieLens-100K to {args.out}")


if __name__ == "__main__":
    main()
