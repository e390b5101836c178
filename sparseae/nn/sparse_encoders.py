"""Encoders of the sparse autoencoders that interpretability work trains on model activations.

* :class:`TopKEncoder` — ``z = TopK(ReLU(W(x − b_pre) + b))``: only the k largest
  pre-activations of each sample stay (Makhzani & Frey 2013; Gao et al. 2024), or, with
  ``batch_topk``, the k·batch largest of the whole batch (BatchTopK, Bussmann et al. 2024), which
  in eval mode becomes a fixed threshold θ (the running mean of the smallest kept activation).
* :class:`JumpReLUEncoder` — ``z = a · H(a − θ)``, ``a = W(x − b_pre) + b``, with a learned
  threshold θ_j > 0 per latent (Rajamanoharan et al. 2024). H has no useful derivative, so θ
  gets the paper's straight-through pseudo-derivative (a rectangle kernel of bandwidth ε).

``b_pre`` is the decoder's bias (Gao et al.): :meth:`bind_decoder` makes the encoder subtract it.
In training, each encoder keeps the last batch's pre-activations (``last_preactivation``) for the
penalties that need them (AuxK, L0), so the encoder's matrix product runs once per step.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..validation import check_number
from .decoders import LinearDecoder
from .encoders import uniform_init_bound


class _SAEEncoder(nn.Module):
    """Shared parts: W (n_components, n_features), b (n_components,), the bound decoder bias."""

    code_range = None

    def __init__(self, n_features: int, n_components: int) -> None:
        super().__init__()
        self.n_features, self.n_components = n_features, n_components
        self.weight = nn.Parameter(torch.empty(n_components, n_features))
        self.bias = nn.Parameter(torch.zeros(n_components))
        bound = uniform_init_bound(n_features, n_components)
        nn.init.uniform_(self.weight, -bound, bound)
        self._decoder: list[nn.Module] = []  # a list keeps the decoder out of this module's children
        self.last_preactivation: torch.Tensor | None = None

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the last batch's tensors (part of an autograd graph)."""
        state = dict(self.__dict__)
        state["last_preactivation"] = None
        if "last_sparse" in state:
            state["last_sparse"] = None
        return state

    def bind_decoder(self, decoder: nn.Module) -> None:
        """Subtract ``decoder.bias`` from the input before encoding (x − b_pre)."""
        self._decoder = [decoder]

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """``W(x − b_pre) + b``: (batch, n_components).

        The product sees ``x − b_pre`` with ``b_pre`` detached, and b_pre's gradient,
        ``−(Σ_batch ∂a)·W``, flows through ``s − s.detach()`` (exactly 0), ``s = W b_pre`` with
        W detached. Same values and gradients as differentiating through ``x − b_pre``, without
        the (batch × n_components × n_features) product autograd would spend on the input's
        gradient just to sum it over the batch."""
        pre_bias = self._decoder[0].bias if self._decoder else None
        if pre_bias is None:
            a = nn.functional.linear(x, self.weight, self.bias)
        else:
            a = nn.functional.linear(x - pre_bias.detach().to(x.dtype), self.weight, self.bias)
            if pre_bias.requires_grad and torch.is_grad_enabled():
                shift = nn.functional.linear(pre_bias.to(x.dtype), self.weight.detach())
                a = a - (shift - shift.detach())
        self.last_preactivation = a if self.training and torch.is_grad_enabled() else None
        return a


