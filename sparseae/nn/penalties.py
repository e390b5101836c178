"""Penalties Ω added to the reconstruction term. One signature for all: ``penalty(step) -> scalar``.

``step`` is the :class:`ForwardPass` of a batch: the input, the code and the model, so a penalty
on codes (L1, KL), on weights (weight decay) or on the encoder's Jacobian (contractive) reads
what it needs. The trainer never names a penalty; the model sums them and logs each by name.

An *energy term* on the code alone (:class:`CodePenalty`: L1, group L2, lateral inhibition) also
gives its value per sample (:meth:`CodePenalty.energy`) and, where it has one, its proximal
operator (:meth:`Penalty.prox`, a :mod:`sparseae.coding.prox` object), so iterative inference
(FISTA) and amortized encoders use the same object. The values themselves are computed once, in
:mod:`sparseae.coding` (``l1_penalty``, ``group_penalty``, ``inhibition_penalty``).

Penalties are registered by name (:func:`register_penalty`); a config names them in
``model.penalties: [{name: l1, weight: 0.1}, {name: group_l2, groups: "grid:11x11:3", weight: 0.1}]``
(:func:`penalty_from_spec`).
"""
from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..coding.prox import GroupProx, L1Prox, ProximalOperator, group_penalty, l1_penalty
from ..distributed import mean_across_ranks
from ..errors import ConfigError
from ..registry import Registry
from ..validation import check_number
from .activations import upcast_half


@dataclass
class ForwardPass:
    """What one batch went through.

    x: (batch, n_features) the clean target; x_input: what the encoder saw (corrupted for a DAE);
    code: (batch, n_components); eta: (batch, n_features) the decoder output before the
    likelihood's link (None where the decoder is not run, see ``Penalty.uses_reconstruction``);
    model: the model (for weight penalties).
    """

    x: torch.Tensor
    x_input: torch.Tensor
    code: torch.Tensor
    eta: torch.Tensor | None
    model: nn.Module  # the Autoencoder (nn sits below models: no import of it here)


class Penalty(nn.Module, abc.ABC):
    """Base class: ``forward(step) -> scalar`` already multiplied by ``weight``.

    ``full_batch`` is set by the trainer when each batch is the whole training set (L-BFGS):
    penalties that estimate a statistic over the data set then use the batch's exact value.
    ``uses_reconstruction``: the penalty reads ``step.eta``, so it cannot apply where the decoder
    is not run (a classifier trained without its reconstruction).
    """

    full_batch: bool = False
    uses_reconstruction: bool = False

    def __init__(self, weight: float) -> None:
        super().__init__()
        check_number(weight, f"{type(self).__name__} weight", low=0.0)
        self.weight = float(weight)

    @abc.abstractmethod
    def forward(self, step: ForwardPass) -> torch.Tensor:
        """The weighted penalty, a scalar tensor."""

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}"

    def prox(self) -> ProximalOperator | None:
        """The proximal operator of Ω (``prox(v, θ)`` with θ = weight/L in a proximal-gradient
        solver), or None where the term has none (then inference treats it by gradient)."""
        return None

    def constraint(self) -> Callable[[nn.Module], None] | None:
        """A step the model must take after each optimizer step for this term (e.g. the ascent of a
        learned inhibition matrix), or None. Added to the model's constraints with the term."""
        return None


class CodePenalty(Penalty):
    """An energy term on the code alone: :meth:`energy` gives its weighted value per sample, and the
    penalty of a batch is its mean (over the code the model's penalties see)."""

    @abc.abstractmethod
    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """weight · Ω(z) of each row of z (batch, n_components): (batch,)."""

    def forward(self, step: ForwardPass) -> torch.Tensor:
        return self.energy(upcast_half(step.code)).mean()


