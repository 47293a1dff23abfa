"""``electra-finetune``: fine-tune a pretrained encoder on a task (conf/finetune.yaml, electra_lit.runs.finetune).

With ``-m`` each job returns the task's main dev metric to the sweeper."""

from electra_lit.cli.entry import hydra_entry
from electra_lit.runs.finetune import sweep_objective

main = hydra_entry("electra-finetune", "finetune", sweep_objective)

if __name__ == "__main__":
    main()
