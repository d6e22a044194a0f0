"""Two-tower recommender: a content-aware item tower and a sequence-aware user tower.

Item tower: an id embedding plus the weighted sum of hashed content-feature embeddings
(title words and n-grams, category path, brand/store, price, age), so an item with no events
still gets a useful vector from its content alone. During training whole id embeddings are
dropped at random (`id_dropout`) so that the content path has to carry the signal.

User tower: a small causal transformer (SASRec-like) over the user's ordered recent items,
embedded with the same item tower (input and output embeddings are shared), plus optional
user features (RFM buckets). score(user, item) = <user, item> + item bias and the probability
of interaction is sigmoid(score).

Training predicts the next item at every position of every training sequence with softmax
cross-entropy over the whole catalogue (exact, chunked to stay in cache) when the catalogue is
small enough, or sampled softmax with logQ correction otherwise, weighted by interaction weight.

Under torchrun (or any torch.distributed process group) `fit` trains data-parallel: see
`distributed` for the plumbing and `TrainConfig.distributed` to opt out. Each rank samples its
own negatives for the sampled softmax (from the same logQ distribution, with its own generator):
every rank's loss is then the same estimate of the full softmax on its own batch, and the
averaged gradient is that of a batch `world_size` times larger. Sharing negatives across ranks
would need an all-gather of their embeddings every step for no gain in correctness.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .classic import Recommender
from .config import TrainConfig
from .dataset import EvalSet, InteractionData
from .evaluation import ranking_metrics
from .features import ItemFeatures, UserFeatures

_Bag = tuple[torch.Tensor, torch.Tensor]  # (ids, weights) of an EmbeddingBag input


class TrainingError(RuntimeError):
    """Training diverged or cannot proceed; the message says why."""


@dataclass
class EpochLog:
    """What the per-epoch callback receives (for progress bars and logs)."""

    epoch: int
    loss: float
    val_metric: float | None
    seconds: float
    elapsed: float
    best_epoch: int
    best_metric: float | None


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device; None or "auto" is CUDA when torch sees a GPU, else the CPU.

    The one place the engine chooses between CPU and GPU: callers that read a device name from
    settings pass it here rather than deciding "auto" themselves.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # legacy global state, for third-party code that uses it
    torch.manual_seed(seed)


# --- network -------------------------------------------------------------------------------
class _Block(nn.Module):
    """Pre-LayerNorm causal self-attention + feed-forward block."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError("dim must be divisible by n_heads")
        self.heads = heads
        self.attn_dropout = dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ffn_dim)
        self.ff2 = nn.Linear(ffn_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(x)))))


