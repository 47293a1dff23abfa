"""electra_lit: ELECTRA pretraining (replaced token detection) with PyTorch Lightning and Hydra.

Importing the package registers the config resolvers that conf/ uses and quiets warnings a user
cannot act on (electra_lit._startup), once, for every entry point, notebook and test.
"""

from electra_lit._startup import quiet_known_warnings, register_resolvers

__version__ = "0.1.0"

register_resolvers()
quiet_known_warnings()
