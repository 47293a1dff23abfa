"""The console scripts (pyproject's [project.scripts]), each a few lines: Hydra-based ones through
:func:`electra_lit.cli.entry.hydra_entry`, argparse-based ones (export, glue_table) through
:func:`electra_lit.errors.one_line_errors`. Library modules never import this package."""
