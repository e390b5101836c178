"""The training loop: it learns, matches PCA when it should, resumes exactly, stops cleanly."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sparseae.errors import CheckpointError, ConfigError, DataError, DivergenceError
from sparseae.evaluate import explained_variance, sparsity_stats
from sparseae.io import load_model
from sparseae.models import create_model
from sparseae.train import Callback, TrainConfig, train
from sparseae.train.checkpoint import checkpoint_path


def state_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sparse_kl_autoencoder_learns_and_becomes_sparse(digits):
    X, _ = digits
    model = create_model("sparse_ae_kl", 64, 32, sparsity_target=0.05, weight_decay=1e-4)
    with torch.no_grad():
        initial = model.loss(torch.from_numpy(X)).loss.item()
    result = train(model, X, TrainConfig(optimizer="lbfgs", lbfgs_max_iter=150))
    losses = [r["train_loss"] for r in result.history]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.3 * initial
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(X))
        X_hat = model(torch.from_numpy(X))
    rho_hat = sparsity_stats(codes.numpy())["rho_hat"]
    assert abs(rho_hat.mean() - 0.05) < 0.03          # the KL term pulls ρ̂ to ρ
    assert explained_variance(X, X_hat.numpy()) > 0.6


def test_l1_autoencoder_gives_exact_zeros_and_reconstructs(digits):
    X, _ = digits
    model = create_model("sparse_ae_l1", 64, 128, sparsity_weight=0.05)
    result = train(model, X, TrainConfig(max_epochs=15, learning_rate=3e-3, batch_size=64))
    assert result.history[-1]["train_loss"] < 0.6 * result.history[0]["train_loss"]
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(X)).numpy()
        X_hat = model(torch.from_numpy(X)).numpy()
    stats = sparsity_stats(codes)
    assert stats["active_fraction"] < 0.35             # most units are exactly zero per sample
    assert explained_variance(X, X_hat) > 0.6
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(128))


def test_linear_autoencoder_matches_pca(digits):
    """§14.1: a linear AE with squared error spans the PCA subspace, so its error equals PCA's."""
    from sklearn.decomposition import PCA

    X, _ = digits
    k = 8
    pca = PCA(k).fit(X)
    pca_error = ((X - pca.inverse_transform(pca.transform(X))) ** 2).sum(1).mean()
    model = create_model("linear_ae", 64, k)
    train(model, X, TrainConfig(optimizer="lbfgs", lbfgs_max_iter=400, lbfgs_iter_per_epoch=400))
    with torch.no_grad():
        ae_error = ((torch.from_numpy(X) - model(torch.from_numpy(X))) ** 2).sum(1).mean().item()
    assert ae_error == pytest.approx(pca_error, rel=2e-3)


def test_same_seed_same_weights(digits):
    X, _ = digits
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = create_model("sparse_ae_l1", 64, 16)
        train(model, X[:300], TrainConfig(max_epochs=2, batch_size=32, random_state=5))
        runs.append(state_of(model))
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=0, atol=0)


class Interrupt(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step(self, step, model):
        if step == self.at_step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_resume_after_interruption_equals_uninterrupted(digits, tmp_path, optimizer):
    X, _ = digits
    X = X[:400]
    config = TrainConfig(optimizer=optimizer, max_epochs=4, batch_size=50,
                         learning_rate=1e-2 if optimizer == "adam" else 1.0, lbfgs_max_iter=40,
                         lbfgs_iter_per_epoch=10, validation_fraction=0.1)
    torch.manual_seed(1)
    reference = create_model("sparse_ae_kl", 64, 10, kl_momentum=0.5)
    initial = state_of(reference)
    full = train(reference, X, config)

    interrupted = create_model("sparse_ae_kl", 64, 10, kl_momentum=0.5)
    interrupted.load_state_dict(initial)
    stop_at = 2 * 8 + 3 if optimizer == "adam" else 3    # mid-epoch 3 / in L-BFGS "epoch" 3
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, X, config, run_dir=tmp_path, callbacks=[Interrupt(stop_at)])
    assert json.loads((checkpoint_path(tmp_path) / "config.json").read_text())["extra"]["epoch"] == 2

    resumed = create_model("sparse_ae_kl", 64, 10, kl_momentum=0.5)   # fresh weights, restored from disk
    result = train(resumed, X, config, run_dir=tmp_path, resume=True)
    for key, value in state_of(reference).items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["train_loss"] == pytest.approx(full.history[-1]["train_loss"], rel=1e-5)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, numpy as np, torch
    from sklearn.datasets import load_digits
    from sparseae.models import create_model
    from sparseae.train import Callback, TrainConfig, train
    X = (load_digits().data[:500] / 16).astype(np.float32)
    class Kill(Callback):
        def on_step(self, step, model):
            if step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)
    torch.manual_seed(0)
    model = create_model("sparse_ae_l1", 64, 20)
    config = TrainConfig(max_epochs=3, batch_size=50, learning_rate=1e-2)
    train(model, X, config, run_dir=sys.argv[1], resume=True,
          callbacks=[Kill()] if int(sys.argv[2]) > 0 else [])
