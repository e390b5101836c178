"""LISTA's depth curve (issue 25): the warm start from a shallower LISTA and the training of
:mod:`sparseae.evaluate.lista` (the benchmark's and the ``lista_depth`` recipe evaluation's)."""
from __future__ import annotations

import numpy as np
import torch

from sparseae.coding import ista, sparse_encode
from sparseae.evaluate.lista import LISTATraining, iterations_to_match, relative_error, train_lista
from sparseae.models import lista_from_dictionary

from test_lista_chain import problem  # the same small sparse-coding problem


def test_warm_start_applies_the_shallower_network_once_more():
    D, X = problem(50)
    shallow = lista_from_dictionary(D, 0.1, 2)
    with torch.no_grad():
        for p in shallow.encoder.parameters():  # any weights, not ISTA's
            p.add_(0.01 * torch.randn_like(p))
        deep = lista_from_dictionary(D, 0.1, 3)
        deep.encoder.load_state_dict(shallow.encoder.state_dict())
        enc = shallow.encoder
        expected = enc.shrink(X @ enc.weight.t() + shallow.encode(X) @ enc.S.t())
        assert torch.allclose(deep.encode(X), expected, atol=1e-12)
        assert not torch.allclose(deep.encode(X), shallow.encode(X), atol=1e-3)


def test_untrained_depth_is_ista_and_lars_targets_are_exact():
    D, X = problem(40)
    L = lista_from_dictionary(D, 0.1, 1).lipschitz
    with torch.no_grad():
        z4 = lista_from_dictionary(D, 0.1, 3).encode(X)
    assert torch.allclose(z4, ista(X, D, 0.1, L=L, max_iter=4, stop="none").codes, atol=1e-10)
    Z = torch.as_tensor(sparse_encode(X, D.t().contiguous(), algorithm="lasso_lars", alpha=0.1))
    Z_long = ista(X, D, 0.1, L=L, max_iter=5000, stop="none").codes
    assert float((Z - Z_long).abs().max()) < 1e-6


def test_training_lowers_the_error_and_deeper_is_better():
    torch.manual_seed(0)
    D, X = problem(700)
    D, X = D.float(), X.float()
    Z = torch.as_tensor(sparse_encode(X, D.t().contiguous(), algorithm="lasso_lars", alpha=0.1)).float()
    X_train, Z_train, X_val, Z_val = X[:500], Z[:500], X[500:], Z[500:]
    settings = LISTATraining(seed=0, lr=0.1, optimizer="sgd", batch_size=50, epochs=15, patience=4, clip=1.0)
    errors, previous = [], None
    for T in (1, 2, 4):
        model = lista_from_dictionary(D, 0.1, T)
        if previous is not None:
            model.encoder.load_state_dict(previous.encoder.state_dict())
        with torch.no_grad():
            start = relative_error(model.encode(X_val), Z_val)
        model, epochs, best_epoch, stopped = train_lista(model, X_train, Z_train, X_val, Z_val, settings)
        with torch.no_grad():
            errors.append(relative_error(model.encode(X_val), Z_val))
        assert 1 <= epochs <= 15 and 0 <= best_epoch <= epochs
        assert stopped == ("converged" if epochs == settings.epochs else "patience")  # one-cycle: ran to its end
        assert errors[-1] <= start  # the start is a candidate: never ends above it
        previous = model
    with torch.no_grad():
        untrained_t1 = relative_error(lista_from_dictionary(D, 0.1, 1).encode(X_val), Z_val)
    assert errors[0] < 0.8 * untrained_t1
    assert errors[2] < errors[1] < errors[0], errors


def test_iterations_to_match():
    curve = np.array([0.9, 0.5, 0.2, 0.1])
    assert iterations_to_match(curve, 0.5) == 2
    assert iterations_to_match(curve, 0.15) == 4
    assert iterations_to_match(curve, 0.01) is None