class TwoTowerNet(nn.Module):
    """The torch module; `TwoTowerRecommender` wraps training, scoring and export."""

    def __init__(
        self,
        n_items: int,
        config: TrainConfig,
        item_features: ItemFeatures | None = None,
        n_user_features: int = 0,
    ) -> None:
        super().__init__()
        d = config.dim
        self.n_items = n_items
        self.config = config
        self.item_id = nn.Embedding(n_items, d)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.has_features = item_features is not None
        self._operators: dict[str, _SparseOperator] = {}
        if item_features is not None:
            # Only features that occur in the catalogue get a row (row 0: unknown feature);
            # hashed ids are mapped to rows through the sorted `feature_vocab`.
            vocab = np.unique(item_features.ids[item_features.mask])
            self.register_buffer("feature_vocab", torch.as_tensor(vocab, dtype=torch.int64))
            self.register_buffer("feature_ids", torch.as_tensor(item_features.ids))
            self.register_buffer("feature_weights", torch.as_tensor(item_features.weights))
            # Last column is the content part of the item bias.
            self.feature_table = nn.Parameter(torch.zeros(len(vocab) + 1, d + 1))
            self.n_hashed_features = item_features.n_features
        self.user_feature_emb: nn.EmbeddingBag | None = None
        if n_user_features:
            self.user_feature_emb = nn.EmbeddingBag(n_user_features, d, mode="sum")
        self.position = nn.Embedding(config.max_len, d)
        self.input_norm = nn.LayerNorm(d)
        self.input_drop = nn.Dropout(config.dropout)
        block = (config.n_heads, config.ffn_dim, config.dropout)
        self.blocks = nn.ModuleList(_Block(d, *block) for _ in range(config.n_layers))
        self.output_norm = nn.LayerNorm(d)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 1.0 / math.sqrt(self.config.dim)
        nn.init.normal_(self.item_id.weight, std=std)
        nn.init.normal_(self.position.weight, std=std)
        if self.has_features:
            with torch.no_grad():
                self.feature_table.zero_()
                self.feature_table[1:, :-1].normal_(std=std)
        if self.user_feature_emb is not None:
            nn.init.normal_(self.user_feature_emb.weight, std=std)

    # item tower
    def content_operator(self, ids: np.ndarray, weights: np.ndarray) -> _SparseOperator:
        """Sparse [n, n_rows] matrix mapping padded hashed feature ids to table rows."""
        vocab = self.feature_vocab.cpu().numpy()
        pos = np.searchsorted(vocab, ids).clip(0, max(len(vocab) - 1, 0))
        known = (vocab[pos] == ids) & (weights > 0) if len(vocab) else np.zeros_like(ids, bool)
        rows = np.nonzero(known)[0]
        matrix = sp.csr_matrix(
            (weights[known].astype(np.float32), (rows, pos[known] + 1)),
            shape=(ids.shape[0], self.feature_table.shape[0]),
        )
        return _SparseOperator(matrix, self.feature_table.device)

    def content_table(self, operator: _SparseOperator) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and bias of items from content features only."""
        out = _SparseMatmul.apply(self.feature_table, operator)
        return out[:, :-1], out[:, -1]

    def _catalogue_operator(self) -> _SparseOperator:
        key = str(self.feature_table.device)
        if key not in self._operators:
            ids = self.feature_ids.cpu().numpy()
            self._operators = {key: self.content_operator(ids, self.feature_weights.cpu().numpy())}
        return self._operators[key]

    def item_table(
        self, id_keep: torch.Tensor | None = None, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings [n, d] and biases [n] of all items, or only of the items `rows`.

        `id_keep` (0/1 per item) zeroes the id part of dropped items during training.
        """
        emb, bias = self.item_id.weight, self.item_bias
        if rows is not None:
            emb, bias = emb[rows], bias[rows]
            id_keep = None if id_keep is None else id_keep[rows]
        if id_keep is not None:
            emb = emb * id_keep[:, None]
            bias = bias * id_keep
        if self.has_features:
            operator = self._catalogue_operator()
            if rows is not None:
                operator = operator.rows(rows.cpu().numpy())
            c_emb, c_bias = self.content_table(operator)
            emb = emb + c_emb
            bias = bias + c_bias
        return emb, bias

    def forward(
        self,
        inputs: torch.Tensor,
        id_keep: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        user_features: _Bag | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: hidden states of the sequences `inputs` and the item embeddings and
        biases (all items, or `rows`) they were encoded with, which the loss scores against.

        One call rather than `item_table` + `encode`, because DistributedDataParallel hooks
        `forward` to know when to average gradients. The encoder runs in bf16 on CUDA.
        """
        emb, bias = self.item_table(id_keep, rows)
        kind = emb.device.type
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda"):
            hidden = self.encode(inputs, emb, user_features)
        return hidden, emb, bias

    # user tower
    def encode(
        self,
        seq: torch.Tensor,
        table: torch.Tensor,
        user_features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Hidden state at every position of right-padded sequences `seq` (-1 = padding)."""
        length = seq.shape[1]
        x = table[seq.clamp_min(0)]
        x = x + self.position.weight[:length][None]
        if user_features is not None and self.user_feature_emb is not None:
            ids, weights = user_features
            x = x + self.user_feature_emb(ids, per_sample_weights=weights)[:, None]
        x = self.input_drop(self.input_norm(x))
        for block in self.blocks:
            x = block(x)
        return self.output_norm(x)


class _SparseOperator:
    """A fixed sparse matrix (and its transpose for gradients), multiplied on CPU with scipy,
    which is faster than torch's CSR kernels there, and elsewhere with torch CSR tensors."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device) -> None:
        self.matrix = matrix.tocsr()
        self.device = device
        self._torch: tuple[torch.Tensor, torch.Tensor] | None = None
        if device.type != "cpu":
            transpose = self.matrix.T.tocsr()
            self._torch = (_to_torch_csr(self.matrix, device), _to_torch_csr(transpose, device))

    def rows(self, index: np.ndarray) -> _SparseOperator:
        return _SparseOperator(self.matrix[index], self.device)

    def apply(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        if self._torch is not None:
            return self._torch[1 if transpose else 0] @ x
        m = self.matrix.T if transpose else self.matrix
        return torch.from_numpy(np.asarray(m @ x.detach().numpy(), dtype=np.float32))


def _to_torch_csr(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    return torch.sparse_csr_tensor(
        torch.as_tensor(m.indptr, dtype=torch.int64),
        torch.as_tensor(m.indices, dtype=torch.int64),
        torch.as_tensor(m.data, dtype=torch.float32),
        size=m.shape,
        device=device,
    )


class _SparseMatmul(torch.autograd.Function):
    """operator @ table with the gradient operator.T @ grad (no per-step index sorting)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, table: torch.Tensor, operator: _SparseOperator
    ) -> torch.Tensor:
        ctx.operator = operator  # type: ignore[attr-defined]
        return operator.apply(table)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple:
        return ctx.operator.apply(grad.contiguous(), transpose=True), None  # type: ignore


