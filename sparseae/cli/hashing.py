"""``sparseae index`` and ``sparseae query``: semantic hashing from the command line.

An index folder ``DIR`` holds::

    model/      a copy of the model that encoded the items (model.safetensors + config.json)
    hash/       the HammingIndex: packed codes, item ids, and the model's fingerprint
    index.json  what was indexed (data, threshold, timing)
    labels.npy  the items' labels, when the dataset has them (shown beside query results)

``query`` encodes its inputs with ``DIR/model`` (or ``--model``, which must be the same model:
its fingerprint, a hash of the weights file, is checked) and returns the items within Hamming
radius ``--radius`` or the ``--k`` nearest by exhaustive Hamming ranking.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import locking
from ..data import load_array, load_dataset
from ..digests import files_sha256
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError
from ..files import staged_folder, write_json_atomic
from ..io import WEIGHTS_FILE, load_model
from ..models import encode_dataset
from ..retrieval import HammingIndex, binarize
from ..runs.folder import locate_model
from ..runs.metrics import encode_decode
from ..validation import as_float_array, check_number
from .common import READ_DEVICE, add_download, add_set, add_threads, datasets_for, load_trained
from .output import Output

MODEL_DIR, HASH_DIR, INDEX_FILE, LABELS_FILE = "model", "hash", "index.json", "labels.npy"


def model_fingerprint(model_dir: Path) -> str:
    """sha256 (first 16 hex digits) of the model's weights file: equal weights, equal fingerprint."""
    return files_sha256([model_dir / WEIGHTS_FILE])[:16]


def _codes(model: Any, X: Any, threshold: float) -> np.ndarray:
    return binarize(encode_dataset(model, X), threshold=threshold)


def command_index(args: argparse.Namespace, out: Output) -> int:
    """Encode a dataset with a trained model, threshold the codes to bits and save a hash index,
    holding the index folder's lock (:mod:`sparseae.locking`): one writer at a time."""
    with locking.acquire(args.out, "sparseae index") as lock:
        return _build_index(args, out, lock)


def _build_index(args: argparse.Namespace, out: Output, lock: locking.FolderLock) -> int:
    check_number(args.threshold, "--threshold", low=0.0, high=1.0)
    target = Path(args.out)
    if locking.contents(target):
        if not args.overwrite:
            raise OutputExistsError(f"{target} already exists; pass --overwrite to replace it")
        if not (target / INDEX_FILE).exists():
            raise OutputExistsError(f"{target} is not a sparseae index folder; refusing to replace it")
    model, config, _, model_dir = load_trained(args, args.path, out)
    dataset, _ = datasets_for(model, config)
    started = time.perf_counter()
    with out.progress(dataset.n_samples, "encode", "item") as bar:
        codes, _ = encode_decode(model, as_float_array(dataset.X, "the data", n_features=model.n_features),
                                 decode=False, progress=bar.update)
    bits = binarize(codes, threshold=args.threshold)
    encoded = time.perf_counter()
    fingerprint = model_fingerprint(model_dir)
    index = HammingIndex.from_bits(bits, np.arange(dataset.n_samples), model=fingerprint)
    built = time.perf_counter()
    summary = {"index": str(target), "model": model.spec["name"], "fingerprint": fingerprint,
               "data": config.data_name, "n_items": index.n_items, "n_bits": index.n_bits,
               "n_buckets": index.n_buckets, "threshold": args.threshold,
               "encode_seconds": encoded - started, "build_seconds": built - encoded,
               "items_per_second": index.n_items / max(built - started, 1e-9),
               "labels": dataset.y is not None}
    # Built in a sibling folder that replaces the target in one rename: never half an index.
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(target, wrap=False) as staging:
        shutil.copytree(model_dir, staging / MODEL_DIR)
        index.save(staging / HASH_DIR)
        if dataset.y is not None:
            np.save(staging / LABELS_FILE, np.asarray(dataset.y))
        write_json_atomic(staging / INDEX_FILE, summary)
        lock.copy_into(staging)  # the new folder comes in locked, the lock is released after
    out.line(f"Indexed {index.n_items} items of {config.data_name} as {index.n_bits}-bit codes "
             f"({index.n_buckets} distinct) in {built - started:.2f} s "
             f"({summary['items_per_second']:.0f} items/s): {target}")
    out.json(summary)
    return 0


def _query_inputs(args: argparse.Namespace, n_features: int) -> np.ndarray:
    if (args.input is None) == (args.data is None):
        raise ConfigError("give the queries either as --input FILE (.npy/.npz/.csv) or as --data NAME "
                          "with --rows")
    if args.input is not None:
        X = as_float_array(load_array(args.input, mmap=False), f"--input {args.input}")
    else:
        dataset = load_dataset(args.data)
        X = np.asarray(dataset.X)
    if X.ndim == 1:
        X = X[None, :]
    if X.shape[1] != n_features:
        raise DataError(f"the queries have {X.shape[1]} features, but the index's model encodes "
                        f"{n_features}")
    if args.rows is not None:
        start, _, stop = args.rows.partition(":")
        try:
            rows = slice(int(start), int(stop)) if stop else slice(int(start), int(start) + 1)
        except ValueError:
            raise ConfigError(f"--rows takes START or START:STOP, got {args.rows!r}") from None
        X = X[rows]
        if not len(X):
            raise DataError(f"--rows {args.rows} selects no rows of {args.input or args.data}")
    return X


