"""``electra-prepare-data``: tokenize and pack a corpus once into memory-mapped shards
(conf/prepare_data.yaml, electra_lit.data.pretraining.prepare)."""

from electra_lit.cli.entry import hydra_entry
from electra_lit.data.pretraining.prepare import prepare

main = hydra_entry("electra-prepare-data", "prepare_data", prepare)

if __name__ == "__main__":
    main()
