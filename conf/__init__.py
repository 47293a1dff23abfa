"""electra_lit's Hydra configs (shipped as electra_lit.conf). Hydra imports this package to read
them, so importing it stores the schemas their defaults lists name (electra_lit.config.schema)."""

import electra_lit.config.schema  # noqa: F401  registers pretrain_schema, finetune_schema, ...
