"""The learning core: plain numpy/scipy/torch, no Django.

The Django layer reads events and products from the database, maps them to dense indices and
calls these modules with arrays:

- `dataset`: `InteractionData` (per-user ordered events) and the leave-one-out, temporal and
  k-fold user splits;
- `features`: hashed content features of items (`ItemFeaturizer`) and RFM user features;
- `config`: the two-tower model's options (`TrainConfig`) and their checks, without torch;
- `two_tower`: the two-tower model (`TwoTowerRecommender`, `TrainingError`);
- `distributed`: data-parallel training across processes (DDP over NCCL or gloo), which
  `fit` uses under torchrun; `launch`: rank 0 hands the data to the other ranks, which it
  starts itself on this machine or torchrun starts;
- `artifacts`: save/load a trained model as safetensors + JSON (no pickle);
- `classic`: popularity, item-kNN, EASE and ALS baselines behind `Recommender`;
- `evaluation`: full-ranking metrics and model comparison tables.

Submodules are imported explicitly (`from recommendations.learning.two_tower import ...`) so
that importing the package does not load torch.
"""
