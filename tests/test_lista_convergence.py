"""LISTA trained to convergence (issue 25): the untied / per-layer-threshold options of the ``lista``
model, the layer-wise warm start that extends them, and the plateau-decay schedule of ``train_lista``."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sparseae.coding import dictionary_from_samples, ista
from sparseae.errors import ConfigError
from sparseae.evaluate.lista import LISTATraining, exact_codes, lista_depth_chain, relative_error, train_lista
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.io import load_model, save_model
from sparseae.models import create_model, lista_from_dictionary

from test_lista_chain import problem  # the same small sparse-coding problem

UNTIED = {"untied": True, "layer_thresholds": True}


def perturb(model, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(1 + 0.2 * torch.rand(p.shape, generator=g, dtype=p.dtype))


def manual_forward(encoder, x: torch.Tensor) -> torch.Tensor:
    """z^T written out with an explicit S_k and θ_k per step (soft threshold)."""
    S = [encoder.S[k] if encoder.untied else encoder.S for k in range(encoder.n_steps)]
    theta = [encoder.threshold[k] if encoder.layer_thresholds else encoder.threshold
             for k in range(encoder.n_steps + 1)]
    b = x @ encoder.weight.t()
    z = torch.sign(b) * torch.clamp(b.abs() - theta[0], min=0)
    for k in range(encoder.n_steps):
        v = b + z @ S[k].t()
        z = torch.sign(v) * torch.clamp(v.abs() - theta[k + 1], min=0)
    return z


@pytest.mark.parametrize("params", [UNTIED, {"untied": True}, {"layer_thresholds": True}])
def test_untied_options_start_as_ista_and_have_per_step_weights(params):
    D, X = problem(40)
    T = 3
    model = lista_from_dictionary(D, 0.1, T, **params)
    enc = model.encoder
    assert tuple(enc.S.shape) == ((T, 24, 24) if params.get("untied") else (24, 24))
    assert tuple(enc.threshold.shape) == ((T + 1, 24) if params.get("layer_thresholds") else (24,))
    L = model.lipschitz
    reference = ista(X, D, 0.1, L=L, max_iter=T + 1, stop="none").codes
    with torch.no_grad():
        assert torch.allclose(model.encode(X), reference, atol=1e-12)
        perturb(model)
        assert torch.allclose(model.encode(X), manual_forward(enc, X), atol=1e-12)
        assert not torch.allclose(model.encode(X), reference, atol=1e-3)


def test_untied_lista_passes_the_float64_gradient_check():
    D, X = problem(20)
    model = create_model("lista", 12, 6, n_steps=3, **UNTIED, reconstruction_weight=0.5, weight_decay=1e-2).double()
    model.init_from_dictionary(dictionary_from_samples(X.numpy(), 6))
    perturb(model, seed=1)
    result = check_gradients(model, X[:5].numpy() + 0.1)
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    assert result.passed and result.n_checked >= 100
    assert set(result.per_parameter) >= {"encoder.S", "encoder.threshold", "encoder.weight"}


def test_weight_decay_skips_per_layer_thresholds():
    model = create_model("lista", 12, 6, n_steps=2, **UNTIED, weight_decay=0.5)
    assert model.penalties["weight_decay"].names == ("encoder.weight", "encoder.S")


def test_untied_lista_round_trips_through_save_and_load(tmp_path):
    D, X = problem(10, dtype=torch.float32)
    model = lista_from_dictionary(D, 0.1, 4, **UNTIED)
    perturb(model)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec and loaded.encoder.untied and loaded.encoder.layer_thresholds
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded.encode(X), model.encode(X))


@pytest.mark.parametrize("params", [UNTIED, {}])
def test_the_warm_start_applies_the_shallower_net_then_its_last_step_again(params):
    D, X = problem(30)
    shallow = lista_from_dictionary(D, 0.1, 2, **params)
    perturb(shallow)
    deep = lista_from_dictionary(D, 0.1, 4, **params)
    deep.encoder.warm_start_from(shallow.encoder)
    enc = shallow.encoder
    with torch.no_grad():
        z = shallow.encode(X)
        b = X @ enc.weight.t()
        S_last = enc.S[-1] if enc.untied else enc.S
        theta_last = enc.threshold[-1] if enc.layer_thresholds else enc.threshold
        for _ in range(2):
            v = b + z @ S_last.t()
            z = torch.sign(v) * torch.clamp(v.abs() - theta_last, min=0)
        assert torch.allclose(deep.encode(X), z, atol=1e-12)
        if params:
            assert torch.equal(deep.encoder.S[:2], enc.S) and torch.equal(deep.encoder.threshold[:3], enc.threshold)
    with pytest.raises(ConfigError, match="warm-start"):
        shallow.encoder.warm_start_from(deep.encoder)  # deeper into shallower
    with pytest.raises(ConfigError, match="warm-start"):
        lista_from_dictionary(D, 0.1, 4).encoder.warm_start_from(lista_from_dictionary(D, 0.1, 2, untied=True).encoder)


def split(dtype=torch.float32):
    D, X = problem(700, dtype=dtype)
    Z = exact_codes(X, D, 0.1)
    return D, [(X[a:b], Z[a:b]) for a, b in ((0, 500), (500, 600), (600, 700))]


def test_plateau_schedule_halves_the_rate_until_it_has_decayed_away():
    D, parts = split()
    # a relative threshold of 0.99 is never met: every epoch is a plateau, so the rate halves after each;
    # 1, 1/2, 1/4, 1/8 of lr/T stay above 0.1·lr/T, the 4th halving (1/16) stops the training
    settings = LISTATraining(epochs=50, patience=50, batch_size=50, schedule="plateau", decay=0.5,
                             decay_patience=1, threshold=0.99, min_lr_ratio=0.1)
    model = lista_from_dictionary(D, 0.1, 2)
    _, epochs, best_epoch, stopped = train_lista(model, *parts[0], *parts[1], settings)
    assert epochs == 4 and 1 <= best_epoch <= 4 and stopped == "converged"
    settings = LISTATraining(epochs=50, patience=50, batch_size=50, schedule="plateau", decay=0.5,
                             decay_patience=2, threshold=0.99, min_lr_ratio=0.1)
    fit = train_lista(lista_from_dictionary(D, 0.1, 2), *parts[0], *parts[1], settings)
    assert (fit.epochs, fit.stopped) == (8, "converged")  # two plateau epochs per halving
    capped = train_lista(lista_from_dictionary(D, 0.1, 2), *parts[0], *parts[1],
                         dataclasses.replace(settings, epochs=5))
    assert (capped.epochs, capped.stopped) == (5, "epochs")  # the budget ran out before the rate decayed


def test_plateau_training_runs_until_the_rate_has_decayed_away():
    D, parts = split()
    settings = LISTATraining(epochs=200, patience=200, batch_size=50, lr=0.3, schedule="plateau", decay_patience=2,
                             min_lr_ratio=0.05)
    model, epochs, best_epoch, stopped = train_lista(lista_from_dictionary(D, 0.1, 2, **UNTIED), *parts[0], *parts[1],
                                                     settings)
    assert 10 < epochs < 200 and stopped == "converged"  # by the decayed rate (5 halvings), not the epoch cap
    assert best_epoch < epochs
    with torch.no_grad():
        error = relative_error(model.encode(parts[2][0]), parts[2][1])
    assert error < 0.3 * lista_start_error(D, parts)


def lista_start_error(D, parts) -> float:
    with torch.no_grad():
        return relative_error(lista_from_dictionary(D, 0.1, 2).encode(parts[2][0]), parts[2][1])


def test_the_untied_chain_warm_starts_and_falls():
    D, parts = split()
    settings = LISTATraining(epochs=30, patience=30, batch_size=50, schedule="plateau")
    results, deepest = lista_depth_chain(D, 0.1, [1, 2, 4], *parts, settings=settings, model_params=UNTIED)
    assert deepest.encoder.untied and tuple(deepest.encoder.S.shape) == (4, 24, 24)
    for shallow, deep in zip(results, results[1:], strict=False):
        assert deep.initial != pytest.approx(deep.untrained)
        assert deep.trained < shallow.trained
    assert results[-1].trained < 0.5 * results[-1].untrained


def test_a_one_cycle_schedule_run_to_its_end_counts_as_converged_a_constant_rate_does_not():
    D, parts = split()
    fit = train_lista(lista_from_dictionary(D, 0.1, 2), *parts[0], *parts[1],
                      LISTATraining(epochs=3, patience=10, batch_size=50, schedule="one_cycle"))
    assert (fit.epochs, fit.stopped) == (3, "converged")  # 30 steps: one-cycle, annealed to its end
    fit = train_lista(lista_from_dictionary(D, 0.1, 2), *parts[0], *parts[1],
                      LISTATraining(epochs=1, patience=10, batch_size=100, schedule="one_cycle"))
    assert (fit.epochs, fit.stopped) == (1, "epochs")  # 5 steps: too few for one-cycle, a constant rate


def test_training_settings_from_evaluation_params():
    settings = LISTATraining.from_params({"name": "lista_depth", "epochs": 7, "optimizer": "adam", "depths": [1]})
    assert (settings.epochs, settings.optimizer, settings.lr) == (7, "adam", LISTATraining().lr)
    with pytest.raises(ConfigError, match="decay"):
        LISTATraining.from_params({"decay": 2.0})


@pytest.mark.parametrize("field, value", [("schedule", "cosine"), ("decay", 1.0), ("decay", 0.0),
                                          ("decay_patience", 0), ("min_lr_ratio", 0.0), ("threshold", -0.1)])
def test_bad_schedule_settings_raise(field, value):
    with pytest.raises(ConfigError, match=field):
        LISTATraining(**{field: value}).validate()


def test_the_lista_depth_evaluation_trains_the_untied_variant_to_convergence(tmp_path):
    from sparseae.config import RunConfig
    from sparseae.runs.evaluations import EVALUATIONS, FinishedRun

    config = RunConfig.from_dict({"model": {"name": "sparse_coding", "n_components": 20, "sparsity_weight": 0.1},
                                  "data": {"name": "digits", "normalize": "l2"}}).validate()
    torch.manual_seed(0)
    run = FinishedRun(tmp_path, create_model("sparse_coding", 64, 20, sparsity_weight=0.1).eval(), config)
    function = EVALUATIONS["lista_depth"].function
    metrics = function(run, depths=[1, 2], skip=100, n_train=400, n_val=100, n_test=100, epochs=60, patience=60,
                       batch_size=50, lr=0.01, max_iter=200, optimizer="adam", schedule="plateau",
                       decay_patience=2, min_lr_ratio=0.1, untied=True, layer_thresholds=True)
    for T in (1, 2):
        assert 1 <= metrics[f"lista_best_epoch_T{T}"] <= metrics[f"lista_epochs_T{T}"] < 60
        assert metrics[f"lista_converged_T{T}"] == 1.0  # stopped before the 60-epoch budget
    assert metrics["lista_error_T2"] < metrics["lista_error_T1"] < 0.5
    assert sorted(p.name for p in (tmp_path / "lista_depth_chain").iterdir()) == ["T1", "T2"]
    again = function(run, depths=[1, 2], skip=100, n_train=400, n_val=100, n_test=100, epochs=60, patience=60,
                     batch_size=50, lr=0.01, max_iter=200, optimizer="adam", schedule="plateau",
                     decay_patience=2, min_lr_ratio=0.1, untied=True, layer_thresholds=True)
    assert again == metrics  # both depths loaded from the chain's folder, not trained again
    with pytest.raises(ConfigError, match="evaluate.untied"):
        function(run, untied="yes")
    with pytest.raises(ConfigError, match="schedule"):
        function(run, depths=[1], skip=100, n_train=400, n_val=100, n_test=100, schedule="cosine")


@pytest.mark.parametrize("repeat", [0, 1, 2])
def test_the_warm_start_can_repeat_any_trained_step_after_itself(repeat):
    D, X = problem(30)
    shallow = lista_from_dictionary(D, 0.1, 3, **UNTIED)
    perturb(shallow)
    deep = lista_from_dictionary(D, 0.1, 5, **UNTIED)
    deep.encoder.warm_start_from(shallow.encoder, repeat=repeat)
    enc = shallow.encoder
    order = list(range(repeat + 1)) + [repeat, repeat] + list(range(repeat + 1, 3))  # S_k of the 5 steps
    assert torch.equal(deep.encoder.S, torch.stack([enc.S[k] for k in order]))
    assert torch.equal(deep.encoder.threshold, torch.stack([enc.threshold[0]] + [enc.threshold[k + 1] for k in order]))
    with torch.no_grad():
        assert torch.allclose(deep.encode(X), manual_forward(deep.encoder, X), atol=1e-12)
    with pytest.raises(ConfigError, match="repeat"):
        deep.encoder.warm_start_from(shallow.encoder, repeat=3)


@pytest.mark.parametrize("params", [UNTIED, {"untied": True}, {"untied": True, "nonnegative": True}])
@pytest.mark.parametrize("shallow_steps", [1, 3])
def test_the_identity_warm_start_computes_exactly_the_shallower_code(params, shallow_steps):
    D, X = problem(30)
    shallow = lista_from_dictionary(D, 0.1, shallow_steps, **params)
    perturb(shallow)
    deep = lista_from_dictionary(D, 0.1, shallow_steps + 3, **params)
    deep.encoder.warm_start_from(shallow.encoder, identity=True)
    enc, new = shallow.encoder, deep.encoder
    assert torch.equal(new.S[:3], torch.zeros(3, 24, 24, dtype=new.S.dtype)) and torch.equal(new.S[3:], enc.S)
    if new.layer_thresholds:  # θ_0 for z⁰ and each added step, then the trained θ_1…
        assert torch.equal(new.threshold, torch.cat([enc.threshold[:1].expand(4, 24), enc.threshold[1:]]))
    with torch.no_grad():
        z = shallow.encode(X)
        assert (z != 0).any() and torch.equal(deep.encode(X), z)  # bit for bit, not just close
    loss = deep.loss(X, targets=2 * z).loss  # the zero steps still learn: their S_k get a gradient
    loss.backward()
    assert new.S.grad[:3].abs().sum() > 0
    with pytest.raises(ConfigError, match="identity"):
        new.warm_start_from(enc, repeat=0, identity=True)
    with pytest.raises(ConfigError, match="identity"):
        lista_from_dictionary(D, 0.1, 4).encoder.warm_start_from(lista_from_dictionary(D, 0.1, 2).encoder,
                                                                  identity=True)


def test_the_chain_keeps_the_warm_start_with_the_lowest_validation_error():
    from sparseae.evaluate.lista import _warm_start

    D, parts = split()
    previous = lista_from_dictionary(D, 0.1, 3, **UNTIED)
    perturb(previous, seed=3)
    errors = []
    for step in range(3):
        model = lista_from_dictionary(D, 0.1, 6, **UNTIED)
        model.encoder.warm_start_from(previous.encoder, repeat=step)
        with torch.no_grad():
            errors.append(relative_error(model.encode(parts[1][0]), parts[1][1]))
    model = lista_from_dictionary(D, 0.1, 6, **UNTIED)
    chosen = _warm_start(model, previous, *parts[1])
    assert chosen == (min(range(3), key=errors.__getitem__), ())
    with torch.no_grad():
        assert relative_error(model.encode(parts[1][0]), parts[1][1]) == pytest.approx(min(errors), rel=1e-12)
    tied = lista_from_dictionary(D, 0.1, 4)
    assert _warm_start(tied, lista_from_dictionary(D, 0.1, 2), *parts[1]) == (None, ())


def test_the_warm_start_screen_rejects_copies_whose_codes_leave_the_lasso_ball():
    """Seed 1 of lista_depth_mnist (session 19): copies of an early step passed validation, then blew up on one
    test digit. A copy whose code leaves the ball ‖z‖₁ ≤ ‖x‖²/(4λ) on a screened row is no longer a candidate."""
    from sparseae.evaluate.lista import _warm_start, max_l1_ratio

    D, parts = split()
    (X, _), (X_val, Z_val) = parts[0], parts[1]
    previous = lista_from_dictionary(D, 0.1, 2, **UNTIED)
    perturb(previous, seed=3)
    with torch.no_grad():
        previous.encoder.S[0] += 2.0 * torch.eye(24, dtype=previous.encoder.S.dtype)  # grows z: fine once, not 4 times
    ratios, errors = [], []
    for step in range(2):
        model = lista_from_dictionary(D, 0.1, 5, **UNTIED)
        model.encoder.warm_start_from(previous.encoder, repeat=step)
        with torch.no_grad():
            ratios.append(max_l1_ratio(model, torch.cat([X_val, X]), 0.1, batch=64))  # in chunks: the same max
            assert ratios[-1] == max_l1_ratio(model, torch.cat([X_val, X]), 0.1)
            errors.append(relative_error(model.encode(X_val), Z_val))
    assert ratios[0] > 20 * ratios[1] and errors[0] > errors[1]
    bound = (ratios[0] * ratios[1]) ** 0.5
    model = lista_from_dictionary(D, 0.1, 5, **UNTIED)
    assert _warm_start(model, previous, X_val, Z_val, lam=0.1, screen=X, bound=bound) == (1, (0,))
    # every copy rejected: the identity warm start, which computes the shallower code exactly
    assert _warm_start(model, previous, X_val, Z_val, lam=0.1, screen=X, bound=1e-9) == (None, (0, 1))
    with torch.no_grad():
        assert torch.equal(model.encode(X_val), previous.encode(X_val))


def test_the_lasso_l1_bound_holds_for_every_dictionary_and_is_tight():
    from sparseae.coding import lasso_l1_bound

    for seed, lam in ((0, 0.05), (1, 0.1), (2, 0.5)):
        g = torch.Generator().manual_seed(seed)
        D = torch.randn(12, 30, generator=g, dtype=torch.float64) * (1 + seed)  # any scale, not unit atoms
        X = torch.randn(50, 12, generator=g, dtype=torch.float64)
        Z = exact_codes(X, D, lam)
        bound = lasso_l1_bound(X, lam)
        assert bound.shape == (50,) and (Z.abs().sum(dim=1) <= bound * (1 + 1e-9)).all()
        assert (Z.abs().sum(dim=1) > 0.05 * bound).any()
    # D = I and x = ±2λ: z* = soft(x, λ) = ±λ, and λ‖z*‖₁ = nλ² = ‖x‖²/4, the bound exactly
    x = 0.2 * torch.tensor([[1.0, -1.0, 1.0, 1.0]], dtype=torch.float64)
    Z = exact_codes(x, torch.eye(4, dtype=torch.float64), 0.1)
    assert float(Z.abs().sum()) == pytest.approx(float(lasso_l1_bound(x, 0.1)), rel=1e-9)
    with pytest.raises(ConfigError, match="lam"):
        lasso_l1_bound(x, 0.0)


def test_the_stability_bound_is_part_of_the_chain_key(tmp_path, monkeypatch):
    import sparseae.evaluate.lista as lista_module

    D, parts = split()
    settings = LISTATraining(epochs=1, patience=1, batch_size=50)
    folder = tmp_path / "chain"
    lista_depth_chain(D, 0.1, [1], *parts, settings=settings, model_params=UNTIED, checkpoints=folder)
    trained = []
    real_train = lista_module.train_lista
    monkeypatch.setattr(lista_module, "train_lista", lambda model, *a: trained.append(model.encoder.n_steps)
                        or real_train(model, *a))
    lista_depth_chain(D, 0.1, [1], *parts, settings=settings, model_params=UNTIED, checkpoints=folder)
    assert trained == []  # the same chain: loaded
    lista_depth_chain(D, 0.1, [1], *parts, settings=settings, model_params=UNTIED, checkpoints=folder,
                      stability_bound=None)
    assert trained == [1]  # another screen: another chain
    with pytest.raises(ConfigError, match="stability_bound"):
        lista_depth_chain(D, 0.1, [1], *parts, settings=settings, stability_bound=0.0)


def test_a_warm_start_no_epoch_improves_halves_the_rate_after_every_epoch():
    D, parts = split()
    trained, *_ = train_lista(lista_from_dictionary(D, 0.1, 2, **UNTIED), *parts[0], *parts[1],
                              LISTATraining(epochs=40, patience=40, batch_size=50, lr=0.05, schedule="plateau"))
    with torch.no_grad():
        start = relative_error(trained.encode(parts[1][0]), parts[1][1])
    # Adam at lr 5 spoils any start: no epoch beats it, so each one halves the rate at once (not after
    # decay_patience = 5 epochs); 5, 2.5, 1.25, 0.625 stay above 0.1·5, the 4th halving (0.3125) stops it
    settings = LISTATraining(epochs=50, patience=50, batch_size=50, lr=5.0, optimizer="adam", schedule="plateau",
                             decay_patience=5, min_lr_ratio=0.1)
    model, epochs, best_epoch, stopped = train_lista(trained, *parts[0], *parts[1], settings)
    assert (epochs, best_epoch, stopped) == (4, 0, "converged")
    with torch.no_grad():
        assert relative_error(model.encode(parts[1][0]), parts[1][1]) == start  # the start is kept


def test_a_depth_that_trains_worse_than_the_shallower_computes_its_code_instead():
    from sparseae.evaluate.lista import _keep_the_shallower_if_better

    D, parts = split()
    previous = lista_from_dictionary(D, 0.1, 2, **UNTIED)
    perturb(previous, seed=1)
    worse = lista_from_dictionary(D, 0.1, 4, **UNTIED)
    with torch.no_grad():
        worse.encoder.S.mul_(3.0)  # a spoiled deeper network
        assert relative_error(worse.encode(parts[1][0]), parts[1][1]) > relative_error(
            previous.encode(parts[1][0]), parts[1][1])
    assert _keep_the_shallower_if_better(worse, previous, *parts[1]) is True
    with torch.no_grad():
        assert torch.equal(worse.encode(parts[2][0]), previous.encode(parts[2][0]))
    better = lista_from_dictionary(D, 0.1, 4, **UNTIED)
    better.encoder.warm_start_from(previous.encoder, identity=True)  # ties count as not worse: kept as it is
    S = better.encoder.S.detach().clone()
    assert _keep_the_shallower_if_better(better, previous, *parts[1]) is False
    assert torch.equal(better.encoder.S, S)


def test_an_interrupted_chain_resumes_from_its_saved_depths(tmp_path, monkeypatch):
    import sparseae.evaluate.lista as lista_module

    D, parts = split()
    settings = LISTATraining(epochs=3, patience=3, batch_size=50)
    full, deepest = lista_depth_chain(D, 0.1, [1, 2, 3], *parts, settings=settings, model_params=UNTIED)
    folder = tmp_path / "chain"
    first, _ = lista_depth_chain(D, 0.1, [1, 2], *parts, settings=settings, model_params=UNTIED, checkpoints=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["T1", "T2"]
    trained = []
    real_train = lista_module.train_lista
    monkeypatch.setattr(lista_module, "train_lista", lambda model, *a: trained.append(model.encoder.n_steps)
                        or real_train(model, *a))
    seen = []
    resumed, resumed_deepest = lista_depth_chain(D, 0.1, [1, 2, 3], *parts, settings=settings, model_params=UNTIED,
                                                 checkpoints=folder, report=seen.append)
    assert trained == [3] and [r.T for r in seen] == [1, 2, 3]  # T = 1, 2 loaded, only T = 3 trained
    assert resumed[:2] == first
    assert [r.trained for r in resumed] == pytest.approx([r.trained for r in full], rel=1e-6)
    with torch.no_grad():
        assert torch.allclose(resumed_deepest.encode(parts[2][0]), deepest.encode(parts[2][0]), atol=1e-6)
    # another chain (other settings, other rows, or other depths before T) retrains instead of loading
    trained.clear()
    lista_depth_chain(D, 0.1, [1], *parts, settings=LISTATraining(epochs=2, patience=3, batch_size=50),
                      model_params=UNTIED, checkpoints=folder)
    lista_depth_chain(D, 0.1, [2], *parts, settings=settings, model_params=UNTIED, checkpoints=folder)
    assert trained == [1, 2]


def test_shifted_copies_add_training_digits_moved_by_one_pixel(tmp_path):
    from sparseae.config import RunConfig
    from sparseae.data.images import shifted_copies
    from sparseae.errors import DataError
    from sparseae.runs.evaluations import FinishedRun
    from sparseae.runs.evaluations.lista import lista_rows

    def run_on(data):
        config = RunConfig.from_dict({"model": {"name": "sparse_coding", "n_components": 20},
                                      "data": data}).validate()
        return FinishedRun(tmp_path, create_model("sparse_coding", 64 if data["name"] == "digits" else 2, 20), config)

    train, val, test = lista_rows(run_on({"name": "digits"}), None, 100, 400, 100, 100, 0, shifted_copies=2)
    assert (len(train), len(val), len(test)) == (1200, 100, 100)
    plain, _, _ = lista_rows(run_on({"name": "digits"}), None, 100, 400, 100, 100, 0)
    assert torch.equal(train[:400], plain)
    images = plain.numpy().reshape(-1, 8, 8)
    moved = train[400:].numpy().reshape(2, 400, 8, 8)
    for c in range(2):
        for i in range(400):  # each copy is its digit shifted by (dy, dx) in {-1, 0, 1}², zeros moved in
            padded = np.pad(images[i], 1)
            assert any(np.array_equal(moved[c, i], padded[1 - dy:9 - dy, 1 - dx:9 - dx])
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    assert not np.array_equal(moved[0], images) and not np.array_equal(moved[0], moved[1])
    with pytest.raises(ConfigError, match="shifted_copies needs image data"):
        lista_rows(run_on({"name": "spiral", "n_samples": 400}), None, 0, 200, 50, 50, 0, shifted_copies=1)
    with pytest.raises(DataError, match="8×8 = 64 pixels"):
        shifted_copies(np.zeros((3, 60)), (8, 8), 1)
    with pytest.raises(ConfigError, match="copies"):
        shifted_copies(np.zeros((3, 64)), (8, 8), -1)


def test_safeguarded_codes_replace_the_rows_that_fail_the_lasso_certificate():
    from sparseae.coding import fista, lasso_l1_bound, lasso_objective

    D, X = problem(40)
    X = torch.cat([X, 0.02 * X[:10]])  # 40 rows a spoiled net blows up, 10 it leaves at zero
    model = lista_from_dictionary(D, 0.1, 3, **UNTIED)
    with torch.no_grad():
        model.encoder.S.mul_(6.0)  # every step amplifies: a deep net off its training rows
        raw = model.encode(X)
    codes, replaced = model.safeguarded_encode(X, fallback_iter=30)
    outside = raw.abs().sum(dim=1) > lasso_l1_bound(X, 0.1)
    assert outside[:40].all() and not outside[40:].any()
    assert torch.equal(replaced, outside)  # each blown-up code loses to FISTA's on the Lasso objective
    solved = fista(X[:40], D, 0.1, L=model.lipschitz, max_iter=30, stop="none").codes
    assert torch.equal(codes[:40], solved) and torch.equal(codes[40:], raw[40:])
    assert (lasso_objective(X, D, codes, 0.1) <= lasso_objective(X, D, raw, 0.1)).all()
    Z = exact_codes(X, D, 0.1)
    assert relative_error(codes, Z) < 0.1 < relative_error(raw, Z)
    healthy = lista_from_dictionary(D, 0.1, 3, **UNTIED)  # ISTA's iterates: inside the ball, left alone
    same, none = healthy.safeguarded_encode(X, fallback_iter=30)
    with torch.no_grad():
        assert not none.any() and torch.equal(same, healthy.encode(X))
    with pytest.raises(ConfigError, match="fallback_iter"):
        model.safeguarded_encode(X, fallback_iter=0)


def test_the_safeguarded_chain_scores_each_depth_both_ways():
    D, parts = split()
    results, _ = lista_depth_chain(D, 0.1, [1, 2], *parts, settings=LISTATraining(epochs=2, batch_size=50),
                                   model_params=UNTIED, safeguard=True)
    for result in results:  # healthy nets: no row falls back, the two errors agree
        assert result.flagged == 0 and result.safeguarded == pytest.approx(result.trained, rel=1e-6)
    plain, _ = lista_depth_chain(D, 0.1, [1], *parts, settings=LISTATraining(epochs=2, batch_size=50),
                                 model_params=UNTIED)
    assert plain[0].safeguarded is None and plain[0].flagged is None
