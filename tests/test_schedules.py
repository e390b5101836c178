"""Training schedules from ``train.schedule`` (sparseae.train.callbacks): their values at given steps
(exact numbers), strict config keys, and one short training per schedule showing its effect."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparseae.config import RunConfig
from sparseae.errors import ConfigError
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.train.callbacks import (
    DeadLatentResampling,
    LearningRateSchedule,
    check_schedule,
    warmup_decay_factor,
)
from sparseae.train.trainer import Callback


def zipf_data(n: int = 2048, d: int = 16, n_true: int = 32, seed: int = 0) -> np.ndarray:
    """Sparse sums of ``n_true`` unit directions in ``d`` dimensions, firing with probability 0.5/i^0.8."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_true, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    active = rng.random((n, n_true)) < 0.5 / np.arange(1, n_true + 1) ** 0.8
    return ((active * rng.uniform(0.5, 1.5, size=(n, n_true))) @ atoms).astype(np.float32)


class Spy(Callback):
    """Records, after each step s, what the schedules set for step s + 1."""

    def __init__(self, read) -> None:
        self.read, self.values = read, {}

    def on_epoch_start(self, epoch, model):
        self.values.setdefault(0, self.read(model))

    def on_step(self, step, model):
        self.values[step] = self.read(model)


# ------------------------------------------------------------------------------------ values

def test_learning_rate_factors_at_given_steps():
    # warm-up 4 steps, then linear to 0.1 at step 14
    assert [warmup_decay_factor(s, 4, "linear", 14, 0.1) for s in (1, 2, 4, 9, 14, 20)] == \
        pytest.approx([0.25, 0.5, 1.0, 1.0 - 0.9 * 0.5, 0.1, 0.1], abs=1e-15)
    # cosine: the middle of the decay is halfway between 1 and min_factor
    assert warmup_decay_factor(9, 4, "cosine", 14, 0.1) == pytest.approx(0.55, abs=1e-15)
    assert warmup_decay_factor(6, 4, "cosine", 14, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)), abs=1e-15)
    assert warmup_decay_factor(3, 0, "none", 14, 0.1) == 1.0


def test_learning_rate_schedule_sets_each_group_before_each_step():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 0.2}, {"params": [model.bias], "lr": 0.1}])
    schedule = LearningRateSchedule(warmup_steps=2, decay="linear", min_factor=0.0)
    schedule.bind(model, optimizer, step=0, total_steps=6)
    schedule.on_epoch_start(1, model)
    seen = [[g["lr"] for g in optimizer.param_groups]]
    for step in range(1, 6):
        schedule.on_step(step, model)
        seen.append([g["lr"] for g in optimizer.param_groups])
    # steps 1..6: 0.5, 1, 0.75, 0.5, 0.25, 0 of each group's rate
    expected = [0.1, 0.05, 0.2, 0.1, 0.15, 0.075, 0.1, 0.05, 0.05, 0.025, 0.0, 0.0]
    assert [rate for rates in seen for rate in rates] == pytest.approx(expected, abs=1e-15)


def test_sparsity_warmup_and_k_annealing_values_during_a_training():
    X = zipf_data(n=256)
    groups = {"kind": "disjoint", "n_components": 24, "group_size": 4}
    model = create_model("topk_sae", 16, 24, k=2, aux_weight=0.0, groups=groups, group_weight=0.5)
    spy = Spy(lambda m: (m.encoder.k, m.penalties["group"].weight))
    config = TrainConfig(max_epochs=2, batch_size=64, threads=1,
                         schedule={"k_anneal": {"k_start": 10, "steps": 4},
                                   "sparsity_warmup": {"steps": 5, "start": 0.2}})
    train(model, X, config, callbacks=[spy])
    # k at step s: round(10 + (2 − 10)·min(1, (s − 1)/4)); weight: 0.5·(0.2 + 0.8·min(1, s/5))
    expected = {s - 1: (round(10 - 8 * min(1, (s - 1) / 4)), 0.5 * (0.2 + 0.8 * min(1, s / 5))) for s in range(1, 9)}
    assert [spy.values[s][0] for s in range(8)] == [expected[s][0] for s in range(8)] == [10, 8, 6, 4, 2, 2, 2, 2]
    assert [spy.values[s][1] for s in range(8)] == pytest.approx([expected[s][1] for s in range(8)], abs=1e-15)
    # after training the model has its own k and weight again
    assert model.encoder.k == 2 and model.penalties["group"].weight == 0.5


