"""``electra-glue-table DIR...``: collect fine-tuning results into the paper's GLUE dev table
(electra_lit.runs.glue_table); ``--csv PATH`` also writes every run as CSV."""

from __future__ import annotations

import argparse

from electra_lit.runs.glue_table import collect, markdown, write_csv
from electra_lit.runs.run_dir import RunDir

RESULTS = RunDir(".").results.name  # results.json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="electra-glue-table", description=__doc__.splitlines()[0].strip('"'))
    parser.add_argument("folders", nargs="+", help=f"folders searched for {RESULTS} (or {RESULTS} files)")
    parser.add_argument("--csv", help="also write every run to this CSV file")
    args = parser.parse_args(argv)
    results = collect(args.folders)
    if not results:
        parser.error(f"no {RESULTS} under {', '.join(args.folders)}")
    print(markdown(results))
    if args.csv:
        write_csv(results, args.csv)


if __name__ == "__main__":
    main()