# --- losses --------------------------------------------------------------------------------
class _FullSoftmaxCE(torch.autograd.Function):
    """Weighted softmax cross-entropy over all items, computed in row chunks.

    Logits of one chunk at a time stay in cache and the gradient is produced in the same pass,
    so memory is O(chunk x n_items) and the catalogue-wide softmax costs ~3 matrix products.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        emb: torch.Tensor,
        bias: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        total = weights.sum().clamp_min(1e-12)
        loss = hidden.new_zeros(())
        grad_h = torch.empty_like(hidden)
        grad_e = torch.zeros_like(emb)
        grad_b = torch.zeros_like(bias)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            t = targets[start : start + chunk]
            w = weights[start : start + chunk] / total
            logits = torch.addmm(bias, h, emb.T)
            lse = torch.logsumexp(logits, dim=1)
            rows = torch.arange(len(t), device=t.device)
            loss = loss + ((lse - logits[rows, t]) * w).sum()
            probs = logits.sub_(lse[:, None]).exp_()
            probs[rows, t] -= 1.0
            probs.mul_(w[:, None])
            grad_h[start : start + chunk] = probs @ emb
            grad_e.addmm_(probs.T, h)
            grad_b += probs.sum(0)
        ctx.save_for_backward(grad_h, grad_e, grad_b)
        return loss

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple:
        grad_h, grad_e, grad_b = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad_h * grad, grad_e * grad, grad_b * grad, None, None, None


def full_softmax_loss(
    hidden: torch.Tensor,
    emb: torch.Tensor,
    bias: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    chunk: int = 256,
) -> torch.Tensor:
    """Weighted mean cross-entropy of the next item against the whole catalogue."""
    return _FullSoftmaxCE.apply(hidden, emb, bias, targets, weights, chunk)


def sampled_softmax_loss(
    hidden: torch.Tensor,
    emb: torch.Tensor,
    bias: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Sampled softmax with negatives shared across the batch and logQ correction.

    `log_q` is the log sampling probability of each item; subtracting it from every logit makes
    the sampled loss an unbiased-in-the-limit estimate of the full softmax (Jean et al. 2015,
    Yi et al. 2019). Negatives that equal the target ("accidental hits") are masked out.
    """
    k = len(negatives)
    pos = (hidden * emb[targets]).sum(1) + bias[targets] - log_q[targets] - math.log(k)
    neg_bias = bias[negatives] - log_q[negatives] - math.log(k)
    neg = torch.addmm(neg_bias, hidden, emb[negatives].T)
    neg = neg.masked_fill_(negatives[None, :] == targets[:, None], float("-inf"))
    nll = torch.logaddexp(pos, torch.logsumexp(neg, dim=1)) - pos
    return (nll * weights).sum() / weights.sum().clamp_min(1e-12)


