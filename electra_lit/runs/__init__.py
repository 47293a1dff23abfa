"""A run: its folder's layout (RunDir), its setup (seed, precision, loggers, trainer, saved config),
which checkpoint it resumes from, what it prints at the end, and the pretrain and fine-tune runs.

Import the heavy parts from their modules (electra_lit.runs.pretrain, .finetune, .setup); this
package's import stays light so that ``import electra_lit`` does not pull in Lightning.
"""

from electra_lit.runs.naming import run_name
from electra_lit.runs.run_dir import RunDir, previous_checkpoint

__all__ = ["RunDir", "previous_checkpoint", "run_name"]