def test_schedule_keys_are_strict():
    assert check_schedule(None) == {}
    for bad, words in [({"warmup": {}}, "train.schedule.warmup"), ({"lr": {"warmup": 3}}, "lr.warmup"),
                       ({"lr": {"decay": "step"}}, "decay"), ({"lr": {"steps": 5, "samples": 10}}, "both"),
                       ({"k_anneal": {"steps": 5}}, "k_start"), ({"resample": {"window": 5}}, "every"),
                       ({"sparsity_warmup": {"steps": 0}}, "steps"), ({"lr": [1]}, "mapping")]:
        with pytest.raises(ConfigError, match=words):
            TrainConfig(schedule=bad).validate()
    with pytest.raises(ConfigError, match="lbfgs"):
        train(create_model("topk_sae", 4, 4, k=1), np.zeros((8, 4), np.float32),
              TrainConfig(optimizer="lbfgs", schedule={"lr": {"warmup_steps": 2}}))
    with pytest.raises(ConfigError, match="TopK"):
        train(create_model("sparse_ae_l1", 4, 4), np.zeros((8, 4), np.float32),
              TrainConfig(max_epochs=1, schedule={"k_anneal": {"k_start": 2, "steps": 2}}))
    # through a run config's train section
    config = RunConfig.from_dict({"model": {"name": "topk_sae", "k": 4}, "data": {"name": "digits"},
                                  "train": {"schedule": {"lr": {"warmup_steps": 10, "decay": "cosine"}}}})
    assert config.train_config().schedule == {"lr": {"warmup_steps": 10, "decay": "cosine"}}
    with pytest.raises(ConfigError, match="resample.evry"):
        RunConfig.from_dict({"model": {"name": "topk_sae"}, "data": {"name": "digits"},
                             "train": {"schedule": {"resample": {"evry": 10}}}})


# ----------------------------------------------------------------------------------- effects

def test_learning_rate_decay_ends_lower_than_a_constant_rate():
    """Adam at a rate too high to settle (0.2): a cosine decay to 0 over the run ends with a lower
    reconstruction error on the training set."""
    X = zipf_data(n=1024)
    final = {}
    for name, schedule in (("constant", {}), ("cosine", {"lr": {"warmup_steps": 8, "decay": "cosine"}})):
        torch.manual_seed(0)
        model = create_model("topk_sae", 16, 32, k=3, aux_weight=0.0)
        train(model, X, TrainConfig(max_epochs=3, batch_size=64, learning_rate=0.2, threads=1, schedule=schedule))
        model.eval()
        with torch.no_grad():
            final[name] = float(model.loss(torch.from_numpy(X)).terms["reconstruction"])
    # measured: constant 0.58, cosine 0.41
    assert final["cosine"] < 0.85 * final["constant"], final


def test_resampling_revives_latents_killed_at_initialisation():
    """40 of 48 latents start dead (encoder bias −10: no gradient ever reaches them). Resampling
    every 32 steps brings many back towards badly reconstructed inputs, and the reconstruction
    improves; without it they stay dead."""
    X = zipf_data()
    x = torch.from_numpy(X)
    outcome = {}
    for name, schedule in (("plain", {}), ("resample", {"resample": {"every": 32, "window": 32}})):
        torch.manual_seed(0)
        model = create_model("topk_sae", 16, 48, k=3, aux_weight=0.0)
        with torch.no_grad():
            model.encoder.bias[8:] = -10.0
        train(model, X, TrainConfig(max_epochs=3, batch_size=64, learning_rate=1e-2, threads=1, schedule=schedule))
        model.eval()
        with torch.no_grad():
            dead = int(((model.encode(x) > 0).sum(dim=0) == 0).sum())
            fvu = float(((x - model(x)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
        outcome[name] = (dead, fvu)
    # measured: plain 40 dead, FVU 0.41; resampled 24 dead, FVU 0.27
    assert outcome["plain"][0] == 40
    assert outcome["resample"][0] <= 30 and outcome["resample"][1] < 0.8 * outcome["plain"][1], outcome


def test_resampling_resets_the_chosen_latents_and_their_adam_state():
    X = zipf_data(n=512)
    torch.manual_seed(0)
    model = create_model("gated_sae", 16, 12)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model.loss(torch.from_numpy(X[:64])).loss
    loss.backward()
    optimizer.step()
    from sparseae.train.batches import BatchSource

    callback = DeadLatentResampling(every=1, window=1, n_inputs=256, scale=0.2,
                                    source=BatchSource(X, torch.device("cpu")))
    callback.bind(model, optimizer, step=0, total_steps=10)
    alive_rows = model.encoder.weight[2:].detach().clone()
    mean_norm = float(alive_rows.norm(dim=1).mean())
    callback.resample(torch.tensor([0, 1]), step=1)
    callback.end()
    assert torch.equal(model.encoder.weight[2:], alive_rows)
    torch.testing.assert_close(model.encoder.weight[:2].norm(dim=1), torch.full((2,), 0.2 * mean_norm))
    torch.testing.assert_close(model.decoder.weight[:, :2].norm(dim=0), torch.ones(2))
    # the encoder row points where the decoder column does (the same input direction)
    cosine = torch.nn.functional.cosine_similarity(model.encoder.weight[:2], model.decoder.weight[:, :2].t())
    torch.testing.assert_close(cosine, torch.ones(2))
    for name in ("bias", "r_mag", "b_mag"):
        assert torch.equal(getattr(model.encoder, name)[:2], torch.zeros(2))
    state = optimizer.state[model.encoder.weight]
    assert float(state["exp_avg"][:2].abs().max()) == 0 and float(state["exp_avg_sq"][:2].abs().max()) == 0
    assert float(state["exp_avg"][2:].abs().max()) > 0
    assert float(optimizer.state[model.decoder.weight_]["exp_avg"][:, :2].abs().max()) == 0
    # the gated model's frozen decoder copy follows
    assert torch.equal(model.penalties["gate_aux"].frozen_weight, model.decoder.weight)