def topk_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k largest entries of each row of ``values`` (batch, n)."""
    indices = values.topk(min(k, values.shape[1]), dim=1).indices
    return torch.zeros_like(values, dtype=torch.bool).scatter_(1, indices, True)


class TopKEncoder(_SAEEncoder):
    """``z = TopK_k(ReLU(W(x − b_pre) + b))``; see the module docstring. ``threshold_momentum``:
    the weight of past batches in BatchTopK's running threshold. ``keep_sparse`` (per-sample
    TopK): the last codes are also kept as (values, indices), each (batch, k), in ``last_sparse``
    for a :class:`SparseLinearDecoder`."""

    def __init__(self, n_features: int, n_components: int, k: int, batch_topk: bool = False,
                 threshold_momentum: float = 0.99, keep_sparse: bool = False) -> None:
        super().__init__(n_features, n_components)
        check_number(k, "k", low=1, high=n_components, integer=True)
        check_number(threshold_momentum, "threshold_momentum", low=0.0, high=1.0, high_inclusive=False)
        if keep_sparse and batch_topk:
            raise ConfigError("the sparse decoder needs per-sample TopK (k codes per sample), not BatchTopK")
        self.k, self.batch_topk, self.threshold_momentum = int(k), bool(batch_topk), float(threshold_momentum)
        self.keep_sparse = bool(keep_sparse)
        self.last_sparse: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.register_buffer("threshold", torch.tensor(-1.0))  # BatchTopK's θ; < 0 until estimated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.preactivation(x))
        if self.keep_sparse:
            values, indices = a.topk(min(self.k, a.shape[1]), dim=1)
            z = torch.zeros_like(a).scatter(1, indices, values)
            self.last_sparse = (z, values, indices)
            return z
        if not self.batch_topk:
            return a * topk_mask(a, self.k)
        if not self.training:
            # θ < 0: never trained, fall back to per-sample top-k (a tensor test, no host sync)
            return torch.where(self.threshold < 0, a * topk_mask(a, self.k), a * (a > self.threshold.to(a.dtype)))
        flat = a.reshape(-1)
        kept = flat.topk(min(self.k * a.shape[0], flat.numel())).indices
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(0, kept, True).reshape(a.shape)
        with torch.no_grad():  # running θ: the smallest positive kept value, all in tensor ops
            values = flat[kept]
            smallest = torch.where(values > 0, values, torch.full_like(values, math.inf)).min().to(self.threshold.dtype)
            blended = self.threshold_momentum * self.threshold + (1 - self.threshold_momentum) * smallest
            updated = torch.where(self.threshold < 0, smallest, blended)
            self.threshold.copy_(torch.where(torch.isfinite(smallest), updated, self.threshold))
        return a * mask

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_components}, k={self.k}, batch_topk={self.batch_topk}"


class SparseLinearDecoder(LinearDecoder):
    """A :class:`~sparseae.nn.decoders.LinearDecoder` that decodes TopK codes from their k active
    latents only: ``x̂_b = Σ_i values_{b,i} · W[:, indices_{b,i}] + c`` (an ``embedding_bag``,
    O(batch·k·n_features) instead of O(batch·n_components·n_features)), when ``z`` is the tensor
    its bound :class:`TopKEncoder` just returned; any other ``z`` is decoded densely."""

    def bind_encoder(self, encoder: TopKEncoder) -> None:
        self._sparse_source = [encoder]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        source = getattr(self, "_sparse_source", None)
        sparse = source[0].last_sparse if source else None
        if sparse is None or sparse[0] is not z:
            return super().forward(z)
        _, values, indices = sparse
        out = nn.functional.embedding_bag(indices, self.weight.t(), per_sample_weights=values.to(self.weight.dtype),
                                          mode="sum")
        return out if self.bias is None else out + self.bias


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """z = a·H(a − θ); ∂z/∂a = H(a − θ); ∂z/∂θ ≈ −(θ/ε)·K((a − θ)/ε) (straight-through)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(a, theta)
        ctx.bandwidth = bandwidth
        return a * (a > theta)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_a = grad * (a > theta)
        grad_theta = (grad * -(theta / eps) * _rectangle((a - theta) / eps)).sum(dim=0)
        return grad_a, grad_theta, None


class _Step(torch.autograd.Function):
    """H(a − θ); ∂/∂a = 0; ∂/∂θ ≈ −(1/ε)·K((a − θ)/ε) (straight-through, for the L0 penalty)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(a, theta)
        ctx.bandwidth = bandwidth
        return (a > theta).to(a.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        return torch.zeros_like(a), (grad * -(1.0 / eps) * _rectangle((a - theta) / eps)).sum(dim=0), None


class JumpReLUEncoder(_SAEEncoder):
    """``z = a · H(a − θ)`` with θ = exp(log_threshold) > 0 per latent; ``bandwidth`` ε of the
    pseudo-derivative. :meth:`gate` is H(a − θ) with its pseudo-derivative (for the L0 penalty)."""

    #: Parameters whose gradient is a straight-through estimate, not the derivative of the loss:
    #: a finite-difference gradient check cannot verify them (see :mod:`sparseae.gradcheck`).
    pseudo_gradient_parameters = ("log_threshold",)

    def __init__(self, n_features: int, n_components: int, initial_threshold: float = 1e-3,
                 bandwidth: float = 1e-3) -> None:
        super().__init__(n_features, n_components)
        check_number(initial_threshold, "initial_threshold", low=0.0, low_inclusive=False)
        check_number(bandwidth, "bandwidth", low=0.0, low_inclusive=False)
        self.bandwidth = float(bandwidth)
        self.log_threshold = nn.Parameter(torch.full((n_components,), math.log(initial_threshold)))

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.preactivation(x)
        return _JumpReLU.apply(a, self.threshold.to(a.dtype), self.bandwidth)

    def gate(self, a: torch.Tensor) -> torch.Tensor:
        """H(a − θ): (batch, n_components), differentiable in θ by the pseudo-derivative."""
        return _Step.apply(a, self.threshold.to(a.dtype), self.bandwidth)

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_components}, bandwidth={self.bandwidth:g}"
