"""``electra-tokenizer``: train a WordPiece vocab on a corpus and save it (conf/train_tokenizer.yaml).

Any ``data`` option is the corpus; writes ``out_dir/tokenizer.json`` and ``out_dir/vocab.txt``.
"""

from electra_lit.cli.entry import hydra_entry
from electra_lit.data.tokenizer import train_tokenizer_from_config

main = hydra_entry("electra-tokenizer", "train_tokenizer", train_tokenizer_from_config)

if __name__ == "__main__":
    main()