class L1Penalty(CodePenalty):
    """λ · mean_batch Σ_j |z_j| (· ‖d_j‖ when ``decoder_norm_weighted``, so rescaling an atom
    cannot shrink the penalty; used instead of a unit-norm constraint). ``nonnegative``: the term
    also holds z ≥ 0 (not charged in the value; the prox is then max(v − θ, 0))."""

    def __init__(self, weight: float, decoder_norm_weighted: bool = False, nonnegative: bool = False) -> None:
        super().__init__(weight)
        self.decoder_norm_weighted = bool(decoder_norm_weighted)
        self.nonnegative = bool(nonnegative)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        return l1_penalty(z, self.weight)

    def forward(self, step: ForwardPass) -> torch.Tensor:
        if self.decoder_norm_weighted:
            return l1_penalty(step.code, self.weight * step.model.decoder.weight.norm(dim=0)).mean()
        return self.energy(step.code).mean()

    def prox(self) -> ProximalOperator | None:
        if self.decoder_norm_weighted:
            return None  # per-atom thresholds that change with D: not a fixed operator
        return L1Prox(nonnegative=self.nonnegative)


def kl_bernoulli(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL(ρ ‖ ρ̂) = ρ log(ρ/ρ̂) + (1−ρ) log((1−ρ)/(1−ρ̂)), elementwise over ρ̂ (n_units,)."""
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


class KLSparsity(Penalty):
    """β Σ_j KL(ρ ‖ ρ̂_j), ρ̂_j the mean activation of unit j (UFLDL sparse autoencoder).

    ``code_range`` maps codes to [0, 1] first: (−1, 1) for tanh units uses (a + 1)/2.

    ρ̂ estimate: in full-batch training (L-BFGS) the batch is the training set, so ρ̂ is exact.
    With minibatches and ``momentum`` m > 0, ρ̂ = m·ρ̄ + (1 − m)·ρ̂_batch where ρ̄ is a running
    mean of past batches (a buffer, saved with the model) and the gradient flows through the
    batch term only; m = 0 uses the batch mean alone. In eval mode, and in full-batch training
    (where a running mean would make the objective change between L-BFGS line-search
    evaluations), the batch mean is used.
    Under torch.distributed the batch mean is averaged over ranks (same as one big batch).
    """

    def __init__(self, weight: float, target: float, n_components: int,
                 code_range: tuple[float, float] | None = (0.0, 1.0), momentum: float = 0.0,
                 eps: float = 1e-6) -> None:
        super().__init__(weight)
        check_number(target, "sparsity_target (rho)", low=0.0, high=1.0, low_inclusive=False,
                     high_inclusive=False)
        check_number(momentum, "kl_momentum", low=0.0, high=1.0, high_inclusive=False)
        if code_range is None:
            raise ConfigError("KL sparsity needs bounded codes (sigmoid or tanh units), "
                              "not an unbounded activation")
        self.target, self.momentum, self.eps = float(target), float(momentum), eps
        self.code_range = tuple(float(v) for v in code_range)
        self.register_buffer("running_rho_hat", torch.full((n_components,), float(target)))

    def mean_activation(self, code: torch.Tensor) -> torch.Tensor:
        """ρ̂ of this batch mapped to [0, 1]: (n_units,)."""
        low, high = self.code_range
        rho_hat = code.mean(dim=0)
        if (low, high) != (0.0, 1.0):
            rho_hat = (rho_hat - low) / (high - low)
        return mean_across_ranks(rho_hat)

    def forward(self, step: ForwardPass) -> torch.Tensor:
        rho_hat = self.mean_activation(upcast_half(step.code))
        if self.training and self.momentum > 0 and not self.full_batch:
            rho_hat = self.momentum * self.running_rho_hat + (1 - self.momentum) * rho_hat
            if torch.is_grad_enabled():
                self.running_rho_hat.copy_(rho_hat.detach())
        rho_hat = rho_hat.clamp(self.eps, 1 - self.eps)
        return self.weight * kl_bernoulli(self.target, rho_hat).sum()

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, target={self.target:g}, momentum={self.momentum:g}"


class WeightDecay(Penalty):
    """(λ/2) Σ_W ‖W‖²_F over the model's weight matrices (not biases), as in UFLDL's J;
    ``names``: only these parameters (e.g. ``("encoder.E", "encoder.S")``)."""

    def __init__(self, weight: float, names: Iterable[str] | None = None) -> None:
        super().__init__(weight)
        self.names = None if names is None else tuple(names)

    def forward(self, step: ForwardPass) -> torch.Tensor:
        if self.names is None:
            matrices: Iterable[torch.Tensor] = step.model.weight_matrices()
        else:
            try:
                matrices = [step.model.get_parameter(name) for name in self.names]
            except AttributeError:
                unknown = [n for n in self.names if n not in dict(step.model.named_parameters())]
                raise ConfigError(f"weight decay names unknown parameters: {', '.join(unknown)}") from None
        return 0.5 * self.weight * sum(w.pow(2).sum() for w in matrices)

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}" + (f", names={list(self.names)}" if self.names else "")


class ContractivePenalty(Penalty):
    """λ · mean_batch ‖J_f(x)‖²_F, the contractive autoencoder's penalty (Rifai et al. 2011).

    ``method``: ``auto`` (closed form for a linear encoder with an elementwise activation, else
    exact autodiff), ``closed_form``, ``exact`` or ``stochastic`` (Hutchinson's estimate from
    ``n_projections`` random projections); :mod:`sparseae.nn.jacobian` documents their cost.
    """

    def __init__(self, weight: float, method: str = "auto", n_projections: int = 1) -> None:
        super().__init__(weight)
        from .jacobian import METHODS

        check_number(n_projections, "n_projections", low=1, integer=True)
        if method not in METHODS:
            raise ConfigError(f"unknown contraction_method {method!r}; known: {', '.join(METHODS)}")
        self.method, self.n_projections = method, int(n_projections)

    def forward(self, step: ForwardPass) -> torch.Tensor:
        from .jacobian import jacobian_frobenius_sq, resolve_method

        encoder = step.model.encoder
        method = resolve_method(encoder, self.method)
        squared = jacobian_frobenius_sq(encoder, step.x_input, method,
                                        code=step.code if method == "closed_form" else None,
                                        n_projections=self.n_projections)
        return self.weight * upcast_half(squared).mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, method={self.method}"


class AuxKPenalty(Penalty):
    """Gao et al. (2024)'s auxiliary loss against dead latents of a TopK SAE:
    α · ‖e − ê‖² / ‖e − ē‖² over the batch, where e = x − x̂ (detached) is the main reconstruction's
    residual and ê = W_dec z_aux reconstructs it from the ``k_aux`` largest pre-activations of the
    *dead* latents (those that have not fired for more than ``dead_after`` samples, counted in a
    buffer during training). 0 when no latent is dead.
    """

    uses_reconstruction = True

    def __init__(self, weight: float, n_components: int, k_aux: int = 512, dead_after: int = 1_000_000) -> None:
        super().__init__(weight)
        check_number(k_aux, "k_aux", low=1, integer=True)
        check_number(dead_after, "dead_after", low=1, integer=True)
        self.k_aux, self.dead_after = int(k_aux), int(dead_after)
        self.register_buffer("samples_since_fired", torch.zeros(n_components, dtype=torch.long))

    @property
    def dead(self) -> torch.Tensor:
        """Bool (n_components,): latents silent for more than ``dead_after`` samples."""
        return self.samples_since_fired > self.dead_after

    def forward(self, step: ForwardPass) -> torch.Tensor:
        code = step.code
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                fired = (code > 0).any(dim=0)
                self.samples_since_fired.add_(code.shape[0]).masked_fill_(fired, 0)
        dead = self.dead
        encoder = step.model.encoder
        a = encoder.last_preactivation
        if a is None or a.shape != code.shape:
            a = encoder.preactivation(step.x_input)
        # Always computed (no host sync to ask whether any latent is dead): with none dead,
        # z_aux is 0 and the term is multiplied by 0.
        candidates = torch.where(dead, torch.relu(a), torch.full_like(a, -1.0))
        top = candidates.topk(min(self.k_aux, a.shape[1]), dim=1)
        z_aux = torch.zeros_like(a).scatter_(1, top.indices, top.values.clamp_min(0))
        residual = (step.x - step.model.likelihood.mean(step.eta)).detach()
        estimate = nn.functional.linear(z_aux, step.model.decoder.weight.to(a.dtype))
        scale = (residual - residual.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
        return self.weight * dead.any().to(a.dtype) * (residual - estimate).pow(2).sum() / scale

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, k_aux={self.k_aux}, dead_after={self.dead_after}"


class L0Penalty(Penalty):
    """λ · mean_batch Σ_j H(a_j − θ_j): the number of active latents of a JumpReLU SAE
    (Rajamanoharan et al. 2024), differentiable in θ by the encoder's pseudo-derivative."""

    def forward(self, step: ForwardPass) -> torch.Tensor:
        encoder = step.model.encoder
        a = encoder.last_preactivation
        if a is None or a.shape != step.code.shape:
            a = encoder.preactivation(step.x_input)
        return self.weight * encoder.gate(a).sum(dim=1).mean()


class GroupSparsityPenalty(CodePenalty):
    """λ · mean_batch Σ_j √(Σ_{i∈g_j} w_ij z_i² + ε) over a :class:`~sparseae.groups.GroupStructure`
    (group sparsity / L2 pooling; topographic when the groups are grid windows). ε > 0 keeps
    the gradient finite at z_g = 0 (Kavukcuoglu et al. 2009)."""

    def __init__(self, weight: float, groups, eps: float = 1e-8) -> None:
        super().__init__(weight)
        check_number(eps, "group eps", low=0.0)
        self.groups, self.eps = groups, float(eps)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        return group_penalty(z, self.groups, self.weight, self.eps)

    def prox(self) -> ProximalOperator | None:
        """Block soft thresholding (:class:`~sparseae.coding.prox.GroupProx`) for ε = 0; the
        smoothed penalty (ε > 0) has none (it is inferred by gradient)."""
        return GroupProx(self.groups) if self.eps == 0 else None

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, {self.groups.kind} groups={self.groups.n_groups}, eps={self.eps:g}"


# ------------------------------------------------------------------------------------ registry

#: Name → penalty builder (a :class:`Penalty` subclass or a function returning one).
PENALTIES: Registry[Penalty] = Registry("penalty")
#: Builder parameters filled from the model, never from a config: the code size and the model.
CONTEXT_PARAMETERS = ("n_components", "model")


def register_penalty(name: str) -> Callable[[Callable[..., Penalty]], Callable[..., Penalty]]:
    """Decorator: register a :class:`Penalty` subclass (or a builder returning one) under ``name``,
    so that a config can list it in ``model.penalties`` with its parameters. A builder parameter
    named ``n_components`` or ``model`` is filled from the model; the others come from the config."""
    return PENALTIES.register(name)


def _builder_parameters(builder: Callable[..., Penalty]) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(builder.__init__ if inspect.isclass(builder) else builder)
    return {k: p for k, p in signature.parameters.items()
            if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_penalty_spec(spec: Any, where: str = "model.penalties") -> tuple[str, dict[str, Any]]:
    """``(name, params)`` of one ``{name: ..., **params}`` entry, checked against the registered
    builder's parameters (unknown name, unknown or missing parameter: :class:`ConfigError`)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"each entry of {where} is a mapping with a 'name' (e.g. {{name: l1, weight: 0.1}}), "
                          f"got {spec!r}")
    name = spec["name"]
    builder = PENALTIES.get(name)  # unknown name → ConfigError listing the known ones
    params = {k: v for k, v in spec.items() if k != "name"}
    accepted = _builder_parameters(builder)
    own = [k for k in accepted if k not in CONTEXT_PARAMETERS]
    unknown = sorted(set(params) - set(own))
    if unknown:
        raise ConfigError(f"penalty {name!r} in {where} has no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters: {', '.join(own)}")
    missing = [k for k in own if accepted[k].default is inspect.Parameter.empty and k not in params]
    if missing:
        raise ConfigError(f"penalty {name!r} in {where} needs {', '.join(map(repr, missing))}")
    return name, params


def check_penalty_list(specs: Any, where: str = "model.penalties") -> list[tuple[str, dict[str, Any]]]:
    """Every entry of a ``model.penalties`` list checked (:func:`check_penalty_spec`); a name
    listed twice is a :class:`ConfigError`."""
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"{where} must be a list of {{name: ..., weight: ...}} entries, got {specs!r}")
    checked = [check_penalty_spec(spec, where) for spec in specs]
    names = [name for name, _ in checked]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"penalty {name!r} is listed twice in {where}")
    return checked


def penalty_from_spec(spec: Any, model: nn.Module, where: str = "model.penalties") -> tuple[str, Penalty]:
    """``(name, penalty)`` built from one ``model.penalties`` entry for ``model`` (its code size and
    encoder fill the builder's context parameters); invalid entries raise :class:`ConfigError`."""
    name, params = check_penalty_spec(spec, where)
    builder = PENALTIES.get(name)
    accepted = _builder_parameters(builder)
    context = {"n_components": model.n_components, "model": model}
    try:
        penalty = builder(**params, **{k: v for k, v in context.items() if k in accepted})
    except TypeError as exc:
        raise ConfigError(f"penalty {name!r} in {where}: {exc}") from None
    if not isinstance(penalty, Penalty):
        raise ConfigError(f"penalty {name!r} is registered with a builder that returned "
                          f"{type(penalty).__name__}, not a Penalty")
    return name, penalty


def parse_groups(groups: Any, n_components: int):
    """A :class:`~sparseae.groups.GroupStructure` from a config value: a
    :func:`~sparseae.groups.make_groups` mapping, or the short forms ``"grid:HxW:K"`` (K×K windows
    on an H×W grid), ``"disjoint:G"`` (groups of G consecutive units) and ``"tree:DxB"`` (a
    balanced tree of depth D and branching B); checked against the code size."""
    from ..groups import make_groups

    if isinstance(groups, str):
        kind, _, rest = groups.partition(":")
        try:
            if kind == "grid":
                size, _, window = rest.partition(":")
                height, width = (int(v) for v in size.split("x"))
                groups = {"kind": "grid", "height": height, "width": width, "window": int(window or 3)}
            elif kind == "disjoint":
                groups = {"kind": "disjoint", "n_components": n_components, "group_size": int(rest)}
            elif kind == "tree":
                depth, branching = (int(v) for v in rest.split("x"))
                groups = {"kind": "tree", "depth": depth, "branching": branching}
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"groups {groups!r} is not one of 'grid:HxW:K', 'disjoint:G', 'tree:DxB' "
                              "nor a group structure mapping") from None
    structure = make_groups(groups)
    structure.check_fits(n_components)
    return structure


register_penalty("l1")(L1Penalty)
register_penalty("weight_decay")(WeightDecay)
register_penalty("contraction")(ContractivePenalty)
register_penalty("aux_k")(AuxKPenalty)
register_penalty("l0")(L0Penalty)


@register_penalty("kl")
def kl_sparsity(weight: float, target: float = 0.05, momentum: float = 0.0, *,
                n_components: int, model: nn.Module) -> KLSparsity:
    """:class:`KLSparsity` with ρ = ``target`` on the units of ``model``'s encoder (its code range)."""
    return KLSparsity(weight, target, n_components, code_range=model.code_range,
                      momentum=momentum)


@register_penalty("group_l2")
def group_l2(weight: float, groups: Any, eps: float = 0.0, *, n_components: int) -> GroupSparsityPenalty:
    """:class:`GroupSparsityPenalty` over ``groups`` (:func:`parse_groups`), smoothed by ``eps``."""
    return GroupSparsityPenalty(weight, parse_groups(groups, n_components), eps)


from . import inhibition_penalty as _inhibition_penalty  # noqa: E402,F401  (registers "inhibition")
