"""The console scripts (pyproject's [project.scripts]), each a few lines: Hydra-based ones through
:func:`electra_lit.cli.entry.hydra_entry`, argparse-based ones (export, glue_table) through
:func:`electra_lit.errors.one_line_errors`. Library modules never import this package."""

import os

# Set before anything loads torch's OpenMP runtime (the package's __init__ does not import torch):
# an intra-op thread that runs out of work spins 1,000 times, then sleeps, where GNU OpenMP spins
# 300,000. Alone a run is as fast either way; beside one busy process on a 2-core machine a run
# with the default kept 30% of its speed, less than its fair half, and with 1,000 54-66%
# (docs/performance.md, "Sharing the CPU"). GOMP_SPINCOUNT or OMP_WAIT_POLICY set by the user win.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"
