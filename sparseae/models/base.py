"""The autoencoder as a composition: encoder → code → decoder → likelihood, plus penalties.

Energy of a batch (mean over samples): ``E = −log p(x | dec(z)) + Σ_k Ω_k``. A model infers its
code with ``encode`` (an encoder module, or an iterative solver for sparse coding) and is trained
by one trainer for all models, which calls :meth:`Autoencoder.loss` and then
:meth:`Autoencoder.apply_constraints` after each optimizer step.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..groups import GroupStructure
from ..inference import map_rows
from ..nn.activations import upcast_half
from ..nn.likelihoods import Likelihood
from ..nn.penalties import ForwardPass, Penalty, WeightDecay, check_penalty_list, penalty_from_spec
from ..registry import Registry
from ..validation import as_float_array, check_number


@dataclass
class LossOutput:
    """``loss``: scalar to minimize; ``terms``: each named part (detached), for logging;
    ``code``: (batch, n_components); ``eta``: (batch, n_features) decoder output."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    code: torch.Tensor | None = None
    eta: torch.Tensor | None = None


@dataclass
class Energy:
    """A model's own energy terms on a batch (what :meth:`Autoencoder.energy` returns).

    ``step``: the :class:`ForwardPass` the model's penalties see (None only for a model that has
    no penalties to apply); ``total``: the sum to minimize (None: no term of its own); ``terms``:
    each term by name, detached, for the logs; ``code``: the code reported in the
    :class:`LossOutput` when it is not ``step.code`` (PSD: z*, while the penalties see F(x))."""

    step: ForwardPass | None
    total: torch.Tensor | None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    code: torch.Tensor | None = None


