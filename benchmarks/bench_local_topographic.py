"""Claim (issue 4): a locally connected sparse autoencoder (``local_sae``: every location its own
filters, no weight sharing) trained on whole whitened images with topographic group sparsity over
its sheet of units grows an orientation map over the image, with pinwheels (Gregor & LeCun 2010).

Data: ``--crops`` random ``--size``×``--size`` crops of scikit-learn's two sample photos (grey,
no download), each crop's mean removed and scaled to unit variance, then ZCA-whitened keeping the
``--keep`` fraction of directions of largest variance (ε = ``--zca-eps``; rotated back to pixel
space, so the model sees images: the dropped directions are the high-frequency JPEG noise that
whitening would amplify, as in ``bench_topographic.py``).
Model: ``local_sae`` with ``--kernel``×``--kernel`` filters every ``--stride`` pixels, ``--maps``
units per location laid out r×c on the (H'·r)×(W'·c) sheet, λ Σ_j √(Σ_{u∈P_j} z_u² + ε) over the
``--window``×``--window`` windows of the sheet (not wrapping). ``--model sae`` (default): ReLU
units with a gain, own unit-norm decoder atoms, Adam. ``--model rica``: reconstruction ICA, as in
``bench_topographic.py`` but locally connected (Le et al. 2012): tied identity units whose filters
have unit norm inside the objective, ½‖WᵀWx − x‖² + the group term, L-BFGS in float64.
Measured on the decoder atoms (each unit's own k×k filter), in sheet order: the orientation
difference between sheet neighbours against the same filters randomly permuted over the sheet
(ratio < 1: a map), over all units and over the selective ones; pinwheels (plaquettes where the
orientation winds by ±π, edge-wrapping plaquettes left out) against the permuted map; the energy
concentration of the atoms (localized: high). "untrained" (the control) and "trained" are measured
on the sheet's interior, ``--margin`` rows and columns in from each edge (edge units lie in fewer
windows, so the penalty holds them less); "whole" on the whole sheet. ``--out``: the picture
(atoms on the sheet, orientation map, the interior dashed).

Known limit of ``--model rica`` here: the whitened crops have a null space (the dropped
directions), and a unit-norm filter can park weight there to shrink its code and the penalty;
its filters stay noise-like (measured: interior ratio 0.86 with 2,000 crops, 300 iterations).
An 8×8 field of those crops has no exact null space (all 64 eigenvalues of its second moment lie
in about [0.2, 2.7]): its high-frequency directions have low variance, and a unit-norm filter
loads them. ``--space pca`` removes that: every receptive field is PCA-whitened on its own
(``--directions`` kept, ε = ``--zca-eps``, one whitening shared by all locations, each patch's mean
removed: :func:`patch_coordinates`) and the model sees a ``--directions``-channel image with one
pixel per field, so its 1×1 filters are the fields' filters in white coordinates (mapped back to
pixels for the measures). Then each location is reconstructed on its own, and nothing couples
overlapping fields: with 4 units per location (undercomplete) one orientation takes the sheet
(rica, 1,000 crops, 100 iterations: interior ratio 0.79 with the permuted Δθ only 0.25); with
``--maps 16 --stride 4`` (28×28 sheet, 300–500 iterations) the interior ratio is 0.70–0.71
(λ = 0.5 or 2; 0.80 at λ = 0.15), and the filters are gratings (energy concentration 0.72);
with ``--maps 64 --stride 4`` (overcomplete per field, as in the patch benchmark; 56×56 sheet,
1,000 crops, 300 iterations, 380 s) 0.65, 368 pinwheels (permuted 841), still under-trained
(mean selectivity 0.43, energy concentration 0.73); ``--model sae --space pca``: 0.96. None beats
the pixel-space ``sae`` default.

    python benchmarks/bench_local_topographic.py [--model sae|rica --space pixels|pca --size 32 --crops 6000 --out DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.data import ZCAWhitening
from sparseae.data.datasets import natural_image_patches, zca_whitened_crops
from sparseae.errors import DataError
from sparseae.evaluate.filters import (
    energy_concentration,
    orientation_selectivity,
    orientation_singularities,
    preferred_orientation,
    topographic_smoothness,
)
from sparseae.models import LocalAutoencoder, create_model
from sparseae.train import TrainConfig, train


def whitened_crops(n_crops: int, size: int, keep: float, epsilon: float, seed: int) -> np.ndarray:
    """Crops ``(n_crops, size²)`` float32: mean removed, unit variance, ZCA-whitened to the leading
    ``keep`` fraction of directions and rotated back to pixel space (the ``whitened_crops`` dataset)."""
    return zca_whitened_crops(n_crops, size, keep=keep, epsilon=epsilon, random_state=seed)


def one_over_f_crops(n_crops: int, size: int, seed: int) -> np.ndarray:
    """Crops ``(n_crops, size²)`` float32 of the 1/f-whitened sample images (Olshausen & Field's
    whole-image whitening, as for the patch benchmarks), each crop's mean removed, unit variance
    overall: every location sees the same whitened statistics, with no null space."""
    crops = natural_image_patches(n_crops, size, whitening="1/f", ufldl_normalize=False,
                                  random_state=seed).astype(np.float64)
    crops -= crops.mean(axis=1, keepdims=True)
    return (crops / crops.std()).astype(np.float32)


def patch_coordinates(n_crops: int, size: int, kernel: int, stride: int, keep: int, epsilon: float, seed: int
                      ) -> tuple[np.ndarray, ZCAWhitening]:
    """Every ``kernel``×``kernel`` receptive field (every ``stride`` pixels) of ``n_crops`` crops in the
    kept PCA-whitened coordinates, one whitening shared by all locations (fitted on all their patches,
    each patch's mean removed, as in ``bench_topographic.py``): float32 ``(n_crops, keep·H'·W')`` laid
    out as a ``keep``-channel H'×W' image (channel c at location l: coordinate c of patch l), and the
    whitening (``inverse_components_`` maps a filter back to pixels)."""
    raw = natural_image_patches(n_crops, size, whitening="none", ufldl_normalize=False,
                                random_state=seed).astype(np.float64)
    raw -= raw.mean(axis=1, keepdims=True)
    raw /= raw.std()
    patches = torch.nn.functional.unfold(torch.from_numpy(raw).view(-1, 1, size, size), kernel, stride=stride)
    patches = patches.transpose(1, 2).reshape(-1, kernel * kernel).numpy()  # (n·L, k²), crop-major
    patches = patches - patches.mean(axis=1, keepdims=True)
    zca = ZCAWhitening(epsilon=epsilon, n_components=keep, rotate_back=False).fit(patches)
    side = (size - kernel) // stride + 1
    coords = zca.transform(patches).reshape(n_crops, side * side, keep).transpose(0, 2, 1)
    return np.ascontiguousarray(coords.reshape(n_crops, -1), dtype=np.float32), zca


def sheet_filters(model: LocalAutoencoder, basis: np.ndarray | None = None) -> np.ndarray:
    """Each unit's decoder atom in sheet order, float64 ``(H'·r·W'·c, C·k·k)``; with ``basis``
    ``(keep, k²)`` (a model on :func:`patch_coordinates`: its atoms are ``keep`` coordinates) mapped
    back to the k×k pixels."""
    atoms = model.sheet_atoms().double().cpu().numpy()
    return atoms if basis is None else atoms @ basis


def map_measures(filters: np.ndarray, kernel: int, sheet: tuple[int, int], selective: float,
                 n_permutations: int = 100) -> dict:
    """Orientation, selectivity, neighbour/permuted orientation difference (all and selective units)
    and pinwheels (vs the permuted map) of ``filters`` ``(units, k²)`` on a ``sheet`` (rows, cols)."""
    height, width = sheet
    theta = preferred_orientation(filters, (kernel, kernel))
    strength = orientation_selectivity(filters, (kernel, kernel))
    mask = strength >= selective

    def pinwheels(t: np.ndarray) -> int:  # the last row and column of plaquettes wrap: left out
        return int(np.count_nonzero(orientation_singularities(t, height, width)[:-1, :-1]))

    try:
        chosen = topographic_smoothness(theta, height, width, toroidal=False, mask=mask)
    except DataError:  # e.g. random filters: no two neighbouring units are selective
        chosen = {"neighbour": float("nan"), "shuffled": float("nan"), "ratio": float("nan"), "pairs": 0}
    rng = np.random.default_rng(0)
    permuted = float(np.mean([pinwheels(rng.permutation(theta)) for _ in range(n_permutations)]))
    return {"theta": theta, "selectivity": strength, "n_selective": int(mask.sum()),
            "all": topographic_smoothness(theta, height, width, toroidal=False),
            "selective": chosen,
            "pinwheels": pinwheels(theta), "pinwheels_permuted": permuted,
            "plaquettes": (height - 1) * (width - 1),
            "singularities": orientation_singularities(theta, height, width)[:-1, :-1]}


def save_picture(filters: np.ndarray, measures: dict, kernel: int, sheet: tuple[int, int], path: Path,
                 title: str, margin: int = 0) -> Path:
    """Left: the atoms tiled on the sheet; right: orientation (hue) × selectivity (brightness), with
    pinwheel centres (white +½, black −½) and the measured interior (dashed, ``margin`` in)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import hsv_to_rgb
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from sparseae.viz.grid import filter_grid

    height, width = sheet
    theta, strength = measures["theta"], measures["selectivity"]
    hsv = np.stack([theta / np.pi, np.ones_like(theta), np.clip(strength / max(strength.max(), 1e-12), 0.15, 1)],
                   axis=1).reshape(height, width, 3)
    figure = Figure(figsize=(10, 5.2))
    FigureCanvasAgg(figure)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    left.imshow(filter_grid(filters, (kernel, kernel), layout=sheet, pad=1), cmap="gray", interpolation="nearest")
    left.set_title(f"decoder atoms on the {height}×{width} sheet", fontsize=9)
    right.imshow(hsv_to_rgb(hsv), interpolation="nearest")
    for sign, colour in ((1, "white"), (-1, "black")):
        rows, cols = np.nonzero(measures["singularities"] == sign)
        right.scatter(cols + 0.5, rows + 0.5, marker="o", s=18, facecolors="none", edgecolors=colour)
    if margin:
        right.add_patch(Rectangle((margin - 0.5, margin - 0.5), width - 2 * margin, height - 2 * margin,
                                  fill=False, linestyle="--", linewidth=0.8, edgecolor="white"))
    right.set_title("preferred orientation (hue), selectivity (brightness); o pinwheels", fontsize=9)
    for axes in (left, right):
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=70)
    return path


