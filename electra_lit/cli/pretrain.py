"""``electra-pretrain``: pretrain as conf/pretrain.yaml and the command line say (electra_lit.runs.pretrain).

A re-run of the same command resumes its run folder; with ``-m`` each job returns its final
``val/loss`` to the sweeper."""

from electra_lit.cli.entry import hydra_entry
from electra_lit.runs.pretrain import sweep_objective

main = hydra_entry("electra-pretrain", "pretrain", sweep_objective)

if __name__ == "__main__":
    main()