def _labels(folder: Path, n_items: int) -> np.ndarray | None:
    """The indexed items' labels (``labels.npy``, one per item), or None when the index has none."""
    if not (folder / LABELS_FILE).exists():
        return None
    labels = load_array(folder / LABELS_FILE, mmap=False)  # DataError for objects: never unpickled
    if labels.shape != (n_items,):
        raise CheckpointError(f"{folder / LABELS_FILE} holds labels of shape {labels.shape}, but the "
                              f"index has {n_items} items: rebuild it with `sparseae index`")
    return labels


def command_query(args: argparse.Namespace, out: Output) -> int:
    """Return the indexed items near each query: within ``--radius`` or the ``--k`` nearest."""
    folder = Path(args.index)
    if not (folder / INDEX_FILE).exists():
        raise CheckpointError(f"{folder} is not a sparseae index folder (no {INDEX_FILE}); build one with "
                              "`sparseae index`")
    if args.model is not None:
        model_dir, _ = locate_model(args.model)
    else:
        model_dir = folder / MODEL_DIR
    fingerprint = model_fingerprint(model_dir)
    index = HammingIndex.load(folder / HASH_DIR)
    if index.model != fingerprint:
        raise CheckpointError(f"the index in {folder} was built by another model (fingerprint "
                              f"{index.model}, this model's is {fingerprint}): rebuild it with `sparseae index`")
    model = load_model(model_dir)
    if args.k is not None:
        check_number(args.k, "--k", low=1, integer=True)
    check_number(args.radius, "--radius", low=0, integer=True)
    check_number(args.show, "--show", low=0, integer=True)
    try:
        threshold = float(json.loads((folder / INDEX_FILE).read_text())["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / INDEX_FILE} is corrupt: {exc}") from None
    X = _query_inputs(args, model.n_features)
    bits = _codes(model, X, threshold)
    labels = _labels(folder, index.n_items)
    results = []
    if args.k is not None:
        ids, distances = index.rank(bits, k=args.k)
        for q in range(len(X)):
            results.append({"query": q, "ids": ids[q].tolist(), "distances": distances[q].tolist()})
    else:
        id_lists, distance_lists = index.lookup(bits, radius=args.radius, return_distances=True)
        for q, (ids, distances) in enumerate(zip(id_lists, distance_lists, strict=True)):  # nearest first, then by id
            results.append({"query": q, "ids": ids.tolist(), "distances": distances.tolist()})
    for result in results:
        if labels is not None:
            result["labels"] = labels[result["ids"]].tolist()
        pairs = list(zip(result["ids"], result["distances"], strict=True))[:args.show]
        shown = ", ".join(f"{i} (d={d})" for i, d in pairs)
        more = len(result["ids"]) - args.show
        out.line(f"query {result['query']}: {len(result['ids'])} items"
                 + (f": {shown}" if shown else "") + (f", … {more} more" if more > 0 else ""))
    out.json({"index": str(folder), "radius": None if args.k is not None else args.radius, "k": args.k,
              "results": results})
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``index`` and ``query`` subcommands."""
    index = commands.add_parser("index", parents=[common], help="build a semantic-hashing index",
                                description="Encode a dataset with a trained model, threshold the codes "
                                            "to bits and save a Hamming hash index (with the model).")
    index.add_argument("path", metavar="MODEL_DIR_or_RUN_DIR")
    index.add_argument("--data", help="dataset to index (default: the run's)")
    add_set(index, "data.split=train")
    index.add_argument("--out", metavar="INDEX_DIR", required=True, help="where the index folder goes")
    index.add_argument("--threshold", type=float, default=0.5, help="code value above which a bit is 1")
    index.add_argument("--overwrite", action="store_true", help="replace an index in INDEX_DIR")
    index.add_argument("--device", help=READ_DEVICE)
    add_download(index)
    add_threads(index)
    index.set_defaults(handler=command_index)

    query = commands.add_parser("query", parents=[common], help="nearest indexed items of inputs",
                                description="Encode inputs with the index's model and list the indexed "
                                            "items within a Hamming radius, or the k nearest.")
    query.add_argument("index", metavar="INDEX_DIR")
    query.add_argument("--input", metavar="FILE", help="queries: .npy/.npz/.csv, one row per query")
    query.add_argument("--data", help="queries from this dataset (with --rows)")
    query.add_argument("--rows", metavar="START[:STOP]", help="which rows of --input/--data")
    query.add_argument("--radius", type=int, default=2, help="Hamming radius of the lookup (default 2)")
    query.add_argument("--k", type=int, default=None, help="the k nearest by exhaustive ranking instead")
    query.add_argument("--model", metavar="MODEL_DIR_or_RUN_DIR", help="encode with this model (must be "
                                                                       "the index's)")
    query.add_argument("--show", type=int, default=10, help="items printed per query (default 10)")
    add_threads(query)
    query.set_defaults(handler=command_query)