# --- batching ------------------------------------------------------------------------------
@dataclass
class _Sequences:
    items: np.ndarray  # int64 [n, max_len + 1], right-padded with -1
    weights: np.ndarray  # float32 [n, max_len + 1]
    lengths: np.ndarray  # int64 [n]
    users: np.ndarray  # int64 [n]


def _training_sequences(data: InteractionData, max_len: int) -> _Sequences:
    """The last max_len + 1 events of every user with at least two (input + target)."""
    lengths = np.minimum(data.lengths(), max_len + 1)
    users = np.flatnonzero(lengths >= 2)
    items = np.full((len(users), max_len + 1), -1, dtype=np.int64)
    weights = np.zeros((len(users), max_len + 1), dtype=np.float32)
    for row, u in enumerate(users):
        n = lengths[u]
        hi = data.indptr[u + 1]
        items[row, :n] = data.items[hi - n : hi]
        weights[row, :n] = data.weights[hi - n : hi]
    return _Sequences(items, weights, lengths[users], users)


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length sequences (less padding, same randomness)."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 32
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _pad_histories(histories: Sequence[Sequence[int]], max_len: int, n_items: int) -> np.ndarray:
    """Right-padded (-1) matrix of the last max_len known items of each history."""
    cleaned = []
    for h in histories:
        h = np.asarray(h, dtype=np.int64)
        cleaned.append(h[(h >= 0) & (h < n_items)][-max_len:])
    width = max((len(h) for h in cleaned), default=1) or 1
    out = np.full((len(cleaned), width), -1, dtype=np.int64)
    for row, h in enumerate(cleaned):
        out[row, : len(h)] = h
    return out