""")


def _kill_script_run_in_process(digits, run_dir):
    """KILL_SCRIPT's run without the kill, in this process (one thread, as the script's)."""
    X = digits[0][:500]
    torch.manual_seed(0)
    model = create_model("sparse_ae_l1", 64, 20)
    train(model, X, TrainConfig(max_epochs=3, batch_size=50, learning_rate=1e-2), run_dir=run_dir, resume=True)


def test_sigkill_mid_epoch_then_resume(digits, tmp_path):
    """A real kill -9 in the middle of epoch 2: the checkpoint of epoch 1 survives intact and
    the resumed run ends with the same weights as a run never killed. Only the killed run needs a
    process of its own; the resume and the straight run are the same script's run in this one."""
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "15"], env=env)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "a" / "checkpoint" / "config.json").read_text())["extra"]["epoch"] == 1
    _kill_script_run_in_process(digits, tmp_path / "a")
    _kill_script_run_in_process(digits, tmp_path / "b")
    assert json.loads((tmp_path / "a" / "checkpoint" / "config.json").read_text())["extra"]["epoch"] == 3
    resumed, straight = load_model(tmp_path / "a" / "checkpoint"), load_model(tmp_path / "b" / "checkpoint")
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_divergence_stops_cleanly_and_keeps_last_good_state(digits, tmp_path):
    X, _ = digits
    X = X[:300].copy()

    class Poison(Callback):
        def on_epoch_end(self, epoch, record, model):
            if epoch == 2:
                with torch.no_grad():
                    model.encoder.weight[0, 0] = float("nan")

    model = create_model("sparse_ae_l1", 64, 8)
    with pytest.raises(DivergenceError, match="NaN/inf in epoch 3.*after epoch 2"):
        train(model, X, TrainConfig(max_epochs=5, batch_size=50), run_dir=tmp_path, callbacks=[Poison()])
    # the in-memory model is back to its last finite state... (the poisoned one of epoch 2's end)
    saved = load_model(checkpoint_path(tmp_path))
    assert all(torch.isfinite(v).all() for v in saved.state_dict().values())
    assert json.loads((checkpoint_path(tmp_path) / "config.json").read_text())["extra"]["epoch"] == 2


def test_divergence_from_learning_rate(digits):
    X, _ = digits
    model = create_model("linear_ae", 64, 8)
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        train(model, X * 1e3, TrainConfig(optimizer="sgd", learning_rate=10.0, max_epochs=3, batch_size=64))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_early_stopping_restores_best_weights(digits):
    X, _ = digits

    class Record(Callback):
        def __init__(self):
            self.states = {}

        def on_epoch_end(self, epoch, record, model):
            self.states[epoch] = state_of(model)

    recorder = Record()
    model = create_model("sparse_ae_l1", 64, 16)
    # a huge learning rate makes validation loss bounce, so the best epoch is not the last
    result = train(model, X, TrainConfig(optimizer="sgd", learning_rate=0.5, max_epochs=30, batch_size=32,
                                         validation_fraction=0.2, n_iter_no_change=3), callbacks=[recorder])
    val = [r["val_loss"] for r in result.history]
    assert result.best_epoch == int(np.argmin(val)) + 1
    for key, value in recorder.states[result.best_epoch].items():
        torch.testing.assert_close(model.state_dict()[key], value)
    if result.stop_reason == "early_stopping":
        assert len(val) - result.best_epoch == 3


