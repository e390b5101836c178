"""Derivative checking: central differences in float64 against autograd (UFLDL's check).

The criterion is ``‖g_num − g‖ / ‖g_num + g‖``; UFLDL expects it below 1e-9 for a correct
implementation. The check runs on a float64 copy in eval mode (no dropout, KL ρ̂ from the batch
itself), so the user's model is left untouched.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .models.base import Autoencoder
from .threads import check_threads, step_work, using_threads
from .validation import as_float_array, check_number

#: Central-difference stencils: (offset in units of ε, coefficient), derivative = Σ c·J(θ+oε) / ε.
STENCILS = {2: ((1, 0.5), (-1, -0.5)),
            4: ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12))}

#: UFLDL's threshold for ‖g_num − g‖ / ‖g_num + g‖.
UFLDL_TOLERANCE = 1e-9


@dataclass
class GradCheckResult:
    """``relative_error``: the UFLDL criterion over every checked coordinate, the one that decides
    (:attr:`passed`); ``per_parameter``: the same ratio within each parameter alone (a diagnostic:
    a parameter with a small gradient can be above the tolerance while the check passes);
    ``per_parameter_share``: each parameter's part of ``relative_error``, ‖g_num − g‖ over its
    coordinates / ‖g_num + g‖ over all of them (their squares add up to ``relative_error``²,
    so none is above it); ``n_checked``: coordinates
    compared; ``n_kinks``: coordinates left out because the loss has a kink there;
    ``unused``: parameters the loss does not depend on (autograd gives them no gradient, e.g. a
    classifier head during unsupervised pre-training), not checked; ``pseudo_gradient``: parameters
    whose gradient is by design a straight-through estimate (a module lists them in
    ``pseudo_gradient_parameters``, e.g. JumpReLU's thresholds), not checked either."""

    relative_error: float
    n_checked: int
    per_parameter: dict[str, float] = field(default_factory=dict)
    tolerance: float = UFLDL_TOLERANCE
    n_kinks: int = 0
    unused: list[str] = field(default_factory=list)
    pseudo_gradient: list[str] = field(default_factory=list)
    per_parameter_share: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """``relative_error`` below ``tolerance``, and at most 5% of the coordinates at kinks."""
        return (self.relative_error < self.tolerance
                and self.n_kinks <= 0.05 * (self.n_checked + self.n_kinks))


def relative_difference(numeric: torch.Tensor, analytic: torch.Tensor) -> float:
    """‖g_num − g‖ / ‖g_num + g‖ (0 when both are zero)."""
    denominator = float((numeric + analytic).norm())
    difference = float((numeric - analytic).norm())
    return 0.0 if denominator == 0.0 else difference / denominator


def check_gradients(model: torch.nn.Module, X: Any, *, epsilon: float = 1e-4, order: int = 4,
                    max_checks_per_parameter: int | None = None, random_state: int = 0,
                    loss_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
                    tolerance: float = UFLDL_TOLERANCE, detect_kinks: bool = True,
                    kink_tolerance: float = 1e-6, threads: int | str | None = "auto") -> GradCheckResult:
    """Compare autograd's gradient of the loss with central differences, in float64.

    X: (n_samples, n_features) — a small batch (the loss is evaluated ``order`` times per
    checked coordinate). ``order=2`` is UFLDL's (J(θ+ε) − J(θ−ε)) / 2ε, error O(ε²);
    ``order=4`` (default) is the five-point central stencil
    (−J(θ+2ε) + 8J(θ+ε) − 8J(θ−ε) + J(θ−2ε)) / 12ε, error O(ε⁴), which keeps the criterion
    below 1e-9 also for losses with large third derivatives (softmax, tied weights).
    ``max_checks_per_parameter``: check a random subset of each parameter's coordinates
    (default: all of them). ``loss_fn(model, x) -> scalar`` defaults to ``model.loss(x).loss``.

    Kinks: where a perturbation crosses a non-differentiable point (a ReLU or |z| switching),
    finite differences measure no derivative at all. With ``detect_kinks`` each coordinate is
    also estimated with step ε/4; where the two estimates disagree by more than
    ``kink_tolerance`` (relative to the gradient's scale) the coordinate is left out of the
    criterion and counted in ``n_kinks`` — a smooth but wrong gradient gives two agreeing
    estimates, so it is still caught. The check fails if more than 5% of coordinates are kinks.
    ``threads``: PyTorch's CPU threads for the loss evaluations (:func:`sparseae.threads.set_threads`;
    ``"auto"``: 1 for the usual small batch, where more threads only add synchronisation).
    """
    check_number(epsilon, "epsilon", low=0.0, low_inclusive=False)
    if order not in STENCILS:
        raise ConfigError(f"order must be 2 or 4, got {order!r}")
    check_threads(threads)
    probe = copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()
    ours = isinstance(probe, Autoencoder)  # else a plain module (with its loss_fn): all checked
    x = torch.from_numpy(as_float_array(X, "X", n_features=model.n_features if ours else None,
                                        dtype=np.float64))
    loss_of = loss_fn or (lambda m, batch: m.loss(batch).loss)
    named, analytic, unused, pseudo = _analytic_gradients(probe, x, loss_of, ours)

    def loss() -> float:
        return float(loss_of(probe, x))

    rng = np.random.default_rng(random_state)
    numeric_all, analytic_all, per_parameter = [], [], {}
    n_kinks = 0
    with torch.no_grad(), using_threads(threads, step_work(probe, x.shape[0])):
        for name, parameter in named:
            flat = parameter.view(-1)
            chosen = _chosen_coordinates(flat.numel(), max_checks_per_parameter, rng)
            numeric, exact, kinks = _compare_coordinates(flat, analytic[name].view(-1), chosen, loss,
                                                         STENCILS[order], epsilon,
                                                         kink_tolerance if detect_kinks else None)
            n_kinks += kinks
            per_parameter[name] = relative_difference(numeric, exact)
            numeric_all.append(numeric)
            analytic_all.append(exact)
    if not numeric_all:
        raise ConfigError("the loss depends on none of the model's parameters: nothing to check")
    total = relative_difference(torch.cat(numeric_all), torch.cat(analytic_all))
    scale = float((torch.cat(numeric_all) + torch.cat(analytic_all)).norm())
    share = {name: 0.0 if scale == 0.0 else float((numeric - exact).norm()) / scale
             for name, numeric, exact in zip(per_parameter, numeric_all, analytic_all, strict=True)}
    return GradCheckResult(total, int(sum(len(v) for v in numeric_all)), per_parameter, tolerance,
                           n_kinks=n_kinks, unused=unused, pseudo_gradient=pseudo, per_parameter_share=share)


def _analytic_gradients(probe: torch.nn.Module, x: torch.Tensor, loss_of, ours: bool):
    """One backward pass: (the checked (name, parameter) pairs, their autograd gradients by name,
    the names of trainable parameters the loss does not use, the pseudo-gradient names left out)."""
    named = [(name, p) for name, p in probe.named_parameters() if p.requires_grad]
    probe.zero_grad(set_to_none=True)
    loss_of(probe, x).backward()
    unused = [name for name, p in named if p.grad is None]
    pseudo = probe.pseudo_gradient_names() if ours else []
    named = [(name, p) for name, p in named if p.grad is not None and name not in pseudo]
    analytic = {name: p.grad.detach().clone() for name, p in named}
    return named, analytic, unused, pseudo


def _chosen_coordinates(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """The sorted coordinates of a parameter with ``n`` entries to check: all, or ``limit`` at random."""
    if limit is not None and n > limit:
        return np.sort(rng.choice(n, size=limit, replace=False))
    return np.arange(n)


def _stencil_derivative(flat: torch.Tensor, index: int, step: float, stencil, loss: Callable[[], float]) -> float:
    """∂loss/∂flat[index] by the central-difference ``stencil`` with ``step``; ``flat`` restored."""
    original = float(flat[index])
    total = 0.0
    for offset, coefficient in stencil:
        flat[index] = original + offset * step
        total += coefficient * loss()
    flat[index] = original
    return total / step


def _compare_coordinates(flat: torch.Tensor, gradient: torch.Tensor, chosen: np.ndarray,
                         loss: Callable[[], float], stencil, epsilon: float, kink_tolerance: float | None):
    """(numeric, analytic, number of kinks) at ``chosen`` coordinates of one parameter ``flat``
    (its autograd ``gradient``, same shape). With ``kink_tolerance`` the coordinates whose estimates
    at ε and ε/4 disagree are kinks, left out of both returned vectors."""
    numeric = torch.tensor([_stencil_derivative(flat, int(i), epsilon, stencil, loss) for i in chosen],
                           dtype=torch.float64)
    exact = gradient[torch.from_numpy(chosen)]
    if kink_tolerance is None or not len(chosen):
        return numeric, exact, 0
    finer = torch.tensor([_stencil_derivative(flat, int(i), epsilon / 4, stencil, loss) for i in chosen],
                         dtype=torch.float64)
    scale = max(float(numeric.abs().max()), float(exact.abs().max()), 1e-12)
    smooth = (numeric - finer).abs() <= kink_tolerance * scale
    return numeric[smooth], exact[smooth], int((~smooth).sum())
