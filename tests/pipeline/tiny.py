"""The tiny training configuration of the pipeline tests (importable from settings modules)."""

# Small and fast: the pipeline tests check plumbing and a planted structure, not quality.
TINY_TRAINING = {"dim": 16, "epochs": 3, "seed": 1, "n_layers": 1, "ffn_dim": 32, "max_len": 20}