class Autoencoder(nn.Module):
    """``x̂ = likelihood.mean(decoder(encoder(x)))`` with penalties on the code and weights.

    encoder: maps (batch, n_features) → (batch, n_components);
    decoder: maps (batch, n_components) → (batch, n_features), ``decoder.weight`` (n_features, n_components);
    likelihood: −log p(x | η); penalties: name → :class:`Penalty`; constraints: callables
    ``constraint(model)`` applied after each optimizer step.
    Stochastic parts, active in training mode only: ``corruption`` q(x̃|x) of the encoder's input
    (a denoising autoencoder encodes x̃ and reconstructs x); ``code_noise``, a module applied to
    the code before decoding (Gaussian noise: a stochastic encoder; dropout). Penalties see the
    code before ``code_noise``.
    """

    #: How the family is trained, by name (:data:`sparseae.runs.procedures.PROCEDURES`): ``plain``
    #: (one call of the trainer), ``supervised`` (unsupervised pre-training when asked, then the
    #: labels), ``pretrain_finetune`` (greedy layer-wise pre-training, then the whole stack) or
    #: ``layerwise`` (layer by layer, no fine-tuning). The run layer and the estimators read it.
    training_procedure: ClassVar[str] = "plain"

    # ---- The model contract: every hook the trainer, the run layer, evaluation, io and the
    # estimators read, with its default. Subclasses override; nothing outside this class probes
    # a model with getattr/hasattr (tests/test_model_contract.py checks both).

    #: What ``y`` of :func:`~sparseae.train.train` is: ``"classes"`` (labels (n_samples,), used
    #: when :attr:`needs_targets`) or ``"values"`` (rows (n_samples, k), e.g. LISTA's z*). Read by
    #: the trainer's target check.
    target_kind: ClassVar[str] = "classes"
    #: False for a model whose codes have no decoder (a ``conv_stack``'s pooled features): no
    #: reconstruction metrics or pictures. Read by the run layer's metrics and plots.
    can_decode: ClassVar[bool] = True
    #: True when some parameters sit out some phases (a classifier head during pre-training), so
    #: DistributedDataParallel must not wait for their gradients. Read by :mod:`sparseae.distributed`.
    may_leave_parameters_unused: ClassVar[bool] = False

    @property
    def needs_targets(self) -> bool:
        """True when the loss has a term that needs labels (the trainer then requires ``y``)."""
        return False

    @property
    def n_classes(self) -> int | None:
        """Classes of a classifier head (labels must lie in [0, n_classes)); None: no head."""
        return None

    @property
    def code_range(self) -> tuple[float, float] | None:
        """The interval of the code values ((0, 1) for sigmoid units), None when unbounded: the
        encoder's ``code_range`` where it declares one. Read by KL sparsity and the metrics."""
        return getattr(self.encoder, "code_range", None)

    @property
    def code_activation(self) -> str | None:
        """The name of the encoder's output non-linearity (``"sigmoid"``, ``"relu"``...), None when
        it has no named one. Read by the metrics (which unit statistics mean something)."""
        activation = getattr(self.encoder, "activation_name", getattr(self.encoder, "activation", None))
        return activation if isinstance(activation, str) else None

    def learning_rate_scales(self) -> dict[str, float]:
        """{parameter name: factor of the learning rate}; parameters not named get 1. Read by the
        optimizer's parameter groups (DrSAE scales its unrolled matrices)."""
        return {}

    def initialize_from_data(self, X: Any, *, generator: torch.Generator | None = None) -> None:
        """Data-dependent initialization before training, X (n_samples, n_features); default none.
        Called by the run layer's ``plain`` and ``supervised`` procedures (not on resume)."""

    def activity_code(self, x: torch.Tensor) -> torch.Tensor:
        """The code a unit's activity is read from, (batch, n_components): :meth:`encode` here, the
        inferred z* for sparse coding and PSD. Read by tree pruning."""
        return self.encode(x)

    def code_groups(self) -> list[GroupStructure]:
        """The group structures over the code units that the model's penalties use (and its
        inference, in subclasses that have one). Read by tree pruning."""
        groups = [getattr(penalty, "groups", None) for penalty in self.penalties.values()]
        return [structure for structure in groups if isinstance(structure, GroupStructure)]

    def unit_filters(self) -> torch.Tensor:
        """What each unit responds to, (n_components, n_features): the encoder's weight rows when
        the encoder is one linear map (UFLDL's W1), else the decoder's atoms. Read by the plots."""
        weight = getattr(self.encoder, "weight", None)
        if not (isinstance(weight, torch.Tensor) and tuple(weight.shape) == (self.n_components, self.n_features)):
            weight = self.decoder.weight.t()
        return weight

    def pseudo_gradient_names(self) -> list[str]:
        """Parameters trained by a pseudo-gradient (a straight-through estimator), by full name,
        as their modules declare them (a ``pseudo_gradient_parameters`` tuple of names, e.g.
        JumpReLU's thresholds): the gradient check leaves them out."""
        return sorted(f"{prefix}.{name}" if prefix else name for prefix, module in self.named_modules()
                      for name in getattr(module, "pseudo_gradient_parameters", ()))

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood,
                 penalties: dict[str, Penalty] | None = None,
                 constraints: Sequence[Callable[[nn.Module], None]] = (),
                 corruption: nn.Module | None = None, code_noise: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.corruption, self.code_noise = corruption, code_noise
        self.penalties = nn.ModuleDict(penalties or {})
        self.constraints = list(constraints)
        #: {"name": registry name, "params": builder arguments}; set by :func:`create_model`.
        self.spec: dict[str, Any] = {}
        self.apply_constraints()

    @property
    def n_features(self) -> int:
        """Inputs per sample (the width of X); the trainer and every reader check X against it."""
        return self.decoder.n_features

    @property
    def n_components(self) -> int:
        """Code units per sample (the width of :meth:`encode`'s output)."""
        return self.decoder.n_components

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code z: (batch, n_components)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean reconstruction x̂: (batch, n_features)."""
        return self.likelihood.mean(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def forward_pass(self, x: torch.Tensor, x_input: torch.Tensor | None = None) -> ForwardPass:
        """Encode ``x_input`` (default: ``x``, corrupted in training when the model has a
        corruption) and decode, keeping what penalties need."""
        if x_input is None:
            x_input = self.corruption(x) if self.corruption is not None else x
        code = self.encode(x_input)
        decoded = self.code_noise(code) if self.code_noise is not None else code
        return ForwardPass(x=x, x_input=x_input, code=code, eta=self.decoder(decoded), model=self)

    def loss(self, x: torch.Tensor, x_input: torch.Tensor | None = None, **options: Any) -> LossOutput:
        """The loss of every model, one template: the model's own energy terms (:meth:`energy`, which
        subclasses override) plus every penalty it was given (:meth:`add_penalties`); each term is
        logged by name in ``terms``. x: (batch, n_features); ``options``: what :meth:`energy` takes
        (``reconstruction_weight``, ``targets``...)."""
        energy = self.energy(x, x_input, **options)
        if energy.step is None:
            self.refuse_penalties("its loss has no code for a penalty to read")
            return LossOutput(loss=energy.total, terms=energy.terms, code=energy.code)
        out = self.add_penalties(energy.step, energy.total, energy.terms)
        if energy.code is not None:
            out.code = energy.code
        return out

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None, *,
               reconstruction_weight: float = 1.0) -> Energy:
        """The model's own terms: here the mean-over-batch reconstruction NLL (× ``reconstruction_weight``;
        logged unweighted), at the code of :meth:`forward_pass`."""
        step = self.forward_pass(x, x_input)
        reconstruction = self.likelihood.nll(upcast_half(step.eta), x).mean()
        total = reconstruction if reconstruction_weight == 1 else reconstruction_weight * reconstruction
        return Energy(step, total, {"reconstruction": reconstruction.detach()})

    def add_penalties(self, step: ForwardPass, total: torch.Tensor | None,
                      terms: dict[str, torch.Tensor]) -> LossOutput:
        """``total`` plus every penalty of ``step``, each also logged (detached) in ``terms``
        (``total`` None: the penalties alone, None when there are none)."""
        for name, penalty in self.penalties.items():
            if name in terms:
                raise ConfigError(f"penalty {name!r} is given twice: the model's own energy has a term {name!r} "
                                  "(set by its parameters, e.g. sparsity_weight); give it once")
            value = penalty(step)
            terms[name] = value.detach()
            total = value if total is None else total + value
        return LossOutput(loss=total, terms=terms, code=step.code, eta=step.eta)

    def refuse_penalties(self, why: str) -> None:
        """:class:`ConfigError` naming the model and its first penalty, if it has any: for a model
        whose objective has no place for them (``why`` says why)."""
        if len(self.penalties):
            model = self.spec.get("name", type(self).__name__)
            raise ConfigError(f"model {model!r} cannot apply penalty {next(iter(self.penalties))!r}: {why}")

    def weight_matrices(self) -> Iterable[torch.Tensor]:
        """Weight matrices that weight decay applies to (each shared matrix once, no biases)."""
        seen: set[int] = set()
        for name, parameter in self.named_parameters():
            if parameter.ndim >= 2 and not name.startswith("penalties.") and id(parameter) not in seen:
                seen.add(id(parameter))
                yield parameter

    def set_full_batch(self, full_batch: bool) -> None:
        """Tell the penalties whether every batch is the whole training set (see :class:`Penalty`)."""
        for penalty in self.penalties.values():
            penalty.full_batch = full_batch

    @torch.no_grad()
    def project_gradients(self) -> None:
        """Before the optimizer step: constraints that shape the gradient (e.g. tangent to the
        unit sphere of the decoder's columns) apply here."""
        for constraint in self.constraints:
            project = getattr(constraint, "project_gradient", None)
            if project is not None:
                project(self)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """After the optimizer step: the projections onto the constraint sets."""
        for constraint in self.constraints:
            constraint(self)


def encode_dataset(model: nn.Module, X: Any, batch_size: int = 1024) -> np.ndarray:
    """Codes of every row of ``X`` (n_samples, n_features) → float32 array (n_samples,
    n_components), in eval mode (no corruption or dropout), batch by batch on the model's device."""
    X = as_float_array(X, "X", n_features=model.n_features)
    return map_rows(model, X, model.encode, batch_size=batch_size)


def encoder_weight_decay(weight: float, encoder: nn.Module) -> dict[str, Penalty]:
    """``{"weight_decay": (λ/2)Σ‖W‖²}`` over the weight matrices of ``encoder`` (the model's
    ``encoder.*`` parameters of two or more dimensions), or ``{}`` when λ = ``weight`` is 0."""
    check_number(weight, "weight_decay", low=0.0)
    if weight == 0:
        return {}
    names = [f"encoder.{name}" for name, parameter in encoder.named_parameters() if parameter.ndim >= 2]
    return {"weight_decay": WeightDecay(weight, names=names)}


def _json_ready(value: Any) -> Any:
    """Tuples become lists, as they come back from JSON (so a saved spec equals the live one)."""
    if isinstance(value, (np.ndarray, torch.Tensor)):  # e.g. a matrix given by hand
        return _json_ready(value.tolist())
    if isinstance(value, (tuple, list)):
        return [_json_ready(v) for v in value]
    return value


MODELS: Registry[Autoencoder] = Registry("model")
#: Model parameters renamed: old name → new name (a saved model's old names are migrated on read).
RENAMED_PARAMS = {"max_iter": "inference_max_iter"}


def create_model(name: str, n_features: int, n_components: int, **params: Any) -> Autoencoder:
    """Build the registered model ``name``; unknown parameters are a :class:`ConfigError`.

    The model remembers ``{"name", "params"}`` in ``model.spec`` so that it can be saved as JSON
    and rebuilt without pickle.
    """
    builder = MODELS.get(name)
    accepted = inspect.signature(builder).parameters
    for old, new in RENAMED_PARAMS.items():
        if old in params and new in accepted:
            raise ConfigError(f"model {name!r}: parameter {old!r} is now {new!r} (model.{new}: the "
                              "inference iterations; L-BFGS iterations are train.lbfgs_max_iter)")
    penalty_specs = params.pop("penalties", None)
    if penalty_specs is not None:
        check_penalty_list(penalty_specs)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        known = ", ".join(p for p in accepted if p not in ("n_features", "n_components"))
        raise ConfigError(f"model {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters: {known}")
    for key, value in (("n_features", n_features), ("n_components", n_components)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        if value >= 2**62:  # beyond any tensor dimension torch can index
            raise ConfigError(f"{key} is too large: {value}")
    try:
        model = builder(n_features=n_features, n_components=n_components, **params)
    except (MemoryError, torch.OutOfMemoryError) as exc:
        raise ConfigError(f"model {name!r} with n_features={n_features}, n_components={n_components} does "
                          f"not fit in memory: {' '.join(str(exc).split())[:200]}") from None
    except RuntimeError as exc:  # the CPU allocator's "can't allocate memory", a size that overflows
        if "allocate" not in str(exc) and "overflow" not in str(exc):
            raise
        raise ConfigError(f"model {name!r} with n_features={n_features}, n_components={n_components} does "
                          f"not fit in memory ({' '.join(str(exc).split())[:160]})") from None
    if penalty_specs:
        add_listed_penalties(model, penalty_specs)
        params["penalties"] = [dict(spec) for spec in penalty_specs]
    model.spec = {"name": name, "params": with_defaults(name, dict(params, n_features=n_features,
                                                                   n_components=n_components))}
    return model


def add_listed_penalties(model: Autoencoder, specs: Sequence[Any]) -> None:
    """Add the penalties of a ``model.penalties`` list to ``model`` (logged under their registry
    names), with the constraint each needs; one the model already has from its own parameters
    (the builder's shorthands such as ``sparsity_weight``, ``weight_decay``) is a
    :class:`ConfigError`: a penalty is given once."""
    for spec in specs:
        name, penalty = penalty_from_spec(spec, model)
        clash = next((key for key, existing in model.penalties.items()
                      if key == name or type(existing) is type(penalty)), None)
        if clash is not None:
            raise ConfigError(f"penalty {name!r} is given twice: by the model's own parameters (as {clash!r}) "
                              "and in model.penalties; give it once")
        model.penalties[name] = penalty
        constraint = penalty.constraint()
        if constraint is not None:
            model.constraints.append(constraint)


def with_defaults(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` of model ``name`` completed with the defaults of the parameters it leaves out
    (so a spec saved before a parameter was added compares equal to today's)."""
    accepted = inspect.signature(MODELS.get(name)).parameters
    full = {k: p.default for k, p in accepted.items() if p.default is not inspect.Parameter.empty}
    full.update(params)
    return {k: _json_ready(v) for k, v in full.items()}


def migrate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` of model ``name`` as saved by an older sparseae, with renamed parameters
    (:data:`RENAMED_PARAMS`) under their new names (unknown models: unchanged)."""
    if name not in MODELS:
        return params
    accepted = inspect.signature(MODELS.get(name)).parameters
    migrated = dict(params)
    for old, new in RENAMED_PARAMS.items():
        if old in migrated and new in accepted and new not in migrated:
            migrated[new] = migrated.pop(old)
    return migrated
