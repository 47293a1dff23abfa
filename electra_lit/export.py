"""``electra-export CKPT OUTDIR``: a pretraining checkpoint as Hugging Face transformers directories.

Writes ``OUTDIR/discriminator`` (``ElectraForPreTraining``; for the MLM objectives the kept model
is a masked LM and is written as ``ElectraForMaskedLM``) and ``OUTDIR/generator``
(``ElectraForMaskedLM``), each with the run's tokenizer, loadable by ``from_pretrained``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from electra_lit.errors import ConfigError, one_line_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="electra-export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt written by electra-pretrain, e.g. runs/pretrain/default/checkpoints/last.ckpt")
    parser.add_argument("out_dir", help="where to write discriminator/ and generator/")
    args = parser.parse_args(argv)
    with one_line_errors("electra-export"):
        written = export(args.checkpoint, args.out_dir)
    for path in written:
        print(f"wrote {path}")


def export(checkpoint: str, out_dir: str) -> list[Path]:
    if not Path(checkpoint).is_file():
        raise ConfigError(f"checkpoint {checkpoint}: no such file")
    from tokenizers import Tokenizer

    from electra_lit.hf import export_pretrained
    from electra_lit.lit import ElectraPretrainModule

    module = ElectraPretrainModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=False)
    tokenizer = Tokenizer.from_str(module.tokenizer_json) if module.tokenizer_json else None
    return export_pretrained(module.generator, module.discriminator, tokenizer, out_dir)


if __name__ == "__main__":
    main()