def build(args: argparse.Namespace) -> LocalAutoencoder:
    """The ``local_sae`` of the arguments, with grid windows over its whole sheet (``--model rica``:
    tied identity units with unit-norm filters, reconstruction ICA; ``sae``: ReLU units, own atoms).
    ``--space pca``: on :func:`patch_coordinates`, a ``--directions``-channel image with one pixel per
    receptive field, so 1×1 filters there are the k×k filters in the kept coordinates."""
    if args.space == "pca":
        side = (args.size - args.kernel) // args.stride + 1
        geometry = dict(image_shape=[args.directions, side, side], kernel_size=1, stride=1)
    else:
        geometry = dict(image_shape=[args.size, args.size], kernel_size=args.kernel, stride=args.stride)
    n_features = int(np.prod(geometry["image_shape"]))
    height, width = create_model("local_sae", n_features, args.maps, sparsity_weight=0.0, **geometry).sheet_shape
    groups = {"kind": "grid", "height": height, "width": width, "window": args.window, "toroidal": False}
    rica = dict(activation="identity", tied=True, unit_norm_encoder=True) if args.model == "rica" else {}
    return create_model("local_sae", n_features, args.maps, groups=groups, sparsity_weight=args.weight,
                        group_eps=args.group_eps, **geometry, **rica)


