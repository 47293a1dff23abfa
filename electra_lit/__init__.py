"""electra_lit: ELECTRA pretraining (replaced token detection) with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
