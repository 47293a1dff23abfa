"""``electra-glue-table DIR...``: collect fine-tuning results into the paper's GLUE dev table
(electra_lit.runs.glue_table); ``--csv PATH`` also writes every run as CSV."""

from __future__ import annotations

import argparse

from electra_lit.runs.glue_table import collect, markdown, write_csv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="electra-glue-table", description=__doc__.splitlines()[0].strip('"'))
    parser.add_argument("folders", nargs="+", help="folders searched for results.json (or results.json files)")
    parser.add_argument("--csv", help="also write every run to this CSV file")
    args = parser.parse_args(argv)
    results = collect(args.folders)
    if not results:
        parser.error(f"no results.json under {', '.join(args.folders)}")
    print(markdown(results))
    if args.csv:
        write_csv(results, args.csv)


if __name__ == "__main__":
    main()
