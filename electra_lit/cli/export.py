"""``electra-export CKPT OUTDIR``: a pretraining checkpoint as Hugging Face transformers directories.

Writes the kept model, ``OUTDIR/discriminator`` (``ElectraForPreTraining``; for the MLM objectives
``OUTDIR/masked_lm``, an ``ElectraForMaskedLM``), and ``OUTDIR/generator`` (``ElectraForMaskedLM``),
each with the run's tokenizer, loadable by ``from_pretrained`` (electra_lit.hf.export_checkpoint).
OUTDIR must be new or empty; ``--overwrite`` replaces the folders an earlier export wrote there.
A fine-tuning, missing or unreadable checkpoint is refused in one line (exit code 2).
"""

from __future__ import annotations

import argparse

from electra_lit.errors import one_line_errors
from electra_lit.hf import export_checkpoint
from electra_lit.runs.run_dir import RunDir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="electra-export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint",
        help=f"a .ckpt written by electra-pretrain, e.g. {RunDir('runs/pretrain/default').last_checkpoint}, or its URL",
    )
    parser.add_argument(
        "out_dir",
        help="where to write discriminator/ (or masked_lm/) and generator/: a new or empty folder, or a URL (s3://...)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="out_dir may hold files: replace its discriminator/, masked_lm/ and generator/, keep the rest",
    )
    args = parser.parse_args(argv)
    with one_line_errors("electra-export"):
        written = export_checkpoint(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
