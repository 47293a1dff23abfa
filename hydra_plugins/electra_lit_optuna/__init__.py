"""electra_lit's Optuna sweeper as a Hydra plugin (``hparams_search=electra_optuna``).

Hydra builds sweepers only from classes inside the ``hydra_plugins`` namespace package, so this
thin package is where the class lives; the search itself is electra_lit.runs.optuna_search.
"""
