"""Claim: a deep autoencoder reduces MNIST to 30 dimensions with lower reconstruction error than
30-D PCA, and its 2-D map separates the digits better than PCA's (Hinton & Salakhutdinov 2006).

The deep autoencoder is 784-1000-500-250-d (logistic units, linear code layer, cross-entropy):
every layer pre-trained greedily as an autoencoder (the paper used RBMs), then the stack
fine-tuned end to end. Trained on the 60,000 training images; errors on the 10,000 test images
(mean squared error per image, summed over the 784 pixels, as the paper reports). The 2-D maps
are drawn side by side (``--out``), and their class separation is measured by the accuracy of a
k-nearest-neighbour classifier (k = 10) on the 2-D test codes (5-fold cross-validation).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_dimensionality_reduction.py \\
        [--dims 30 2 --pretrain-epochs 5 --epochs 20 --threads 1 --out runs/dimred]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sparseae.data import load_mnist
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.train.procedures import pretrain_deep_model
from sparseae.viz import save_embeddings


def squared_error(X: np.ndarray, X_hat: np.ndarray) -> float:
    return float(((X - X_hat) ** 2).sum(axis=1).mean())


def knn_accuracy(Z: np.ndarray, y: np.ndarray) -> float:
    return float(cross_val_score(KNeighborsClassifier(10), Z, y, cv=5).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[30, 2])
    parser.add_argument("--hidden", type=int, nargs="+", default=[1000, 500, 250])
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/dimensionality_reduction")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, _ = load_mnist(split="train")
    X = X[:args.n_train]
    X_test, y_test = load_mnist(split="test")
    rows = []
    for dim in args.dims:
        pca = PCA(dim, random_state=args.seed).fit(X)
        pca_codes = pca.transform(X_test)
        pca_error = squared_error(X_test, pca.inverse_transform(pca_codes))
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        model = create_model("deep_autoencoder", 784, dim, hidden=args.hidden)
        common = dict(optimizer="adam", batch_size=128, device=args.device, random_state=args.seed)
        pretrain_deep_model(model, X, TrainConfig(max_epochs=args.pretrain_epochs, learning_rate=1e-3, **common),
                            layer_model="autoencoder", layer_params={"likelihood": "bernoulli"})
        train(model, X, TrainConfig(max_epochs=args.epochs, learning_rate=1e-3, **common))
        seconds = time.perf_counter() - started
        model.to("cpu").eval()
        with torch.no_grad():
            codes = model.encode(torch.from_numpy(X_test))
            deep_error = squared_error(X_test, model.decode(codes).numpy())
        codes = codes.numpy()
        rows.append((dim, deep_error, pca_error, seconds))
        if dim == 2:
            path = save_embeddings([("deep autoencoder 784-1000-500-250-2", codes), ("PCA, 2 components", pca_codes)],
                                   y_test, Path(args.out) / "mnist_2d.png", title="MNIST test digits")
            print(f"wrote {path}; 10-NN accuracy on the 2-D test codes: "
                  f"deep AE {100 * knn_accuracy(codes, y_test):.1f}%, "
                  f"PCA {100 * knn_accuracy(pca_codes, y_test):.1f}%", flush=True)
    print()
    print(f"{'code size':>9} | {'deep AE test error':>18} | {'PCA test error':>14} | {'ratio':>5} | {'train s':>8}")
    for dim, deep_error, pca_error, seconds in rows:
        print(f"{dim:9d} | {deep_error:18.2f} | {pca_error:14.2f} | {deep_error / pca_error:5.2f} | {seconds:8.0f}")
    print("(squared error per test image, summed over 784 pixels in [0, 1]; "
          f"{'-'.join(str(s) for s in [784, *args.hidden])}-d, {args.pretrain_epochs} pre-training epochs per "
          f"layer + {args.epochs} fine-tuning epochs, Adam)")


if __name__ == "__main__":
    main()
