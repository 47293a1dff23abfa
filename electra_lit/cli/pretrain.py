"""``electra-pretrain``: pretrain as conf/pretrain.yaml and the command line say (electra_lit.runs.pretrain).

A re-run of the same command resumes its run folder; with ``-m`` each job returns its final
``val/loss`` to the sweeper.

``model=`` used to bring its paper recipe (lr, steps, batch, tokenizer); it now picks sizes only and
``recipe=`` the training recipe. An old command such as ``electra-pretrain model=small`` would
otherwise train ELECTRA-Small's sizes with the tiny recipe's 1000 small steps without a word, so it is
refused here, before Hydra composes anything, with the recipe to add. Library callers composing
``model=...`` themselves are not concerned: only this console script reads its command line."""

from __future__ import annotations

from collections.abc import Sequence

from electra_lit.cli.entry import chosen_options, config_groups, hydra_entry, parse_overrides
from electra_lit.errors import ConfigError
from electra_lit.runs.pretrain import sweep_objective


def check_recipe_given(overrides: Sequence[str]) -> None:
    """Refuse a ``model=`` other than tiny without any ``recipe=``, naming the recipe to add."""
    parsed = parse_overrides(overrides)
    if any(o.key_or_group == "recipe" for o in parsed):
        return
    groups = config_groups()
    for override in (o for o in parsed if o.key_or_group == "model" and not o.is_delete()):
        for option in sorted(set(chosen_options(override, groups["model"])) & set(groups["model"]) - {"tiny"}):
            recipe = f"electra_{option}"
            where = (
                f"ELECTRA-{option.capitalize()}'s recipe is recipe={recipe}"
                if recipe in groups["recipe"]
                else f"pick a recipe too ({', '.join(groups['recipe'])})"
            )
            raise ConfigError(
                f"model={option} sets only the sizes now; {where} "
                "(add recipe=tiny to train these sizes with the tiny recipe)"
            )


main = hydra_entry("electra-pretrain", "pretrain", sweep_objective, command_line_checks=[check_recipe_given])

if __name__ == "__main__":
    main()
