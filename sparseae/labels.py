"""How metrics are named and shown, to people: the CLI's tables and the HTML report share them."""
from __future__ import annotations

import math
from typing import Any

#: Human labels of the metrics in summaries and ``evaluate`` (others are shown by their key).
METRIC_LABELS = {
    "final_loss": "final loss",
    "reconstruction_error": "reconstruction error (mean ‖x − x̂‖²)",
    "mean_squared_error": "mean squared error (per element)",
    "explained_variance": "explained variance",
    "target_fvu": "FVU of the target (transcoder: ŷ vs the MLP output)",
    "rho_hat_mean": "mean activation ρ̂",
    "sparsity_target": "sparsity target ρ",
    "rho_hat_min": "min unit ρ̂",
    "rho_hat_max": "max unit ρ̂",
    "activity_threshold": "unit active above",
    "mean_l0": "mean active units (L0)",
    "active_fraction": "active fraction",
    "dead_units": "dead units",
    "dead_fraction": "dead fraction",
    "dead_rule": "a unit is dead when",
    "orientation_selectivity": "filter orientation selectivity",
    "jacobian_norm": "mean ‖J_f(x)‖_F (encoder Jacobian)",
    "jacobian_sq_per_entry": "mean squared entry of J_f",
    "saturated_fraction": "saturated units (h < 0.05 or > 0.95)",
    "pretrained_jacobian_norm": "pre-trained layer 1: mean ‖J_f(x)‖_F",
    "pretrained_jacobian_sq_per_entry": "pre-trained layer 1: mean squared entry of J_f",
    "pretrained_saturated_fraction": "pre-trained layer 1: saturated units",
    "probe_accuracy": "linear probe accuracy",
    "probe_skipped": "linear probe",
    "classifier_error": "classifier error rate",
    "units_n_part_units": "part-units (encoder–decoder angle < 0.5 rad)",
    "units_n_categorical_units": "categorical units (encoder–decoder angle > 0.7 rad)",
    "units_median_angle": "median encoder–decoder angle (rad)",
}


def format_value(value: Any) -> str:
    """Numbers with 6 significant digits; everything else as ``str``."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)