# --- recommender ---------------------------------------------------------------------------
class TwoTowerRecommender(Recommender):
    """Trains `TwoTowerNet` and exposes vectors and scores for serving and evaluation."""

    uses_validation = True  # early-stops on the validation set (see evaluation.compare)

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()
        self.net: TwoTowerNet | None = None
        self.n_items = 0
        self.device = resolve_device(self.config.device)
        self.user_features: UserFeatures | None = None
        self.history: list[EpochLog] = []
        self.best_epoch = 0
        self.best_metric: float | None = None

    # training
    def fit(
        self,
        train: InteractionData,
        validation: EvalSet | None = None,
        callback: Callable[[EpochLog], None] | None = None,
    ) -> Self:
        """Train on `train` (next-item prediction on every prefix), early-stopping on the
        NDCG@`metric_k` of `validation` and keeping the best epoch's weights.

        Under torchrun (see `TrainConfig.distributed`) every rank must call `fit` with the same
        data; each trains on its share of the sequences and all end with the same weights.
        `callback` is called on rank 0 only.
        """
        cfg = self.config
        _check_weights(train)
        group = distributed.join(cfg.distributed, resolve_device(cfg.device))
        seed_everything(cfg.seed)
        self.device = group.place(resolve_device(cfg.device))
        if self.device.type == "cpu":
            cores = (os.cpu_count() or 1) // group.local_world_size
            torch.set_num_threads(cfg.num_threads or max(cores, 1))
        seqs = _training_sequences(train, cfg.max_len)
        _check_same_data(group, seqs, train.n_items)
        if not len(seqs.users):
            raise TrainingError(
                "no user has two or more interactions to learn from (the model learns from each "
                "user's sequence): train on more interactions per user, e.g. a longer window of events "
                "or an evaluation split that keeps more of them for training"
            )
        self.n_items = train.n_items
        features = train.item_features if cfg.use_item_features else None
        use_users = cfg.use_user_features and train.user_features is not None
        self.user_features = train.user_features if use_users else None
        n_user_features = self.user_features.n_features if self.user_features else 0
        net = TwoTowerNet(train.n_items, cfg, features, n_user_features).to(self.device)
        self.net = net
        model: nn.Module = net
        if group.initialized:
            # Buffers are constants (feature ids): synced once here, not before every step.
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)
            torch.manual_seed(cfg.seed + group.rank)  # each rank its own dropout masks
        optimizer = _make_optimizer(net, cfg)
        small = train.n_items <= cfg.full_softmax_max_items
        use_full = cfg.loss == "full" or (cfg.loss == "auto" and small)
        log_q = None if use_full else _sampling_log_probs(train).to(self.device)
        validation = _subsample(validation, cfg.validation_users, cfg.seed)
        # Seeded alike on every rank: all draw the same batches and each takes its share.
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + group.rank)
        best_state, bad_epochs, t_start = None, 0, time.perf_counter()
        self.history, self.best_epoch, self.best_metric = [], 0, None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            total, count = 0.0, 0
            batches = group.shard(_batches(seqs.lengths, cfg.batch_size, rng))
            out_of_time = False
            for step, rows in enumerate(batches):
                progress = (epoch - 1 + step / len(batches)) / cfg.epochs
                if cfg.max_seconds:
                    used = group.max(time.perf_counter() - t_start) / cfg.max_seconds
                    if used >= 1.0 and count:
                        out_of_time = True  # the budget ends mid-epoch: validate and stop
                        break
                    progress = max(progress, used)
                global_step = (epoch - 1) * len(batches) + step
                for param_group in optimizer.param_groups:
                    param_group["lr"] = cfg.lr * _lr_factor(cfg, progress, global_step)
                loss = self._train_step(model, seqs, rows, use_full, log_q, gen, optimizer)
                loss = group.mean(loss)  # every rank sees a divergence at the same step
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"training loss became {loss} at epoch {epoch}, step {step + 1}: "
                        "the model diverged. Lower the learning rate (lr="
                        f"{cfg.lr}) or check interaction weights and features."
                    )
                total += loss
                count += 1
            metric = None
            last = epoch == cfg.epochs or out_of_time
            if validation is not None and (epoch % cfg.eval_every == 0 or last):
                metric = self._validate(validation, group)
                if self.best_metric is None or metric > self.best_metric:
                    self.best_metric, self.best_epoch, bad_epochs = metric, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad_epochs += 1
            elapsed = group.max(time.perf_counter() - t_start)
            log = EpochLog(
                epoch,
                total / max(count, 1),
                metric,
                time.perf_counter() - t0,
                elapsed,
                self.best_epoch,
                self.best_metric,
            )
            self.history.append(log)
            if callback is not None and group.is_main:
                callback(log)
            if epoch >= cfg.min_epochs and bad_epochs >= cfg.patience:
                break
            if out_of_time or (cfg.max_seconds is not None and elapsed >= cfg.max_seconds):
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return self

    def _train_step(
        self,
        model: nn.Module,
        seqs: _Sequences,
        rows: np.ndarray,
        use_full: bool,
        log_q: torch.Tensor | None,
        gen: torch.Generator,
        optimizer: torch.optim.Optimizer,
    ) -> float:
        """One optimiser step on the sequences `rows`; `model` is the net or its DDP wrapper."""
        cfg, net, dev = self.config, self.net, self.device
        assert net is not None
        width = int(seqs.lengths[rows].max())
        items = torch.as_tensor(seqs.items[rows, :width], device=dev)
        weights = torch.as_tensor(seqs.weights[rows, 1:width], device=dev)
        inputs, targets = items[:, :-1], items[:, 1:]
        valid = targets >= 0
        keep = None
        if cfg.id_dropout > 0:
            keep = (torch.rand(net.n_items, generator=gen, device=dev) >= cfg.id_dropout).float()
        negatives = rows_needed = None
        if not use_full:
            # Only the batch's items and the shared negatives need embeddings in this step.
            assert log_q is not None
            k = min(cfg.n_negatives, net.n_items)
            negatives = torch.multinomial(log_q.exp(), k, replacement=True, generator=gen)
            rows_needed = torch.unique(torch.cat([items[items >= 0], negatives]))
            inputs = _positions(rows_needed, inputs)
            targets = _positions(rows_needed, targets)
            negatives = _positions(rows_needed, negatives)
        hidden, emb, bias = model(inputs, keep, rows_needed, self._user_feature_tensors(seqs.users[rows]))
        hidden = hidden[valid].float()
        t, w = targets[valid], weights[valid]
        if use_full:
            chunk = cfg.softmax_chunk if dev.type == "cpu" else max(cfg.softmax_chunk, 4096)
            loss = full_softmax_loss(hidden, emb, bias, t, w, chunk)
        else:
            assert log_q is not None and negatives is not None and rows_needed is not None
            loss = sampled_softmax_loss(hidden, emb, bias, t, w, negatives, log_q[rows_needed])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def _validate(self, validation: EvalSet, group: distributed.Group = distributed.SOLO) -> float:
        """NDCG@k on the validation set, full ranking with the history masked (torch top-k).

        Under DDP each rank ranks its share of the users and the sums are all-reduced, so every
        rank gets the same figure (and takes the same early-stopping decision).
        """
        k = self.config.metric_k
        net = self._require_net()
        net.eval()
        emb, bias = net.item_table()
        mine = group.rows(len(validation))
        tops = []
        for start in range(0, len(mine), 2048):
            part = mine[start : start + 2048]
            batch = validation.take(part)
            hist = batch.histories
            users = self.user_embeddings(hist, batch.users, batch.user_features, table=emb)
            scores = users @ emb.T + bias
            rows = np.repeat(np.arange(len(hist)), [len(h) for h in hist])
            cols = np.concatenate(hist) if len(rows) else np.zeros(0, np.int64)
            r, c = (torch.as_tensor(a, dtype=torch.int64, device=self.device) for a in (rows, cols))
            scores[r, c] = -torch.inf
            # As evaluation.ranked_lists: at most the catalogue, masked items are empty slots.
            best = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            tops.append(best.indices.masked_fill(torch.isneginf(best.values), -1).cpu().numpy())
        ndcg = 0.0
        if tops:
            targets = [validation.targets[r] for r in mine]
            ndcg = ranking_metrics(np.concatenate(tops), targets, self.n_items, (k,))[f"NDCG@{k}"]
        if not group.parallel:
            return ndcg
        total, n = group.sum([ndcg * len(mine), len(mine)])
        return total / max(n, 1)

    def _user_feature_tensors(self, users: np.ndarray | None) -> _Bag | None:
        if self.user_features is None or users is None:
            return None
        ids = torch.as_tensor(self.user_features.ids[users], device=self.device)
        weights = torch.as_tensor(self.user_features.weights[users], device=self.device)
        return ids, weights

    # serving
    def _require_net(self) -> TwoTowerNet:
        if self.net is None:
            raise RuntimeError("the model is not trained; call fit() or load a saved model")
        return self.net

    @torch.no_grad()
    def user_embeddings(
        self,
        histories: Sequence[Sequence[int]],
        user_ids: np.ndarray | None = None,
        user_features: UserFeatures | None = None,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[n, dim] user-tower output for ordered item histories (any length, oldest first).

        Items outside 0..n_items-1 are ignored. User features come from `user_features` (rows
        aligned with `histories`) or, when `user_ids` is given, from the training data.
        """
        net = self._require_net()
        net.eval()
        feats = None
        if user_features is not None and net.user_feature_emb is not None:
            feats = (
                torch.as_tensor(user_features.ids, device=self.device),
                torch.as_tensor(user_features.weights, device=self.device),
            )
        elif user_ids is not None:
            feats = self._user_feature_tensors(np.asarray(user_ids))
        emb = net.item_table()[0] if table is None else table
        out = torch.zeros(len(histories), net.config.dim, device=self.device)
        # Similar lengths together: padding to the longest history of a chunk costs little.
        lengths = np.array([min(len(h), net.config.max_len) for h in histories])
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), 512):
            rows = order[start : start + 512]
            padded = _pad_histories([histories[r] for r in rows], net.config.max_len, self.n_items)
            seq = torch.as_tensor(padded, device=self.device)
            n_known = (seq >= 0).sum(1)
            chunk_feats = None if feats is None else (feats[0][rows], feats[1][rows])
            with torch.autocast(self.device.type, torch.bfloat16, self.device.type == "cuda"):
                hidden = net.encode(seq, emb, chunk_feats)
            picked = hidden[torch.arange(len(seq), device=self.device), (n_known - 1).clamp_min(0)]
            # An empty history carries no information: the score falls back to the item bias.
            picked = torch.where((n_known > 0)[:, None], picked.float(), 0.0)
            out[torch.as_tensor(rows, device=self.device)] = picked
        return out

    @torch.no_grad()
    def score_users(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], user_features: UserFeatures | None = None
    ) -> np.ndarray:
        """[n_users, n_items] scores (logits; sigmoid gives a probability). User features come
        from `user_features` (rows aligned with the users) or else the training data's rows."""
        net = self._require_net()
        users = self.user_embeddings(histories, user_ids, user_features)
        emb, bias = net.item_table()
        return (users @ emb.T + bias).cpu().numpy()

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """[n_items, dim + 1] item vectors with the bias as last column, so that
        <user_vector, item_vector> is exactly the score (ready for inner-product search)."""
        emb, bias = self._require_net().item_table()
        return torch.cat([emb, bias[:, None]], dim=1).float().cpu().numpy()

    @torch.no_grad()
    def content_item_vectors(self, features: ItemFeatures) -> np.ndarray:
        """[n, dim + 1] vectors of items from content alone (e.g. products without events)."""
        net = self._require_net()
        if not net.has_features:
            raise RuntimeError("this model was trained without item features")
        emb, bias = net.content_table(net.content_operator(features.ids, features.weights))
        return torch.cat([emb, bias[:, None]], dim=1).float().cpu().numpy()

    def user_vectors(
        self,
        histories: Sequence[Sequence[int]],
        user_features: UserFeatures | None = None,
    ) -> np.ndarray:
        """[n, dim + 1] user vectors (last column 1, matching the item bias column)."""
        users = self.user_embeddings(histories, user_features=user_features)
        ones = torch.ones(len(users), 1, device=users.device)
        return torch.cat([users, ones], dim=1).cpu().numpy()

    def user_vector(self, history: Sequence[int]) -> np.ndarray:
        """One user's vector from an arbitrary item-index history, for real-time serving."""
        return self.user_vectors([history])[0]


def _lr_factor(cfg: TrainConfig, progress: float, step: int) -> float:
    """Multiplier of the base learning rate at `progress` (0..1) of training."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    progress = min(max(progress, 0.0), 1.0)
    if cfg.lr_schedule == "linear":
        return warm * max(1.0 - progress, 0.02)
    if cfg.lr_schedule == "cosine":
        return warm * max(0.5 * (1.0 + math.cos(math.pi * progress)), 0.02)
    if cfg.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}")
    return warm


def _positions(sorted_ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Index of each id of `x` in `sorted_ids` (-1 stays -1, the padding marker)."""
    pos = torch.searchsorted(sorted_ids, x.clamp_min(0))
    return torch.where(x >= 0, pos, x)


def _check_same_data(group: distributed.Group, seqs: _Sequences, n_items: int) -> None:
    """Every rank must train on the same sequences: different data would give different batch
    counts, and a rank that ran out of batches would leave the others waiting forever."""
    shape = [len(seqs.users), n_items, float(seqs.lengths.sum()), float(seqs.weights.sum())]
    high, low = group.bounds(shape)
    if high != low:
        raise TrainingError(
            "the processes were given different training data (sequences, items, lengths, weights "
            f"range over {low} .. {high}). Give every rank the same data, e.g. let rank 0 read it "
            "and send it with recommendations.learning.launch."
        )


def _check_weights(data: InteractionData) -> None:
    if len(data.weights) and not np.all(np.isfinite(data.weights)):
        raise TrainingError("interaction weights contain NaN or infinity")
    if np.any(data.weights < 0):
        raise TrainingError("interaction weights must be non-negative")


def _make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm gains."""
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        (no_decay if param.ndim < 2 or "bias" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, ValueError):  # fused kernels unavailable for this device/dtype
        return torch.optim.AdamW(groups, lr=cfg.lr)


def _sampling_log_probs(data: InteractionData) -> torch.Tensor:
    """Negative-sampling distribution: item frequency^0.75 mixed with 10% uniform."""
    counts = np.bincount(data.items, minlength=data.n_items).astype(np.float64) ** 0.75
    q = 0.9 * counts / max(counts.sum(), 1e-12) + 0.1 / data.n_items
    return torch.as_tensor(np.log(q), dtype=torch.float32)


def _subsample(validation: EvalSet | None, n: int | None, seed: int) -> EvalSet | None:
    if validation is None or n is None or len(validation) <= n:
        return validation
    return validation.take(np.sort(np.random.default_rng(seed).choice(len(validation), n, replace=False)))
