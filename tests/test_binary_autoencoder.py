"""Binary autoencoder hashing by MAC (sparseae.retrieval.binary_autoencoder)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from sparseae.errors import ConfigError, DataError, NotFittedError
from sparseae.retrieval import (
    AnchorEmbedding,
    BinaryAutoencoder,
    RandomProjectionLSH,
    hamming_distances,
    mean_average_precision,
    mnist_retrieval_split,
    pack_bits,
)
from sparseae.retrieval.binary_autoencoder import f_step, fit_model, mac_objective, z_step


def tiny_problem(n=40, d=6, n_bits=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    B, c = rng.standard_normal((d, n_bits)), rng.standard_normal(d)
    H = rng.random((n, n_bits)) > 0.5
    return X, B, c, H


def brute_force(X, B, c, H, mu):
    """Per row, the least ‖x − Bz − c‖² + μ‖z − h‖² over every z in {0, 1}^L, by a Python loop."""
    best = np.full(len(X), np.inf)
    for code in itertools.product([0.0, 1.0], repeat=B.shape[1]):
        z = np.array(code)
        value = ((X - B @ z - c) ** 2).sum(axis=1) + mu * ((z - H) ** 2).sum(axis=1)
        best = np.minimum(best, value)
    return best


def per_row(X, Z, H, B, c, mu):
    Z, H = Z.astype(float), H.astype(float)
    return ((X - Z @ B.T - c) ** 2).sum(axis=1) + mu * ((Z - H) ** 2).sum(axis=1)


@pytest.mark.parametrize("mu", [0.0, 0.3, 5.0])
def test_exact_z_step_matches_brute_force(mu):
    X, B, c, H = tiny_problem()
    Z = z_step(X, B, c, H, mu, method="exact")
    assert Z.dtype == np.bool_ and Z.shape == H.shape
    np.testing.assert_allclose(per_row(X, Z, H, B, c, mu), brute_force(X, B, c, H, mu), rtol=1e-12, atol=1e-12)
    # a large μ keeps the encoder's bits: the Z-step cannot move away from h
    np.testing.assert_array_equal(z_step(X, B, c, H, 1e6, method="exact"), H)


def test_alternating_z_step_is_a_local_minimum_no_worse_than_h():
    X, B, c, H = tiny_problem(n=200, n_bits=7, seed=1)
    mu = 0.5
    Z = z_step(X, B, c, H, mu, method="alternate")
    value = per_row(X, Z, H, B, c, mu)
    assert np.all(value <= per_row(X, H, H, B, c, mu) + 1e-12)
    for bit in range(B.shape[1]):  # no single bit flip lowers any row's objective
        flipped = Z.copy()
        flipped[:, bit] ^= True
        assert np.all(per_row(X, flipped, H, B, c, mu) >= value - 1e-9)
    exact = per_row(X, z_step(X, B, c, H, mu, method="exact"), H, B, c, mu)
    assert np.all(exact <= value + 1e-12) and exact.sum() < value.sum() + 1e-9


def test_f_step_is_the_least_squares_decoder():
    X, _, _, H = tiny_problem(n=60, seed=2)
    B, c = f_step(X, H)
    design = np.hstack([H.astype(float), np.ones((len(H), 1))])
    expected = np.linalg.lstsq(design, X, rcond=None)[0]
    np.testing.assert_allclose(B, expected[:-1].T, atol=1e-6)
    np.testing.assert_allclose(c, expected[-1], atol=1e-6)


def test_mac_objective_falls_at_each_step_and_the_codes_reconstruct_better_than_itq(digits):
    X, _ = digits
    model = BinaryAutoencoder(8, n_anchors=0, n_iter=4, mu=0.01, validation_fraction=0.2,
                              random_state=0).fit(X)
    steps = [record for record in model.history_[1:]]
    assert len(steps) >= 3
    for record in steps:  # the f-step never raises the objective the Z-step reached
        z_value, f_value = record["objective"]
        assert f_value <= z_value + 1e-9
    # the nested error min_f ‖x − f(h(x))‖² of the final encoder is below ITQ's (the start)
    assert steps[-1]["reconstruction"] < model.history_[0]["reconstruction"] - 0.05
    assert model.history_[model.best_iteration_]["validation"] <= model.history_[0]["validation"]


def test_codes_are_binary_and_every_bit_is_used(digits):
    X, _ = digits
    model = BinaryAutoencoder(12, n_anchors=60, n_iter=2, random_state=0).fit(X)
    bits = model.encode(X)
    assert bits.dtype == np.bool_ and bits.shape == (len(X), 12)
    usage = bits.mean(axis=0)
    assert np.all((usage > 0.02) & (usage < 0.98))
    np.testing.assert_array_equal(bits, model.encode(X))  # deterministic
    assert model.decode(bits[:3]).shape == (3, 60 + 64)  # φ: 60 anchor affinities and the 64 pixels
    linear = BinaryAutoencoder(12, n_anchors=60, input_weight=0.0, n_iter=0, random_state=0).fit(X)
    assert linear.features(X[:3]).shape == (3, 60)


def test_seeded_fits_are_identical(digits):
    X, _ = digits
    first = BinaryAutoencoder(8, n_anchors=40, n_iter=2, random_state=3).fit(X).encode(X)
    second = BinaryAutoencoder(8, n_anchors=40, n_iter=2, random_state=3).fit(X).encode(X)
    np.testing.assert_array_equal(first, second)


def _map(hasher, X, y, queries, database):
    hasher.fit(X[database])
    distances = hamming_distances(pack_bits(hasher.encode(X[queries])), pack_bits(hasher.encode(X[database])))
    return mean_average_precision(y[queries], y[database], distances)


def test_binary_autoencoder_beats_random_projections(digits):
    X, y = digits
    queries, database = mnist_retrieval_split(y, n_per_class=20, random_state=0)
    ours = _map(BinaryAutoencoder(16, n_anchors=100, n_iter=2, z_method="alternate", random_state=0),
                X, y, queries, database)
    lsh = _map(RandomProjectionLSH(16, random_state=0), X, y, queries, database)
    assert ours >= lsh + 0.2, (ours, lsh)


def test_anchor_embedding_rows_are_sparse_normalised_affinities(digits):
    X, _ = digits
    embedding = AnchorEmbedding(30, 3, random_state=0).fit(X)
    F = embedding.transform(X[:50])
    assert F.shape == (50, 30) and np.all((F > 0).sum(axis=1) == 3)
    np.testing.assert_allclose((F / embedding.column_scale_).sum(axis=1), 1.0)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n_bits=0), ConfigError, "n_bits"),
    (dict(n_bits=4, mu=0.0), ConfigError, "mu"),
    (dict(n_bits=4, mu_growth=0.5), ConfigError, "mu_growth"),
    (dict(n_bits=4, z_method="greedy"), ConfigError, "z_method"),
    (dict(n_bits=4, n_anchors=1), ConfigError, "n_anchors"),
    (dict(n_bits=4, n_anchors=5, n_nearest=6), ConfigError, "n_nearest"),
    (dict(n_bits=4, validation_fraction=1.0), ConfigError, "validation_fraction"),
    (dict(n_bits=4, random_state=-1), ConfigError, "random_state"),
])
def test_bad_settings_raise(kwargs, error, message):
    n_bits = kwargs.pop("n_bits")
    with pytest.raises(error, match=message):
        BinaryAutoencoder(n_bits, **kwargs)


def test_bad_data_raises(digits):
    X, _ = digits
    with pytest.raises(NotFittedError, match="not fitted"):
        BinaryAutoencoder(4).encode(X)
    with pytest.raises(ConfigError, match="exceeds"):
        BinaryAutoencoder(70, n_anchors=0).fit(X)
    bad = X[:100].copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        BinaryAutoencoder(4, n_anchors=0).fit(bad)
    with pytest.raises(DataError, match="fewer than n_anchors"):
        BinaryAutoencoder(4, n_anchors=50).fit(X[:20])
    model = BinaryAutoencoder(4, n_anchors=0, n_iter=1).fit(X[:200])
    with pytest.raises(DataError, match="features"):
        model.encode(X[:5, :10])
    with pytest.raises(DataError, match="shape"):
        model.decode(np.zeros((2, 3), bool))
    X_tiny, B, c, H = tiny_problem()
    with pytest.raises(DataError, match="H must have shape"):
        z_step(X_tiny, B, c, H[:, :2], 0.1)
    with pytest.raises(ConfigError, match="enumerates"):
        z_step(X_tiny, np.zeros((6, 21)), c, np.zeros((40, 21), bool), 0.1, method="exact")
    assert mac_objective(X_tiny, H, H, B, c, 3.0) == pytest.approx(per_row(X_tiny, H, H, B, c, 0.0).sum())


# --- the registry model and the index/query verbs ---------------------------------------------

def test_registry_model_hashes_like_the_hasher_and_round_trips(digits, tmp_path):
    import torch

    from sparseae.io import load_model, save_model
    from sparseae.models import create_model, encode_dataset

    X, _ = digits
    model = create_model("binary_autoencoder", 64, 12, n_anchors=80, n_iter=2)
    history = fit_model(model, X, random_state=0)
    assert [record["epoch"] for record in history] == list(range(1, len(history) + 1))
    hasher = BinaryAutoencoder(12, n_anchors=80, n_iter=2, random_state=0).fit(X)
    codes = encode_dataset(model, X)
    assert set(np.unique(codes)) <= {0.0, 1.0}
    assert np.mean((codes > 0.5) == hasher.encode(X)) > 0.999  # float32 model vs float64 hasher
    with torch.no_grad():  # the pixel decoder is the least-squares map from the bits
        error = ((model.decode(torch.from_numpy(codes)).numpy() - X) ** 2).sum(axis=1).mean()
    assert error < ((X - X.mean(axis=0)) ** 2).sum(axis=1).mean() * 0.8
    save_model(model, tmp_path / "m")
    np.testing.assert_array_equal(encode_dataset(load_model(tmp_path / "m"), X), codes)


def _cli(capsys, *argv) -> tuple[int, str, str]:
    """``sparseae ARGV`` in this process: (exit status, stdout, stderr)."""
    from sparseae.cli import main

    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_index_and_query_a_binary_autoencoder_run(tmp_path, capsys):
    """``sparseae train`` fits the model by MAC; ``index``/``query`` hash with it."""
    import json

    import yaml

    config = {"model": {"name": "binary_autoencoder", "n_components": 16, "n_anchors": 60, "n_iter": 2},
              "data": {"name": "digits"}, "train": {"random_state": 0, "device": "cpu"},
              "output": {"dir": str(tmp_path / "run"), "plots": False}}
    (tmp_path / "ba.yaml").write_text(yaml.safe_dump(config))
    status, _, err = _cli(capsys, "train", tmp_path / "ba.yaml")
    assert status == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "converged" and summary["epochs"] >= 2
    status, out, err = _cli(capsys, "index", tmp_path / "run", "--out", tmp_path / "idx", "--json")
    assert status == 0, err
    built = json.loads(out)
    assert built["model"] == "binary_autoencoder" and built["n_items"] == 1797 and built["n_bits"] == 16
    assert built["n_buckets"] > 100
    status, out, err = _cli(capsys, "query", tmp_path / "idx", "--data", "digits", "--rows", "0:10", "--k", "20",
                            "--json")
    assert status == 0, err
    results = json.loads(out)["results"]
    agree = []
    for q, result in enumerate(results):  # each digit finds itself at distance 0
        assert q in result["ids"] and result["distances"][0] == 0
        agree += [label == result["labels"][result["ids"].index(q)] for label in result["labels"]]
    assert np.mean(agree) >= 0.6  # most neighbours share the query's label (chance: 0.1)


@pytest.mark.parametrize("params, message", [
    (dict(mu=0.0), "mu"), (dict(n_nearest=5, n_anchors=4), "n_nearest"), (dict(input_weight=-1.0), "input_weight"),
    (dict(validation_fraction=1.0), "validation_fraction"), (dict(n_iter=1.5), "n_iter"),
])
def test_registry_model_refuses_bad_settings(params, message):
    from sparseae.models import create_model

    with pytest.raises(ConfigError, match=message):
        create_model("binary_autoencoder", 64, 8, **params)