def interior(filters: np.ndarray, sheet: tuple[int, int], margin: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The units ``margin`` or more rows and columns in from the sheet's edges (where every unit lies in
    as many windows as the others), in sheet order, and the inner sheet's shape."""
    if margin == 0:
        return filters, sheet
    height, width = sheet
    inner = filters.reshape(height, width, -1)[margin:height - margin, margin:width - margin]
    return inner.reshape(-1, filters.shape[1]), (height - 2 * margin, width - 2 * margin)


def report(name: str, measures: dict) -> None:
    every, chosen = measures["all"], measures["selective"]
    print(f"{name:<10} | {every['neighbour']:8.3f} | {every['shuffled']:8.3f} | {every['ratio']:5.2f} | "
          f"{measures['n_selective']:5d} {chosen['ratio']:5.2f} | {measures['selectivity'].mean():11.3f} | "
          f"{measures['pinwheels']:4d} ({measures['pinwheels_permuted']:.1f}) of {measures['plaquettes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sae", choices=["sae", "rica"],
                        help="sae: ReLU units, own unit-norm atoms, Adam; rica: tied linear units, unit-norm "
                        "filters, L-BFGS in float64 (reconstruction ICA)")
    parser.add_argument("--size", type=int, default=32, help="crop side (pixels)")
    parser.add_argument("--crops", type=int, default=6000)
    parser.add_argument("--keep", type=float, default=None, help="fraction of whitened directions kept "
                        "(default 0.5 rica, 0.15 sae)")
    parser.add_argument("--space", default="pixels", choices=["pca", "pixels", "1/f"],
                        help="pca: every receptive field in the kept PCA-whitened coordinates (no null space); "
                        "pixels: ZCA-whitened crops; 1/f: crops of the 1/f-whitened images")
    parser.add_argument("--directions", type=int, default=48, help="kept PCA directions of an 8×8 field (pca)")
    parser.add_argument("--zca-eps", type=float, default=0.1)
    parser.add_argument("--kernel", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--maps", type=int, default=4, help="units per location")
    parser.add_argument("--window", type=int, default=3, help="group windows on the sheet")
    parser.add_argument("--weight", type=float, default=None, help="λ of the group term (default 0.5 rica, 1 sae)")
    parser.add_argument("--group-eps", type=float, default=1e-2)
    parser.add_argument("--iters", type=int, default=300, help="L-BFGS iterations (rica)")
    parser.add_argument("--epochs", type=int, default=20, help="Adam epochs (sae)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--margin", type=int, default=2, help="sheet rows/columns left out at each edge "
                        "in the 'interior' measures")
    parser.add_argument("--selective", type=float, default=0.3, help="selectivity threshold of 'selective' units")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/local_topographic", help="folder of the picture")
    args = parser.parse_args()
    rica = args.model == "rica"
    args.keep = args.keep if args.keep is not None else (0.5 if rica else 0.15)
    args.weight = args.weight if args.weight is not None else (0.5 if rica else 1.0)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    basis = None
    if args.space == "pca":
        X, zca = patch_coordinates(args.crops, args.size, args.kernel, args.stride, args.directions, args.zca_eps,
                                   args.seed)
        basis = zca.inverse_components_
    elif args.space == "1/f":
        X = one_over_f_crops(args.crops, args.size, args.seed)
    else:
        X = whitened_crops(args.crops, args.size, args.keep, args.zca_eps, args.seed)
    torch.manual_seed(args.seed)
    model = build(args)
    sheet = model.sheet_shape
    inner = interior(sheet_filters(model, basis), sheet, args.margin)
    untrained = map_measures(*inner[:1], args.kernel, inner[1], args.selective)
    if rica:
        config = TrainConfig(optimizer="lbfgs", learning_rate=1.0, lbfgs_max_iter=args.iters, lbfgs_iter_per_epoch=50,
                             dtype="float64", random_state=args.seed)
    else:
        config = TrainConfig(optimizer="adam", learning_rate=args.learning_rate, batch_size=args.batch_size,
                             max_epochs=args.epochs, random_state=args.seed)
    history = train(model, X, config).history
    filters = sheet_filters(model, basis)
    whole = map_measures(filters, args.kernel, sheet, args.selective)
    trained = map_measures(*interior(filters, sheet, args.margin)[:1], args.kernel, inner[1], args.selective)
    localized = energy_concentration(filters, (args.kernel, args.kernel))
    seconds = time.perf_counter() - started
    how = (f"{args.iters} L-BFGS iterations" if rica else f"{args.epochs} Adam epochs")
    title = (f"local_sae ({args.model}) on {args.size}×{args.size} whitened crops: {args.kernel}×{args.kernel} "
             f"filters every {args.stride} px, {args.maps} per location, {args.window}×{args.window} windows, "
             f"λ={args.weight:g}")
    path = save_picture(filters, whole, args.kernel, sheet, Path(args.out) / "local_topographic.png", title,
                        args.margin)
    kept = (f"{args.directions} PCA directions per field" if args.space == "pca" else
            "1/f-whitened images" if args.space == "1/f" else f"{args.keep:g} of the directions")
    print(f"{title}; sheet {sheet[0]}×{sheet[1]}, {args.crops} crops, {kept}, {how}")
    print(f"{'filters':<10} | {'neigh Δθ':>8} | {'perm Δθ':>8} | {'ratio':>5} | {'selective':>11} | "
          f"{'selectivity':>11} | pinwheels (permuted)")
    report("untrained", untrained)
    report("trained", trained)
    report("whole", whole)
    print(f"(untrained, trained: the {inner[1][0]}×{inner[1][1]} interior, {args.margin} rows/columns in from "
          f"each edge; whole: the whole sheet)")
    print(f"energy in the top 25% of pixels: {localized.mean():.3f} (white noise ≈ 0.72)")
    print(f"loss {history[0]['train_loss']:.3f} -> {history[-1]['train_loss']:.3f}; {seconds:.0f} s in all "
          f"({args.threads} thread(s)); picture {path}")


if __name__ == "__main__":
    main()
