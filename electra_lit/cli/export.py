"""``electra-export CKPT OUTDIR``: a pretraining checkpoint as Hugging Face transformers directories.

Writes the kept model, ``OUTDIR/discriminator`` (``ElectraForPreTraining``; for the MLM objectives
``OUTDIR/masked_lm``, an ``ElectraForMaskedLM``), and ``OUTDIR/generator`` (``ElectraForMaskedLM``),
each with the run's tokenizer, loadable by ``from_pretrained`` (electra_lit.hf.export_checkpoint).
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
        help=f"a .ckpt written by electra-pretrain, e.g. {RunDir('runs/pretrain/default').last_checkpoint}",
    )
    parser.add_argument("out_dir", help="where to write discriminator/ (or masked_lm/) and generator/")
    args = parser.parse_args(argv)
    with one_line_errors("electra-export"):
        written = export_checkpoint(args.checkpoint, args.out_dir)
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
