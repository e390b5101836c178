"""Penalties by name (issue 23): a penalty registered in one place of this module is named from a
config and trains on three model families (an amortized encoder, FISTA inference, LISTA), its term
in the logged losses; energy terms are one object each (value, prox, log name), checked against
their definitions (float64 gradients, prox by brute force)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.config import RunConfig
from sparseae.errors import ConfigError
from sparseae.io import load_model, save_model
from sparseae.models import create_model
from sparseae.nn.inhibition_penalty import LateralInhibitionPenalty
from sparseae.nn.penalties import CodePenalty, GroupSparsityPenalty, L1Penalty, group_l2, register_penalty


# ----------------------------------------------------------------- the test's penalty: one place
@register_penalty("code_power")
class CodePower(CodePenalty):
    """weight · Σ_j |z_j|^power per sample (power > 1: smooth)."""

    def __init__(self, weight: float, power: float = 2.0) -> None:
        super().__init__(weight)
        if power <= 1:
            raise ConfigError(f"code_power needs power > 1, got {power!r}")
        self.power = float(power)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        return self.weight * z.abs().pow(self.power).sum(dim=1)


TEST_PENALTY = {"name": "code_power", "weight": 0.05, "power": 2.0}
FAMILIES = {  # an amortized encoder with L1, FISTA inference, LISTA
    "autoencoder": {"name": "autoencoder", "n_components": 8, "activation": "relu", "sparsity": "l1",
                    "sparsity_weight": 0.1},
    "sparse_coding": {"name": "sparse_coding", "n_components": 8, "inference_max_iter": 30},
    "lista": {"name": "lista", "n_components": 8, "inference_max_iter": 50},
}


def run_config(run: Path, model: dict) -> dict:
    return {"model": {**model, "penalties": [dict(TEST_PENALTY)]}, "data": {"name": "digits"},
            "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 512, "max_epochs": 1,
                      "random_state": 0, "device": "cpu"},
            "output": {"dir": str(run), "plots": False}}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_registered_penalty_named_in_a_yaml_config_trains_and_is_logged(tmp_path, capsys, family):
    run = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(run_config(run, FAMILIES[family]), sort_keys=False))
    capsys.readouterr()
    status = main(["train", str(config), "--quiet"])
    err = capsys.readouterr().err
    assert status == 0, err
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    value = record["train_code_power"]
    assert math.isfinite(value) and value > 1e-6, record
    if family == "autoencoder":
        assert record["train_l1"] > 0  # the shorthand's term beside the listed one


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_listed_penalty_is_its_definition_on_the_models_code_and_round_trips(tmp_path, digits, family):
    config = RunConfig.from_dict(run_config(tmp_path / "run", FAMILIES[family]))
    torch.manual_seed(0)
    model = create_model(config.model_name, 64, config.n_components, **config.model_params).double()
    X = torch.from_numpy(digits[0][:40]).double()
    out = model.loss(X)
    code = model.encode(X)
    expected = 0.05 * float(code.detach().square().sum(dim=1).mean())
    assert float(out.terms["code_power"]) == pytest.approx(expected, rel=1e-10)
    assert float(out.terms["code_power"]) > 0
    own = {k: float(v) for k, v in out.terms.items() if k != "code_power"}
    if family == "lista":  # reconstruction is logged weighted by reconstruction_weight (0)
        total = own["code_prediction"] + own["reconstruction"] + expected
        assert float(out.loss.detach()) == pytest.approx(total, rel=1e-10)
    else:
        assert float(out.loss.detach()) == pytest.approx(sum(own.values()) + expected, rel=1e-10)
    save_model(model, tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    assert loaded.spec == model.spec and loaded.spec["params"]["penalties"] == [TEST_PENALTY]
    assert isinstance(loaded.penalties["code_power"], CodePower)
    assert float(loaded.double().loss(X).terms["code_power"]) == pytest.approx(expected, rel=1e-10)


def test_a_listed_penalty_moves_the_amortized_encoder():
    torch.manual_seed(1)
    X = torch.rand(10, 12, dtype=torch.float64)
    grads = []
    for penalties in ([], [{"name": "code_power", "weight": 0.5}]):
        torch.manual_seed(2)
        model = create_model("autoencoder", 12, 5, penalties=penalties).double()
        model.loss(X).loss.backward()
        grads.append(model.encoder.weight.grad.clone())
    assert float((grads[0] - grads[1]).abs().max()) > 1e-4


# ----------------------------------------------------------------- config errors
def test_unknown_penalty_name_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unknown penalty 'l7'; known: .*code_power.*group_l2.*l1"):
        RunConfig.from_dict({"model": {"name": "autoencoder", "penalties": [{"name": "l7", "weight": 1}]},
                             "data": {"name": "digits"}})


@pytest.mark.parametrize("entry, words", [
    ({"name": "l1", "wieght": 0.1}, "penalty 'l1' in model.penalties has no parameter 'wieght'"),
    ({"name": "code_power", "weight": 0.1, "n_components": 3}, "has no parameter 'n_components'"),
    ({"name": "group_l2", "weight": 0.1}, "penalty 'group_l2' in model.penalties needs 'groups'"),
    ({"weight": 0.1}, "each entry of model.penalties is a mapping with a 'name'"),
])
def test_bad_penalty_parameters_are_config_errors(entry, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        RunConfig.from_dict({"model": {"name": "autoencoder", "penalties": [entry]}, "data": {"name": "digits"}})


@pytest.mark.parametrize("params, words", [
    ({"penalties": [{"name": "code_power", "weight": -1.0}]}, "CodePower weight"),
    ({"penalties": [{"name": "code_power", "weight": 0.1, "power": 0.5}]}, "power > 1"),
    ({"penalties": [{"name": "group_l2", "weight": 0.1, "groups": "grid:3x3:2"}]}, "group"),
    ({"penalties": [{"name": "group_l2", "weight": 0.1, "groups": "hexagon:4"}]}, "'grid:HxW:K'"),
    ({"penalties": "l1"}, "model.penalties must be a list"),
    ({"penalties": [{"name": "l1", "weight": 0.1}, {"name": "l1", "weight": 0.2}]}, "listed twice"),
    ({"sparsity": "l1", "sparsity_weight": 0.1, "penalties": [{"name": "l1", "weight": 0.2}]}, "given twice"),
    ({"weight_decay": 0.1, "penalties": [{"name": "weight_decay", "weight": 0.2}]}, "given twice"),
])
def test_bad_penalty_lists_are_refused_by_create_model(params, words):
    with pytest.raises(ConfigError, match=words):
        create_model("autoencoder", 16, 8, **params)


def test_a_shorthand_and_the_same_penalty_listed_are_refused_for_inference_models():
    with pytest.raises(ConfigError, match="penalty 'l1' is given twice"):
        create_model("sparse_coding", 16, 8, penalties=[{"name": "l1", "weight": 0.1}])
    model = create_model("lateral_inhibition", 16, 8, inference_max_iter=10,
                         penalties=[{"name": "l1", "weight": 0.1}])
    with pytest.raises(ConfigError, match="own energy has a term 'l1'"):
        model.loss(torch.rand(4, 16))


def test_the_cli_names_a_bad_penalty_in_one_line(tmp_path, capsys):
    config = run_config(tmp_path / "run", FAMILIES["autoencoder"])
    config["model"]["penalties"] = [{"name": "code_power", "weight": 0.1, "pwr": 3}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'pwr'" in err and "code_power" in err


def test_a_learned_inhibition_listed_gets_its_ascent_step():
    model = create_model("autoencoder", 16, 6, activation="relu",
                         penalties=[{"name": "inhibition", "weight": 0.1, "value": 0.0, "learned": True,
                                     "rate": 1.0, "bound": 10.0}])
    before = model.penalties["inhibition"].inhibition.clone()
    model.train()
    model.loss(torch.rand(8, 16)).loss.backward()
    model.apply_constraints()
    assert float((model.penalties["inhibition"].inhibition - before).abs().max()) > 0


# ----------------------------------------------------------------- energy terms: gradients, prox
def _terms() -> dict:
    return {
        "code_power": CodePower(0.3, power=3.0),
        "l1": L1Penalty(0.7),
        "l1_nonnegative": L1Penalty(0.7, nonnegative=True),
        "group_l2": group_l2(0.4, "disjoint:2", n_components=6),
        "group_l2_smooth": group_l2(0.4, "grid:2x3:2", eps=0.01, n_components=6),
        "inhibition": LateralInhibitionPenalty(0.5, 6, value=0.3),
    }


@pytest.mark.parametrize("name", list(_terms()))
def test_float64_gradient_of_each_energy_term(name):
    term = _terms()[name].double()
    torch.manual_seed(4)
    z = torch.randn(5, 6, dtype=torch.float64)
    z = z + 0.2 * z.sign()  # away from the kink at 0 (L1, inhibition)
    if name == "l1_nonnegative":
        z = z.abs()
    assert torch.autograd.gradcheck(lambda v: term.energy(v), (z.requires_grad_(),), eps=1e-6, atol=1e-8)


def test_gradient_check_of_a_model_with_a_listed_penalty():
    from sparseae.gradcheck import check_gradients

    torch.manual_seed(5)
    model = create_model("autoencoder", 6, 4, penalties=[{"name": "code_power", "weight": 0.3, "power": 3.0},
                                                         {"name": "group_l2", "weight": 0.2, "groups": "disjoint:2",
                                                          "eps": 0.01}])
    result = check_gradients(model, torch.rand(5, 6).numpy())
    assert result.relative_error < 1e-8, result


def _brute_force_prox(term, v: torch.Tensor, theta: float, nonnegative: bool) -> tuple[torch.Tensor, float]:
    """argmin_u ½‖u − v‖² + θ·Ω(u) over a grid of (u1, u2), Ω = term.energy / term.weight."""
    axis = torch.linspace(0.0 if nonnegative else -3.0, 3.0, 1201 if not nonnegative else 601, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    objective = 0.5 * (grid - v).square().sum(dim=1) + theta * term.energy(grid) / term.weight
    best = int(objective.argmin())
    return grid[best], float(objective[best])


@pytest.mark.parametrize("name, nonnegative", [("l1", False), ("l1_nonnegative", True), ("group_l2", False)])
@pytest.mark.parametrize("v", [(1.3, -0.4), (-2.1, 0.9), (0.3, 0.2), (-0.2, -1.6)])
def test_prox_of_each_term_is_the_argmin_of_its_definition(name, nonnegative, v):
    term = (L1Penalty(1.0, nonnegative=nonnegative) if name != "group_l2"
            else GroupSparsityPenalty(1.0, group_l2(1.0, "disjoint:2", n_components=2).groups, eps=0.0))
    prox = term.prox()
    theta = 0.6
    v = torch.tensor(v, dtype=torch.float64)
    u = prox(v.unsqueeze(0), theta)[0]
    grid_u, grid_objective = _brute_force_prox(term, v, theta, nonnegative)
    objective = float(0.5 * (u - v).square().sum() + theta * term.energy(u.unsqueeze(0))[0] / term.weight)
    assert objective <= grid_objective + 1e-12
    assert float((u - grid_u).abs().max()) <= 0.0051  # the grid's spacing
    if nonnegative:
        assert bool((u >= 0).all())


def test_smoothed_group_and_weighted_l1_have_no_prox_and_inference_uses_the_terms_prox():
    assert group_l2(0.1, "disjoint:2", eps=0.01, n_components=4).prox() is None
    assert L1Penalty(0.1, decoder_norm_weighted=True).prox() is None
    model = create_model("sparse_coding", 16, 6, groups={"kind": "disjoint", "n_components": 6, "group_size": 2},
                         inference_max_iter=5)
    term = model.penalties["group"]
    assert model.inference.term is term and type(model.inference._prox).__name__ == "GroupProx"
    z = torch.randn(3, 6)
    assert torch.equal(model.inference.penalty(z), term.energy(z))
