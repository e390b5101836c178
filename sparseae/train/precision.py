"""bf16 working copies of the weight matrices (``TrainConfig(amp=True, bf16_weights=True)``).

Under bf16 autocast every matrix product casts its float32 weight to bf16 in the forward pass,
and the backward casts the weight's bf16 gradient back to float32: four cast kernels per weight
matrix and step, each a full pass over the matrix. For an SAE of 768 × 16,384 latents they cost
about as much as the optimizer's update of the same matrices.

:class:`Bf16Weights` keeps a bf16 copy of each weight matrix (every floating-point parameter with
two or more dimensions) beside the float32 one, which stays the master copy the optimizer and the
constraints work on. The forward and backward run on the copies (the model's parameters are
swapped for them with :func:`torch.func.functional_call`), so the matrix products need no casts;
the update reads the copies' gradients, steps the float32 weights, applies the constraints and
writes the bf16 copies again (with ``compile`` and ``cuda_graph`` on CUDA, inside the compiled
update, where inductor can fuse the casts into the optimizer's own passes).

Numerics: a matrix product sees the same bf16-rounded weights as under plain autocast. Where the
loss uses a weight outside a matrix product (the L1 SAE's decoder column norms, a weight decay),
it sees the rounded copy too, and that term's gradient is added to the product's in bf16 rather
than float32. Vectors (biases, thresholds) are not copied and stay float32.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

LossFn = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class _Call(nn.Module):
    """``fn(x, y)`` with ``model`` as a submodule, so that functional_call can swap its parameters."""

    def __init__(self, model: nn.Module, fn: LossFn) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, x: torch.Tensor, y: torch.Tensor | None):
        return self.fn(x, y)


class Bf16Weights:
    """bf16 copies (leaf tensors with gradients) of ``model``'s weight matrices.

    ``names``: the copied parameters (float, ≥ 2-D, trainable). Call :meth:`wrap` on the training
    forward, :meth:`grads_to_masters` after the backward (before the optimizer) and
    :meth:`refresh` after the optimizer and the constraints."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        named = dict(model.named_parameters())
        self.names = [name for name, p in named.items()
                      if p.requires_grad and p.is_floating_point() and p.dim() >= 2]
        self.masters = [named[name] for name in self.names]
        self.copies = [p.detach().to(torch.bfloat16).requires_grad_(True) for p in self.masters]

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the float32 weights into the bf16 copies (in place: a CUDA graph keeps them)."""
        for copy, master in zip(self.copies, self.masters, strict=True):
            copy.copy_(master)

    def grads_to_masters(self) -> None:
        """The copies' gradients, in float32, become the masters' (and the copies' are cleared)."""
        for copy, master in zip(self.copies, self.masters, strict=True):  # the masters took no part in the backward
            if copy.grad is not None:
                master.grad = copy.grad.to(master.dtype)
                copy.grad = None

    def wrap(self, fn: LossFn) -> LossFn:
        """``fn`` (which uses ``model``) run with the weight matrices replaced by the bf16 copies."""
        call = _Call(self.model, fn)
        swap = {f"model.{name}": copy for name, copy in zip(self.names, self.copies, strict=True)}

        def with_copies(x: torch.Tensor, y: torch.Tensor | None):
            return functional_call(call, swap, (x, y), strict=False, tie_weights=True)

        return with_copies
