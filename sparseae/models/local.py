"""Locally connected sparse autoencoder with topographic group sparsity (``local_sae``).

Image-level training with local filters but no weight sharing (Gregor & LeCun 2010; seeds
000/001): every unit has its own k×k filter at its location; the units lie on a 2-D sheet
(see :mod:`sparseae.nn.local`) and the penalty is the group sparsity of overlapping windows on
that sheet, so neighbouring units — at the same or neighbouring locations — learn similar
filters, and orientation varies smoothly over the image, with pinwheels:

    E = ½‖x − Σ_u z_u D_u − c‖² + λ Σ_j √(Σ_{u∈P_j} w_ju z_u² + ε),   ‖D_u‖ = 1

With ``tied=True, activation="identity", unit_norm_encoder=True`` it is reconstruction ICA with
L2 pooling over the sheet, as in Le et al. 2012 (local receptive fields, no weight sharing):
z = Wx, ‖W_u‖ = 1 inside the objective, E = ½‖WᵀWx − x‖² + λ Σ_j √(Σ_{u∈P_j} z_u² + ε).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from ..groups import GroupStructure, grid_groups, make_groups
from ..nn.activations import ACTIVATIONS
from ..nn.constraints import NormConstraint, unit_norm_rows_parametrization
from ..nn.convolutional import image_geometry
from ..nn.likelihoods import make_likelihood
from ..nn.local import LocalDecoder, LocalEncoder
from ..nn.penalties import GroupSparsityPenalty, Penalty, WeightDecay
from ..validation import check_choice, check_number
from .base import MODELS, Autoencoder

#: Window of the default topography: 3×3 neighbourhoods of the sheet, not wrapping at its edges.
DEFAULT_WINDOW = 3


class LocalAutoencoder(Autoencoder):
    """An :class:`Autoencoder` with a :class:`~sparseae.nn.local.LocalEncoder` and decoder; ``groups``
    is the structure over the sheet's units. ``encode`` gives the sheet flattened ``(batch, H'·r·W'·c)``."""

    def __init__(self, encoder: LocalEncoder, decoder: LocalDecoder, likelihood, groups: GroupStructure,
                 penalties: dict[str, Penalty] | None = None, constraints: Sequence = (),
                 group_eps: float = 1e-8) -> None:
        super().__init__(encoder, decoder, likelihood, penalties, constraints)
        self.groups, self.group_eps = groups, float(group_eps)

    @property
    def sheet_shape(self) -> tuple[int, int]:
        """(rows, columns) of the sheet of units."""
        return self.encoder.sheet_shape

    def sheet(self, x: torch.Tensor) -> torch.Tensor:
        """The code as the sheet ``(batch, H'·r, W'·c)``."""
        return self.encode(x).view(-1, *self.sheet_shape)

    def sheet_atoms(self) -> torch.Tensor:
        """Every unit's own decoder atom (its C·k·k filter, not placed in the image), in sheet order
        (unit i at row i // columns, column i % columns): ``(H'·r·W'·c, C·k·k)``."""
        decoder = self.decoder
        (rows, cols), (height, width) = decoder.grid, decoder.locations
        atoms = decoder.filters.detach().reshape(height, width, rows, cols, -1)  # (H'·W', r·c, C·k·k) split
        return atoms.permute(0, 2, 1, 3, 4).reshape(height * rows * width * cols, -1)

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The L2 norms of the groups ``(batch, n_groups)`` (grid windows in row-major order of
        their top-left unit)."""
        return self.groups.group_norms(self.encode(x), self.group_eps)


def sheet_groups(spec: dict | None, sheet_shape: tuple[int, int]) -> GroupStructure:
    """The topography over the sheet: ``spec`` (a :func:`~sparseae.groups.make_groups` spec over
    its rows·columns units), or None: 3×3 windows that do not wrap around."""
    height, width = sheet_shape
    if spec is None:
        if min(height, width) < DEFAULT_WINDOW:
            raise ConfigError(f"the default {DEFAULT_WINDOW}×{DEFAULT_WINDOW} windows do not fit the "
                              f"{height}×{width} sheet of units; give groups")
        return grid_groups(height, width, DEFAULT_WINDOW, toroidal=False)
    structure = make_groups(spec)
    if structure.n_components != height * width:
        raise ConfigError(f"the {structure.kind} groups cover {structure.n_components} units, but the sheet has "
                          f"{height}×{width} = {height * width} (e.g. {{'kind': 'grid', 'height': {height}, "
                          f"'width': {width}, 'window': 3}})")
    return structure


@MODELS.register("local_sae")
def local_sae(n_features: int, n_components: int, *, image_shape: Sequence[int] | None = None,
              kernel_size: int = 5, stride: int = 1, padding: int = 0, unit_grid: Sequence[int] | None = None,
              groups: dict | None = None, sparsity_weight: float = 0.1, group_eps: float = 1e-8,
              likelihood: str = "gaussian", weight_decay: float = 0.0, activation: str = "relu",
              tied: bool = False, unit_norm_encoder: bool = False) -> LocalAutoencoder:
    """Locally connected sparse autoencoder with topographic group sparsity over a sheet of units.

    ``n_components``: the number of units (filters) per location M; the code has M·H'·W' units
    on an (H'·r)×(W'·c) sheet, M = r·c laid out by ``unit_grid`` (rows, columns; None: the
    squarest). ``image_shape``, ``kernel_size``, ``stride``, ``padding`` as for ``conv_sae``.
    ``groups``: a :func:`~sparseae.groups.make_groups` spec over the sheet's units, e.g.
    ``{"kind": "grid", "height": rows, "width": columns, "window": 3}``; None: 3×3 windows
    that do not wrap. ``sparsity_weight`` λ, ``group_eps`` ε, ``likelihood``, ``weight_decay``
    as for ``conv_sae``. ``activation``: the units' non-linearity (``relu``; ``identity``,
    ``sigmoid``, ``tanh``). ``tied``: the decoder's atoms are the encoder's filters (no own
    weight). ``unit_norm_encoder``: every filter has unit norm inside the objective (a
    parametrization, as for ``autoencoder``: L-BFGS sees it) and the encoder has no per-unit
    gain. ``tied=True, activation="identity", unit_norm_encoder=True`` is reconstruction ICA
    with L2 pooling (Le et al. 2012). An untied decoder's atoms are kept at unit norm.
    """
    shape = image_geometry(image_shape, n_features)
    check_number(sparsity_weight, "sparsity_weight", low=0.0)
    check_number(weight_decay, "weight_decay", low=0.0)
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    geometry = dict(kernel_size=kernel_size, stride=stride, padding=padding, grid=unit_grid)
    encoder = LocalEncoder(shape, n_components, activation=activation, gain=not unit_norm_encoder, **geometry)
    if unit_norm_encoder:
        unit_norm_rows_parametrization(encoder)
    decoder = LocalDecoder(shape, n_components, tied_to=encoder if tied else None, **geometry)
    structure = sheet_groups(groups, encoder.sheet_shape)
    penalties: dict[str, Penalty] = {}
    if sparsity_weight > 0:
        penalties["group"] = GroupSparsityPenalty(sparsity_weight, structure, eps=group_eps)
    if weight_decay > 0:
        penalties["weight_decay"] = WeightDecay(weight_decay)
    constraints = [] if tied else [NormConstraint("decoder.weight_", dim=2, value=1.0, mode="equal")]
    return LocalAutoencoder(encoder, decoder, make_likelihood(likelihood, n_features), structure, penalties,
                            constraints, group_eps)
