"""The synthetic ground-truth benchmark (issue 24): every SAE family, and sparse coding with exact and
amortised inference, trained on the same activations of a known dictionary
(:func:`sparseae.data.synthetic.make_superposition`) at one matched L0, and scored on held-out samples
by :func:`sparseae.evaluate.recovery.recovery_scores`.

How L0 is matched (target: the true codes' mean L0 on the training rows, or ``l0``):

* TopK, BatchTopK, Matryoshka BatchTopK and the topographic SAE (TopK with grid-window group sparsity):
  ``k`` = the target, rounded.
* L1, JumpReLU and Gated SAEs: their sparsity weight is steered during training by
  :class:`L0Controller`, a multiplicative controller on the training batches' L0 (one trainer callback,
  one run; no re-training).
* Sparse coding: the dictionary is learned by :func:`~sparseae.train.procedures.learn_dictionary` at
  the Lasso weight α that gives the target L0 on atoms drawn from the data; α is then re-tuned on the
  learned dictionary (bisection in log α on :func:`~sparseae.coding.sparse_encode`'s exact non-negative
  LARS codes of training rows), and the held-out codes are the exact codes at that α.
* LISTA: trained (T = ``lista_steps``) on that dictionary and α to predict the exact codes, so the
  difference between the two rows is the amortisation gap on one dictionary.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.synthetic import make_superposition
from ..errors import ConfigError
from ..evaluate.recovery import recovery_scores
from ..train import Callback, TrainConfig, train
from ..validation import check_number

__all__ = ["FAMILIES", "L0Controller", "SyntheticBenchConfig", "run_synthetic_benchmark"]

#: The families of the table, in its order.
FAMILIES = ("l1", "topk", "batchtopk", "matryoshka", "jumprelu", "gated", "topographic", "sparse_coding",
            "lista")


@dataclass
class SyntheticBenchConfig:
    """The data (``make_superposition`` options), the matched ``l0`` (None: the truth's), the width of
    every model (None: ``n_latents``) and the training budget shared by the SAEs (Adam at a constant
    ``learning_rate``: a cosine decay to a tenth lowered TopK's mean max cosine from 0.87 to 0.81);
    ``controller_gain``: :class:`L0Controller`'s bound on the per-step change of a steered weight."""

    n_train: int = 40_000
    n_eval: int = 8_000
    n_features: int = 64
    n_latents: int = 512
    mean_active: float = 8.0
    zipf_exponent: float = 0.5
    correlation: float = 0.3
    hierarchy_fraction: float = 0.2
    child_similarity: float = 0.0
    noise_std: float = 0.0
    l0: float | None = None
    width: int | None = None
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    dictionary_epochs: int = 5
    lista_steps: int = 3
    lista_epochs: int = 20
    lista_train: int = 10_000
    group_weight: float = 2e-3
    controller_gain: float = 0.01
    families: Sequence[str] = field(default_factory=lambda: list(FAMILIES))
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> SyntheticBenchConfig:
        """A seconds-long variant (16 dimensions, 64 features, 4,000 samples, 3 epochs of batches of 64,
        a faster L0 controller) for tests."""
        values = dict(n_train=4000, n_eval=1000, n_features=16, n_latents=64, mean_active=3.0, epochs=3,
                      batch_size=64, controller_gain=0.03, dictionary_epochs=2, lista_epochs=3, lista_train=2000)
        return cls(**{**values, **overrides})

    def validate(self) -> SyntheticBenchConfig:
        for name in ("n_train", "n_eval", "epochs", "batch_size", "dictionary_epochs", "lista_steps",
                     "lista_epochs", "lista_train"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        check_number(self.group_weight, "group_weight", low=0.0, low_inclusive=False)
        check_number(self.controller_gain, "controller_gain", low=0.0, low_inclusive=False)
        check_number(self.child_similarity, "child_similarity", low=0.0, high=1.0, high_inclusive=False)
        if self.width is not None:
            check_number(self.width, "width", low=2, integer=True)
        if self.l0 is not None:
            check_number(self.l0, "l0", low=0.5, high=self.width or self.n_latents)
        if isinstance(self.families, str) or not self.families:
            raise ConfigError(f"families must be a non-empty list of {', '.join(FAMILIES)}")
        unknown = [name for name in self.families if name not in FAMILIES]
        if unknown:
            raise ConfigError(f"unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
        if "lista" in self.families and "sparse_coding" not in self.families:
            raise ConfigError("family lista needs sparse_coding too (LISTA learns its exact codes)")
        return self


class L0Controller(Callback):
    """Steers the weights of ``model.penalties[names]`` so that the training batches' mean L0 (codes >
    0) approaches ``target``: after each step, ``w ← w·exp(gain·clip(log(L̄/target), −1, 1))`` with L̄
    an exponential average (factor ``smoothing``) of the batches' L0, read by a forward hook on the
    encoder. The clip bounds the change to a factor e^±gain per step: the encoder follows the weight
    with a lag, and a weight that overshoots kills ReLU latents for good."""

    def __init__(self, model: torch.nn.Module, target: float, names: Sequence[str], *, gain: float = 0.01,
                 smoothing: float = 0.9) -> None:
        self.model, self.target, self.names = model, float(target), list(names)
        self.gain, self.smoothing = float(gain), float(smoothing)
        self.average: float | None = None
        #: (step, averaged L0, summed weight) every 100 steps.
        self.history: list[tuple[int, float, float]] = []
        self._latest: torch.Tensor | None = None
        self._hook = model.encoder.register_forward_hook(self._record)

    def _record(self, module, inputs, code) -> None:
        if module.training and torch.is_grad_enabled():
            self._latest = (code.detach() > 0).sum(dim=1).float().mean()

    def on_step(self, step: int, model: torch.nn.Module) -> None:
        if self._latest is None:
            return
        l0 = float(self._latest)
        self.average = l0 if self.average is None else self.smoothing * self.average + (1 - self.smoothing) * l0
        factor = math.exp(self.gain * min(1.0, max(-1.0, math.log(max(self.average, 1e-3) / self.target))))
        for name in self.names:
            model.penalties[name].weight *= factor
        if step % 100 == 0:
            self.history.append((step, self.average, sum(self.weights().values())))

    def weights(self) -> dict[str, float]:
        return {name: float(self.model.penalties[name].weight) for name in self.names}

    def remove(self) -> None:
        self._hook.remove()


# ------------------------------------------------------------------------------------------ families

def _grid(n: int) -> tuple[int, int]:
    height = max(h for h in range(1, int(n ** 0.5) + 1) if n % h == 0)
    return height, n // height


def _sae_spec(family: str, k: int, width: int, config: SyntheticBenchConfig) -> tuple[str, dict, str | None]:
    """(registry name, options, penalty steered to the L0 or None) of an SAE family."""
    if family == "l1":
        return "sparse_ae_l1", {"sparsity_weight": 0.05}, "l1"
    if family == "topk":
        return "topk_sae", {"k": k}, None
    if family == "batchtopk":
        return "topk_sae", {"k": k, "batch_topk": True}, None
    if family == "matryoshka":
        return "matryoshka_sae", {"k": k}, None
    if family == "jumprelu":
        return "jumprelu_sae", {"l0_weight": 1e-2, "initial_threshold": 0.1, "bandwidth": 0.05}, "l0"
    if family == "gated":
        return "gated_sae", {"l1_weight": 0.05}, "gate_l1"
    height, width_ = _grid(width)
    groups = {"kind": "grid", "height": height, "width": width_, "window": 3}
    return "topk_sae", {"k": k, "groups": groups, "group_weight": config.group_weight}, None


def _train_sae(family: str, target: float, X: np.ndarray, config: SyntheticBenchConfig, width: int):
    from ..models import create_model

    name, options, steered = _sae_spec(family, max(1, int(round(target))), width, config)
    torch.manual_seed(config.seed)
    model = create_model(name, X.shape[1], width, **options)
    callbacks = []
    if steered is not None:
        callbacks.append(L0Controller(model, target, [steered], gain=config.controller_gain))
    train_config = TrainConfig(optimizer="adam", learning_rate=config.learning_rate, batch_size=config.batch_size,
                               max_epochs=config.epochs, random_state=config.seed, threads=None)
    train(model, X, train_config, callbacks=callbacks)
    notes = {key: value for key, value in options.items() if key != "groups"}
    if callbacks:
        callbacks[0].remove()
        notes.update(callbacks[0].weights())
    model.eval()
    return model, name, notes


def _sae_outputs(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (n, m), reconstructions (n, d), decoder directions (m, d)) of a trained SAE."""
    with torch.no_grad():
        x = torch.from_numpy(X)
        Z = model.encode(x)
        X_hat = model.decode(Z)
    return Z.numpy(), X_hat.numpy(), model.decoder.weight.detach().t().numpy()


def _exact_codes(X: np.ndarray, D: np.ndarray, alpha: float) -> np.ndarray:
    """Exact non-negative Lasso codes (n, m) of X (n, d) on the atoms D (m, d) by LARS."""
    from ..coding import sparse_encode

    threads = torch.get_num_threads()  # the compiled solvers' OpenMP layer may change torch's setting
    try:
        return sparse_encode(X, D, algorithm="lasso_lars", alpha=alpha, positive=True, n_jobs=threads)
    finally:
        torch.set_num_threads(threads)


def tune_alpha(X: np.ndarray, D: np.ndarray, target: float, *, steps: int = 14) -> float:
    """The Lasso weight α whose exact non-negative codes of X (n, d) on the atoms D (m, d) have mean L0
    closest to ``target``: bisection on log α (L0 falls as α grows) from the bracket [1e-4, max Dx]."""
    low, high = math.log(1e-4), math.log(max(float((X @ D.T).max()), 2e-4))
    best = (math.inf, math.exp(high))
    for _ in range(steps):
        middle = 0.5 * (low + high)
        l0 = float(np.count_nonzero(_exact_codes(X, D, math.exp(middle))) / X.shape[0])
        best = min(best, (abs(l0 - target), math.exp(middle)))
        if l0 > target:
            low = middle
        else:
            high = middle
    return best[1]


def _sparse_coding(target: float, X: np.ndarray, config: SyntheticBenchConfig, width: int):
    """(D (m, d) learned, α at the target L0, notes): α tuned on atoms drawn from the data, the
    dictionary learned at it, α tuned again on the learned atoms."""
    from ..coding import dictionary_from_samples
    from ..train.procedures import learn_dictionary

    probe = X[:min(2000, X.shape[0])]
    start = dictionary_from_samples(X, width, generator=torch.Generator().manual_seed(config.seed))
    alpha0 = tune_alpha(probe, start.t().numpy().astype(np.float32), target)
    coder = learn_dictionary(X, width, alpha0, nonnegative=True, max_epochs=config.dictionary_epochs,
                             batch_size=config.batch_size, learning_rate=config.learning_rate,
                             inference_max_iter=50, random_state=config.seed, device="cpu")
    D = coder.dictionary.detach().t().contiguous().numpy()
    alpha = tune_alpha(probe, D, target)
    return D, alpha, {"alpha_learning": alpha0, "alpha": alpha}


def _lista(D: np.ndarray, alpha: float, X: np.ndarray, config: SyntheticBenchConfig):
    """LISTA (T = ``lista_steps``, non-negative) on D (m, d) and α, trained on the exact codes of up
    to ``lista_train`` rows of X by SGD at 0.1/T with momentum and clipping (issue 25's recipe)."""
    from ..models import lista_from_dictionary

    rows = X[:config.lista_train]
    targets = _exact_codes(rows, D, alpha)
    torch.manual_seed(config.seed)
    model = lista_from_dictionary(torch.from_numpy(D.T.copy()), alpha, config.lista_steps, nonnegative=True)
    train_config = TrainConfig(optimizer="sgd", learning_rate=0.1 / config.lista_steps, momentum=0.9,
                               grad_clip=1.0, batch_size=100, max_epochs=config.lista_epochs,
                               random_state=config.seed, threads=None)
    train(model, rows, train_config, y=targets)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------- run

def run_synthetic_benchmark(config: SyntheticBenchConfig | None = None, *,
                            progress: Callable[[str], None] | None = None,
                            on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Generate the data, train and score each family of ``config.families`` (:data:`FAMILIES`).

    Returns ``{"config": ..., "data": {...}, "rows": [...]}``: one row per family with ``family``,
    ``model``, ``settings`` (the options, tuned weights and α), ``seconds`` (training and tuning) and
    the scores of :func:`~sparseae.evaluate.recovery.recovery_scores` on the held-out rows (with
    ``absorption``: the true hierarchy is passed).
    ``progress(family)`` is called before each family, ``on_row(row)`` after it.
    """
    config = (config or SyntheticBenchConfig()).validate()
    width = config.width or config.n_latents
    data = make_superposition(config.n_train + config.n_eval, config.n_features, config.n_latents,
                              mean_active=config.mean_active, zipf_exponent=config.zipf_exponent,
                              correlation=config.correlation, hierarchy_fraction=config.hierarchy_fraction,
                              child_similarity=config.child_similarity, noise_std=config.noise_std,
                              random_state=config.seed)
    X, X_eval = data.X[:config.n_train], data.X[config.n_train:]
    codes_eval = data.codes[config.n_train:]
    true_l0 = float(np.count_nonzero(data.codes[:config.n_train]) / config.n_train)
    target = float(config.l0) if config.l0 is not None else true_l0
    rows: list[dict[str, Any]] = []
    coding: tuple | None = None

    def score(family: str, model: str, settings: dict, seconds: float, Z, X_hat, directions) -> None:
        scores = recovery_scores(X_eval, X_hat, Z, directions, data.dictionary, codes_eval,
                                 parents=data.parents)
        rows.append({"family": family, "model": model, **scores, "seconds": seconds, "settings": settings})
        if on_row is not None:
            on_row(rows[-1])

    for family in [name for name in FAMILIES if name in config.families]:
        if progress is not None:
            progress(family)
        started = time.perf_counter()
        if family == "sparse_coding":
            D, alpha, notes = _sparse_coding(target, X, config, width)
            coding = (D, alpha)
            Z = _exact_codes(X_eval, D, alpha)
            score(family, "sparse_coding + exact LARS", notes, time.perf_counter() - started, Z, Z @ D, D)
        elif family == "lista":
            D, alpha = coding
            model = _lista(D, alpha, X, config)
            with torch.no_grad():
                Z = model.encode(torch.from_numpy(X_eval)).numpy()
            score(family, f"lista T={config.lista_steps}", {"alpha": alpha}, time.perf_counter() - started,
                  Z, Z @ D, D)
        else:
            model, name, notes = _train_sae(family, target, X, config, width)
            Z, X_hat, directions = _sae_outputs(model, X_eval)
            score(family, name, notes, time.perf_counter() - started, Z, X_hat, directions)
    return {"config": asdict(config) | {"width": width},
            "data": {"true_l0": true_l0, "target_l0": target, "n_train": config.n_train, "n_eval": config.n_eval,
                     "n_features": config.n_features, "n_latents": config.n_latents},
            "rows": rows}