def test_resuming_a_run_that_stopped_early_trains_no_further(digits, tmp_path):
    """A finished early-stopped run, resumed, ends at once with its best weights and history."""
    X, _ = digits
    config = TrainConfig(optimizer="sgd", learning_rate=0.5, max_epochs=40, batch_size=32,
                         validation_fraction=0.2, n_iter_no_change=2)
    torch.manual_seed(0)
    first = create_model("sparse_ae_l1", 64, 16)
    done = train(first, X, config, run_dir=tmp_path)
    assert done.stop_reason == "early_stopping" and len(done.history) < 40
    again = create_model("sparse_ae_l1", 64, 16)
    resumed = train(again, X, config, run_dir=tmp_path, resume=True)
    assert resumed.stop_reason == "early_stopping"
    assert len(resumed.history) == len(done.history) and resumed.best_epoch == done.best_epoch
    for key, value in state_of(first).items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_trains_from_a_memory_map(digits, tmp_path):
    X, _ = digits
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    torch.manual_seed(0)
    a = create_model("sparse_ae_l1", 64, 16)
    init = state_of(a)
    train(a, mm, TrainConfig(max_epochs=2, batch_size=64))
    b = create_model("sparse_ae_l1", 64, 16)
    b.load_state_dict(init)
    train(b, X, TrainConfig(max_epochs=2, batch_size=64))
    for key, value in state_of(b).items():  # same order, same batches: the same result
        torch.testing.assert_close(a.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_bad_input_and_options(digits, tmp_path):
    X, _ = digits
    model = create_model("linear_ae", 64, 4)
    bad = X[:20].copy()
    bad[3, 5] = np.nan
    with pytest.raises(DataError, match="NaN or inf.*row 3"):
        train(model, bad)
    with pytest.raises(DataError, match="expects 64"):
        train(model, X[:, :10])
    with pytest.raises(DataError, match="empty"):
        train(model, X[:0])
    with pytest.raises(DataError, match="non-numeric"):
        train(model, [["a"] * 64])
    with pytest.raises(ConfigError, match="optimizer"):
        train(model, X, TrainConfig(optimizer="adagrad"))
    with pytest.raises(ConfigError, match="learning_rate"):
        train(model, X, TrainConfig(learning_rate=-1))
    with pytest.raises(ConfigError, match="unknown training option 'epochs'"):
        TrainConfig.from_dict({"epochs": 3})
    train(create_model("linear_ae", 64, 4), X[:100], TrainConfig(max_epochs=1), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="belongs to model 'linear_ae'"):
        train(create_model("sparse_ae_l1", 64, 4), X[:100], TrainConfig(max_epochs=1),
              run_dir=tmp_path, resume=True)


def test_labels_follow_their_rows_from_a_memory_map(digits, tmp_path):
    """Rows of a memmap are read in file order; their labels must be permuted with them."""
    X, y = digits
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    config = TrainConfig(optimizer="sgd", learning_rate=0.05, max_epochs=2, batch_size=32, device="cpu")
    torch.manual_seed(0)
    a = create_model("drsae", 64, 16, n_steps=2, classification_weight=1.0)
    b = create_model("drsae", 64, 16, n_steps=2, classification_weight=1.0)
    b.load_state_dict(a.state_dict())
    train(a, mm, config, y=y)
    train(b, X, config, y=y)
    for key, value in state_of(b).items():
        torch.testing.assert_close(a.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_path_trains(digits):
    """``amp``: bf16 autocast. Tested on the CPU (autocast is device-generic); weights stay float32."""
    X, _ = digits
    torch.manual_seed(0)
    model = create_model("sparse_ae_l1", 64, 32, sparsity_weight=0.05)
    result = train(model, X, TrainConfig(max_epochs=4, learning_rate=3e-3, batch_size=64, amp=True, device="cpu"))
    losses = [r["train_loss"] for r in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(amp=True, dtype="float64").validate()


def test_learning_rate_decays_per_epoch_and_resumes_exactly(digits, tmp_path):
    X, _ = digits
    config = TrainConfig(optimizer="sgd", learning_rate=0.1, lr_decay=0.5, max_epochs=3, batch_size=64,
                         device="cpu")
    torch.manual_seed(0)
    a = create_model("drsae", 64, 16, n_steps=3)
    init = state_of(a)
    history = train(a, X, config).history
    assert [r["learning_rate"] for r in history] == pytest.approx([0.1, 0.05, 0.025])
    b = create_model("drsae", 64, 16, n_steps=3)
    b.load_state_dict(init)
    train(b, X, TrainConfig(**{**config.__dict__, "max_epochs": 2}), run_dir=tmp_path)
    train(b, X, config, run_dir=tmp_path, resume=True)
    for key, value in state_of(a).items():
        torch.testing.assert_close(b.state_dict()[key], value)
    with pytest.raises(ConfigError, match="lr_decay"):
        TrainConfig(lr_decay=1.5).validate()


@pytest.mark.parametrize("model_name, params", [("sparse_ae_l1", {}), ("topk_sae", {"k": 4})])
def test_compiled_training_step_matches_eager(model_name, params):
    """``compile`` runs the same training step through torch.compile (aot_eager: the traced and
    functionalized graph, without a C++ toolchain): same losses and weights as eager."""
    X = np.random.default_rng(0).normal(size=(96, 12)).astype(np.float32)
    weights = []
    losses = []
    for compile_ in (False, "aot_eager"):
        torch.manual_seed(0)
        model = create_model(model_name, 12, 16, **params)
        result = train(model, X, TrainConfig(max_epochs=3, batch_size=40, learning_rate=1e-2, compile=compile_))
        losses.append([r["train_loss"] for r in result.history])
        weights.append(model.decoder.weight.detach().clone())
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert losses[0][-1] < losses[0][0]
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-5, atol=1e-6)


def test_compile_option_is_validated():
    with pytest.raises(ConfigError, match="compile"):
        TrainConfig(compile="").validate()
    with pytest.raises(ConfigError, match="lbfgs"):
        TrainConfig(compile=True, optimizer="lbfgs").validate()


def test_grad_clip_bounds_the_norm_of_an_sgd_step(digits):
    """With plain SGD (lr 1, one full batch) the step is the clipped gradient: its norm over all
    parameters is grad_clip when the gradient is longer, and the unclipped step is longer."""
    X, _ = digits
    steps = {}
    for clip in (None, 0.01):
        torch.manual_seed(0)
        model = create_model("sparse_ae_kl", 64, 16)
        before = state_of(model)
        train(model, X, TrainConfig(optimizer="sgd", learning_rate=1.0, batch_size=len(X), max_epochs=1,
                                    shuffle=False, grad_clip=clip))
        after = state_of(model)
        steps[clip] = torch.cat([(after[k] - before[k]).flatten() for k in before]).norm().item()
    assert steps[None] > 1.0                      # measured 20.3
    assert steps[0.01] == pytest.approx(0.01, rel=1e-3)
    with pytest.raises(ConfigError, match="grad_clip"):
        TrainConfig(grad_clip=0.0).validate()


def test_adam_is_fused_on_the_cpu_and_takes_pytorchs_default_steps(digits):
    """The trainer's Adam is the fused kernel on the CPU too (PyTorch's default there is a
    per-tensor loop, 3× slower per step); its 30 steps equal the default's to float rounding."""
    from sparseae.train.optim import make_optimizer

    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 4):
        pytest.skip("PyTorch < 2.4 has no fused Adam on the CPU")
    X, _ = digits
    x = torch.from_numpy(X[:256])
    torch.manual_seed(0)
    ours = create_model("sparse_ae_l1", 64, 32, sparsity_weight=0.1)
    default = create_model("sparse_ae_l1", 64, 32, sparsity_weight=0.1)
    default.load_state_dict(ours.state_dict())
    initial = state_of(ours)
    fused = make_optimizer(ours, TrainConfig(learning_rate=1e-2))
    assert fused.defaults["fused"] is True
    plain = torch.optim.Adam(default.parameters(), lr=1e-2)
    for model, optimizer in ((ours, fused), (default, plain)):
        for step in range(30):
            batch = x[(step * 32) % 256:][:32]
            optimizer.zero_grad()
            model.loss(batch).loss.backward()
            optimizer.step()
    moved = (ours.encoder.weight - initial["encoder.weight"]).abs().max().item()
    assert moved > 0.05
    for name, value in ours.state_dict().items():
        torch.testing.assert_close(value, default.state_dict()[name], rtol=1e-4, atol=1e-5)


def test_adam_falls_back_to_the_default_where_the_fused_cpu_kernel_is_missing(monkeypatch):
    """PyTorch < 2.4 refuses ``fused=True`` for CPU tensors; training must still work there."""
    from sparseae.train import optim

    real = torch.optim.Adam

    def old_adam(params, **kwargs):
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                               "supported devices: ['cuda']")
        return real(params, **kwargs)

    monkeypatch.setattr(optim.torch.optim, "Adam", old_adam)
    optimizer = optim.make_optimizer(create_model("sparse_ae_l1", 8, 4), TrainConfig())
    assert isinstance(optimizer, real) and not optimizer.defaults["fused"]


def test_the_logged_epoch_terms_are_the_exact_means_over_the_samples(digits):
    """The trainer sums the logged terms in groups of steps (every 50, and before a smaller last
    batch): with the weights held still (lr 1e-12), an epoch of 113 batches (the last of 5 rows)
    logs exactly the mean cross-entropy and error over all 1797 samples."""
    from sparseae.models.deep import mlp_classifier

    X, y = digits
    torch.manual_seed(0)
    model = mlp_classifier(64, 32, n_classes=10)
    with torch.no_grad():
        model.head.weight.normal_(0, 1.0)
        logits = model.predict_logits(torch.from_numpy(X))
        cross_entropy = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
        error = (logits.argmax(1).numpy() != y).mean()
    result = train(model, X, TrainConfig(optimizer="sgd", learning_rate=1e-12, batch_size=16, max_epochs=1),
                   y=y)
    record = result.history[-1]
    assert 1.5 < cross_entropy and 0.5 < error < 0.95          # a random head: the test means something
    assert record["train_classification"] == pytest.approx(cross_entropy, rel=1e-5)
    assert record["train_loss"] == pytest.approx(cross_entropy, rel=1e-5)
    assert record["train_error"] == pytest.approx(error, abs=1e-6)
