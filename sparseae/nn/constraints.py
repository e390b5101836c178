"""Projections applied to parameters after each optimizer step (and once at construction)."""
from __future__ import annotations

import torch
from torch import nn

from ..validation import check_choice, check_number


def slice_norms(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """L2 norms of the slices of ``weight`` along ``dim`` (kept as a size-1 dimension). On the CPU
    as sqrt(Σ w²), faster there than ``torch.norm``'s strided reduction (BENCHMARKS.md,
    benchmarks/bench_cpu_step_parts.py); elsewhere ``torch.norm``, one kernel without a squared copy."""
    if weight.device.type == "cpu":
        return weight.square().sum(dim=dim, keepdim=True).sqrt()
    return weight.norm(dim=dim, keepdim=True)


class NormConstraint:
    """Keep the norms of the slices of a parameter along ``dim`` equal to / at most ``value``.

    ``parameter``: dotted path inside the model (``"decoder.weight_"``); ``dim``: the dimension
    the norm runs over (0 = columns of a (n_features, n_components) matrix, 1 = rows);
    ``mode``: ``"equal"`` (project onto the sphere, e.g. unit-norm dictionary atoms) or ``"max"``
    (project into the ball, e.g. DrSAE's bounded rows).
    """

    def __init__(self, parameter: str, dim: int = 0, value: float = 1.0, mode: str = "equal",
                 tangent_gradient: bool = False) -> None:
        check_number(value, "norm constraint value", low=0.0, low_inclusive=False)
        check_choice(mode, "norm constraint mode", ("equal", "max"))
        self.parameter, self.dim, self.value, self.mode = parameter, dim, float(value), mode
        self.tangent_gradient = bool(tangent_gradient)

    @torch.no_grad()
    def project_gradient(self, model: nn.Module) -> None:
        """With ``tangent_gradient`` (mode ``equal``), remove from each slice's gradient its component
        along the slice, so that the step moves along the sphere and the projection after it only
        corrects second order (Bricken et al. 2023; Gao et al. 2024). Called before the step."""
        if not self.tangent_gradient:
            return
        weight = model.get_parameter(self.parameter)
        if weight.grad is None:
            return
        along = (weight.grad * weight).sum(dim=self.dim, keepdim=True) / \
            weight.pow(2).sum(dim=self.dim, keepdim=True).clamp_min(1e-12)
        weight.grad.sub_(along * weight)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        weight = model.get_parameter(self.parameter)
        norms = slice_norms(weight, self.dim).clamp_min(1e-12)
        scale = self.value / norms
        if self.mode == "max":
            scale = scale.clamp(max=1.0)
        weight.mul_(scale)

    def __repr__(self) -> str:
        return f"NormConstraint({self.parameter!r}, dim={self.dim}, value={self.value:g}, mode={self.mode!r})"


def unit_norm_columns(parameter: str = "decoder.weight_", tangent_gradient: bool = False) -> NormConstraint:
    """Dictionary atoms (columns) of unit L2 norm, so an L1 penalty cannot be cheated by scale;
    ``tangent_gradient``: also make their gradient tangent to the sphere before each step."""
    return NormConstraint(parameter, dim=0, value=1.0, mode="equal", tangent_gradient=tangent_gradient)



class UnitNormRows(nn.Module):
    """A parametrization W = V / ‖V_i‖ row by row (``torch.nn.utils.parametrize``): the rows of the
    weight have unit norm *inside the objective*, as in reconstruction ICA (Le et al. 2011), so a
    full-batch L-BFGS line search sees the constraint (a projection after each step would not).
    V: (rows, columns) → W of the same shape; the norm runs over the last dimension, so a stack of
    filters (…, rows, columns), e.g. a locally connected layer's (L, M, C·k·k), works alike."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / weight.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def unit_norm_rows_parametrization(module: nn.Module, name: str = "weight") -> nn.Module:
    """Register :class:`UnitNormRows` on ``module.<name>`` (the stored parameter becomes
    ``module.parametrizations.<name>.original``; reading ``module.<name>`` gives the normalized rows)."""
    from torch.nn.utils import parametrize

    parametrize.register_parametrization(module, name, UnitNormRows())
    return module
