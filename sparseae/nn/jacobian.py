"""The encoder's Jacobian J_f(x) = ∂f(x)/∂x, per sample: for the contractive penalty
(Rifai et al. 2011), its reported norm, and the manifold tangents (its leading right singular
vectors).

Three ways to get ‖J_f(x)‖²_F, all batched (no Python loop over samples or code units):

* ``closed_form`` — an encoder ``f(x) = s(Wx + b)`` with an elementwise ``s``:
  ‖J‖²_F = Σ_j s'(a_j)² ‖W_j‖². Cost O(batch·n_components + n_components·n_features), about
  one extra elementwise pass: the method for sigmoid/tanh/ReLU :class:`LinearEncoder`\\ s.
* ``exact`` — any differentiable encoder, by reverse-mode autodiff batched over the code units
  (``is_grads_batched``, a vmap over n_components vector-Jacobian products). Cost about
  n_components backward passes and memory n_components·batch·n_features.
* ``stochastic`` — Hutchinson's estimator ‖J‖²_F = E_v ‖J v‖², v ~ N(0, I), averaged over
  ``n_projections`` draws; each J v is a double-backward (two extra passes). Unbiased; cost
  O(n_projections) passes whatever the code size.

Per-sample Jacobians assume the encoder treats samples independently (true of every encoder
here).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

METHODS = ("auto", "closed_form", "exact", "stochastic")


def activation_derivative(activation: str, code: torch.Tensor) -> torch.Tensor:
    """s'(a) from the activation's output h = s(a): (batch, n_components)."""
    if activation == "sigmoid":
        return code * (1 - code)
    if activation == "tanh":
        return 1 - code * code
    if activation == "relu":
        return (code > 0).to(code.dtype)
    if activation == "identity":
        return torch.ones_like(code)
    raise ConfigError(f"no closed-form derivative for activation {activation!r}")


def has_closed_form(encoder: nn.Module) -> bool:
    """True for ``s(Wx + b)`` encoders with an elementwise activation of known derivative."""
    from .encoders import LinearEncoder

    return isinstance(encoder, LinearEncoder) and encoder.activation in ("sigmoid", "tanh", "relu", "identity")


def resolve_method(encoder: nn.Module, method: str) -> str:
    """``auto`` → ``closed_form`` when available, else ``exact``; checks the name."""
    if method not in METHODS:
        raise ConfigError(f"unknown Jacobian method {method!r}; known: {', '.join(METHODS)}")
    if method == "auto":
        return "closed_form" if has_closed_form(encoder) else "exact"
    if method == "closed_form" and not has_closed_form(encoder):
        raise ConfigError(f"the closed-form Jacobian needs a linear encoder with an elementwise "
                          f"activation, not {type(encoder).__name__}; use 'exact' or 'stochastic'")
    return method


def encoder_jacobian(encoder: nn.Module, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """J_f(x) for each sample: (batch, n_components, n_features), by batched autodiff."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        code = encoder(x)
        n_components = code.shape[1]
        basis = torch.eye(n_components, dtype=code.dtype, device=code.device)
        cotangents = basis[:, None, :].expand(n_components, *code.shape)
        (rows,) = torch.autograd.grad(code, x, cotangents, is_grads_batched=True, create_graph=create_graph)
    return rows.transpose(0, 1)  # (n_components, batch, n_features) -> (batch, n_components, n_features)


def jacobian_frobenius_sq(encoder: nn.Module, x: torch.Tensor, method: str = "auto",
                          code: torch.Tensor | None = None, n_projections: int = 1,
                          create_graph: bool = True) -> torch.Tensor:
    """‖J_f(x)‖²_F per sample: (batch,). ``code``: f(x) when already computed (closed form)."""
    method = resolve_method(encoder, method)
    if method == "closed_form":
        code = encoder(x) if code is None else code
        derivative = activation_derivative(encoder.activation, code)
        row_norms = encoder.weight.pow(2).sum(dim=1)  # (n_components,)
        return derivative.pow(2) @ row_norms
    if method == "exact":
        return encoder_jacobian(encoder, x, create_graph=create_graph).pow(2).sum(dim=(1, 2))
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = encoder(x)
        total = x.new_zeros(x.shape[0])
        for _ in range(n_projections):
            # J v by double backward: g(u) = Jᵀu is linear in u, so ∂⟨g(u), v⟩/∂u = J v.
            u = torch.zeros_like(out, requires_grad=True)
            (jt_u,) = torch.autograd.grad(out, x, u, create_graph=True)
            v = torch.randn_like(x)
            (jv,) = torch.autograd.grad(jt_u, u, v, create_graph=create_graph)
            total = total + jv.pow(2).sum(dim=1)
    return total / n_projections


def tangent_directions(encoder: nn.Module, x: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The leading right singular vectors of J_f(x): the input directions the code is most
    sensitive to, i.e. the tangents of the manifold the model learned (Rifai et al. 2011, Fig. 5).

    Returns ``(directions, singular_values)``: (batch, k, n_features) and (batch, k).
    """
    jacobian = encoder_jacobian(encoder, x).detach()
    _, singular_values, vh = torch.linalg.svd(jacobian, full_matrices=False)
    k = min(k, vh.shape[1])
    return vh[:, :k, :], singular_values[:, :k]
