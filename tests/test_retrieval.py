"""Semantic hashing: bit packing, Hamming distances, the hash index, baselines and metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sparseae.errors import CheckpointError, ConfigError, DataError, NotFittedError, OutputExistsError
from sparseae.retrieval import (
    ITQ,
    HammingIndex,
    PCAHashing,
    RandomProjectionLSH,
    binarize,
    flip_masks,
    hamming_distances,
    mean_average_precision,
    mnist_retrieval_split,
    pack_bits,
    precision_recall_curve,
    precision_within_radius,
    unpack_bits,
)


def naive_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, None, :] != b[None, :, :]).sum(axis=2)


def brute_force_lookup(query_bits, bits, ids, radius):
    dist = naive_distances(query_bits, bits)
    out = []
    for row in dist:
        within = np.flatnonzero(row <= radius)
        order = np.lexsort((ids[within], row[within]))
        out.append((ids[within][order], row[within][order]))
    return out


# --- codes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_bits", [1, 7, 8, 13, 32, 64, 100])
def test_pack_unpack_round_trip(n_bits):
    bits = np.random.default_rng(n_bits).random((30, n_bits)) > 0.5
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8 and packed.shape == (30, (n_bits + 7) // 8)
    np.testing.assert_array_equal(unpack_bits(packed, n_bits), bits)
    np.testing.assert_array_equal(pack_bits(bits.astype(np.int64)), packed)


def test_binarize_thresholds_numpy_and_torch():
    codes = np.array([[0.1, 0.6, 0.5], [0.9, 0.2, 0.51]], dtype=np.float32)
    expected = np.array([[False, True, False], [True, False, True]])
    np.testing.assert_array_equal(binarize(codes), expected)
    np.testing.assert_array_equal(binarize(torch.from_numpy(codes)), expected)
    np.testing.assert_array_equal(binarize(codes - 0.5, threshold=0.0), expected)
    with pytest.raises(DataError):
        binarize(np.array([[np.nan, 1.0]]))
    with pytest.raises(DataError):
        pack_bits(np.array([[0, 2]]))


@pytest.mark.parametrize("n_bits", [5, 24, 32, 64, 72, 128])
def test_hamming_distances_match_naive_reference(n_bits):
    rng = np.random.default_rng(n_bits)
    queries, items = rng.random((17, n_bits)) > 0.5, rng.random((53, n_bits)) > 0.5
    expected = naive_distances(queries, items)
    got = hamming_distances(pack_bits(queries), pack_bits(items))
    np.testing.assert_array_equal(got, expected)
    small_blocks = hamming_distances(pack_bits(queries), pack_bits(items), block_elements=7)
    np.testing.assert_array_equal(small_blocks, expected)
    with pytest.raises(DataError):
        hamming_distances(pack_bits(queries), pack_bits(items)[:, :-1] if n_bits > 8 else items)


# --- index ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_bits", [6, 16, 32, 64, 70])
def test_lookup_matches_brute_force_with_duplicate_codes_and_ids(n_bits):
    rng = np.random.default_rng(n_bits)
    bits = rng.random((600, n_bits)) > 0.5
    bits[300:400] = bits[:100]                          # duplicated codes
    bits[400:420] = bits[0]                             # a large bucket
    ids = rng.integers(0, 250, size=len(bits))          # duplicated ids
    index = HammingIndex.from_bits(bits, ids, model="m")
    assert index.n_items == 600 and index.n_buckets < 600
    queries = bits[:12] ^ (rng.random((12, n_bits)) < 2.0 / n_bits)
    for radius in range(4):
        got_ids, got_dist = index.lookup(queries, radius, return_distances=True)
        want = brute_force_lookup(queries, bits, ids, radius)
        for got_i, got_d, (want_i, want_d) in zip(got_ids, got_dist, want, strict=True):
            np.testing.assert_array_equal(got_i, want_i)
            np.testing.assert_array_equal(got_d, want_d)
        assert index.lookup(pack_bits(queries), radius)[0].tolist() == got_ids[0].tolist()


def test_flip_masks_count_and_weights():
    masks, weights = flip_masks(10, 3)
    assert len(masks) == 1 + 10 + 45 + 120
    np.testing.assert_array_equal(unpack_bits(masks, 10).sum(axis=1), weights)
    assert len(np.unique(masks, axis=0)) == len(masks)


def test_rank_is_exhaustive_and_stable_by_id():
    rng = np.random.default_rng(1)
    bits = rng.random((300, 20)) > 0.5
    bits[100:150] = bits[:50]
    ids = rng.permutation(300)[::-1].copy()
    index = HammingIndex.from_bits(bits, ids)
    queries = rng.random((9, 20)) > 0.5
    dist = naive_distances(queries, bits)
    want = np.array([ids[np.lexsort((ids, row))] for row in dist])
    got_ids, got_dist = index.rank(queries)
    np.testing.assert_array_equal(got_ids, want)
    np.testing.assert_array_equal(got_dist, np.sort(dist, axis=1))
    top_ids, top_dist = index.rank(queries, k=25)
    np.testing.assert_array_equal(top_ids, want[:, :25])
    np.testing.assert_array_equal(top_dist, np.sort(dist, axis=1)[:, :25])


def test_padding_bits_of_packed_codes_are_ignored():
    bits = np.random.default_rng(2).random((40, 12)) > 0.5
    index = HammingIndex.from_bits(bits)
    noisy = pack_bits(bits[:5])
    noisy[:, -1] |= 0x0F                                 # the 4 bits past bit 12
    for a, b in zip(index.lookup(noisy, 2), index.lookup(bits[:5], 2), strict=True):
        np.testing.assert_array_equal(a, b)
    padded_index = HammingIndex(pack_bits(bits) | np.array([0, 0x0F], dtype=np.uint8), n_bits=12)
    np.testing.assert_array_equal(padded_index.rank(bits[:5])[0], index.rank(bits[:5])[0])


def test_query_with_wrong_number_of_bits_is_a_data_error():
    index = HammingIndex.from_bits(np.random.default_rng(0).random((10, 12)) > 0.5)
    with pytest.raises(DataError, match="12-bit"):
        index.lookup(np.zeros((2, 16), dtype=bool), 1)
    with pytest.raises(DataError):
        index.rank(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(DataError):
        index.lookup(np.zeros(12, dtype=bool))
    with pytest.raises(ConfigError):
        index.lookup(np.zeros((1, 12), dtype=bool), radius=-1)


def test_million_items_build_and_radius_lookup():
    rng = np.random.default_rng(0)
    packed = rng.integers(0, 256, size=(1_000_000, 4), dtype=np.uint8)
    index = HammingIndex(packed)
    flips = pack_bits(rng.random((100, 32)) < 1.5 / 32)
    queries = packed[rng.integers(0, len(packed), 100)] ^ flips   # near an item, mostly
    found = index.lookup(queries, radius=2)
    # about 81% of the queries lie within 2 flips of their source item (measured: 86 have a hit)
    assert len(found) == 100 and sum(len(ids) > 0 for ids in found) >= 70
    dist = hamming_distances(queries[:5], packed)
    for row, got in zip(dist, found[:5], strict=True):
        within = np.flatnonzero(row <= 2)
        np.testing.assert_array_equal(got, within[np.lexsort((within, row[within]))])


# --- save / load ---------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    bits = np.random.default_rng(3).random((200, 20)) > 0.5
    index = HammingIndex.from_bits(bits, np.arange(200) * 7, model="dbn-784-500-20:abc123")
    path = index.save(tmp_path / "index")
    assert sorted(p.name for p in path.iterdir()) == ["index.json", "index.safetensors"]
    loaded = HammingIndex.load(path, model="dbn-784-500-20:abc123")
    assert (loaded.n_bits, loaded.n_items, loaded.model) == (20, 200, "dbn-784-500-20:abc123")
    for a, b in zip(index.lookup(bits[:5], 3), loaded.lookup(bits[:5], 3), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(index.rank(bits[:5])[0], loaded.rank(bits[:5])[0])
    with pytest.raises(OutputExistsError):
        index.save(path)
    index.save(path, overwrite=True)
    with pytest.raises(CheckpointError, match="built for model"):
        HammingIndex.load(path, model="another-model")


def test_load_rejects_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no hash index"):
        HammingIndex.load(tmp_path / "nothing")
    path = HammingIndex.from_bits(np.eye(16, dtype=bool)).save(tmp_path / "index")
    meta = json.loads((path / "index.json").read_text())

    (path / "index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        HammingIndex.load(path)
    (path / "index.json").write_text(json.dumps({**meta, "format": "sparseae-model"}))
    with pytest.raises(CheckpointError, match="not a sparseae hash index"):
        HammingIndex.load(path)
    (path / "index.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="version"):
        HammingIndex.load(path)
    (path / "index.json").write_text(json.dumps({**meta, "n_items": 17}))
    with pytest.raises(CheckpointError, match="does not match"):
        HammingIndex.load(path)
    (path / "index.json").write_text(json.dumps(meta))
    data = (path / "index.safetensors").read_bytes()
    (path / "index.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        HammingIndex.load(path)
    (path / "index.json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        HammingIndex.load(path)


# --- baselines -----------------------------------------------------------------------------

def test_itq_quantization_loss_decreases_and_rotation_stays_orthogonal(digits):
    X, _ = digits
    itq = ITQ(16, n_iter=30, random_state=0).fit(X)
    loss = itq.loss_history_
    assert len(loss) == 30
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])
    assert loss[-1] < 0.95 * loss[0]  # measured 0.88-0.90 over seeds 0-2
    np.testing.assert_allclose(itq.rotation_.T @ itq.rotation_, np.eye(16), atol=1e-10)
    bits = itq.encode(X)
    assert bits.dtype == np.bool_ and bits.shape == (len(X), 16)


def test_hashers_validate_inputs(digits):
    X, _ = digits
    with pytest.raises(ConfigError):
        PCAHashing(0)
    with pytest.raises(ConfigError, match="exceeds"):
        ITQ(65).fit(X)
    with pytest.raises(ConfigError):
        RandomProjectionLSH(8, random_state="seed")
    with pytest.raises(NotFittedError):
        PCAHashing(4).encode(X)
    bad = X[:10].copy()
    bad[3, 2] = np.inf
    with pytest.raises(DataError, match="row 3"):
        PCAHashing(4).fit(bad)
    with pytest.raises(DataError):
        PCAHashing(4).fit(X).encode(X[:, :10])
    assert RandomProjectionLSH(100, random_state=0).fit_encode(X).shape == (len(X), 100)


def _map_of(hasher, X, y, queries, database):
    hasher.fit(X[database])
    dist = hamming_distances(pack_bits(hasher.encode(X[queries])), pack_bits(hasher.encode(X[database])))
    return mean_average_precision(y[queries], y[database], dist)


def test_itq_beats_pca_hashing_and_all_beat_random_codes(digits):
    # measured (16 bits, 20 queries per class, seed 0): LSH 0.324, PCAH 0.343, ITQ 0.627, random 0.104
    X, y = digits
    queries, database = mnist_retrieval_split(y, n_per_class=20, random_state=0)
    scores = {name: _map_of(hasher, X, y, queries, database) for name, hasher in [
        ("lsh", RandomProjectionLSH(16, random_state=0)), ("pcah", PCAHashing(16)),
        ("itq", ITQ(16, random_state=0))]}
    random_bits = pack_bits(np.random.default_rng(0).random((len(y), 16)) > 0.5)
    chance = mean_average_precision(y[queries], y[database],
                                    hamming_distances(random_bits[queries], random_bits[database]))
    assert chance < 0.13
    assert scores["itq"] >= scores["pcah"] + 0.15
    assert scores["itq"] >= 0.55
    assert min(scores["lsh"], scores["pcah"]) >= 0.25


# --- metrics -------------------------------------------------------------------------------

QUERY_LABELS = np.array([0, 1, 2])
DATABASE_LABELS = np.array([0, 1, 0, 1])
DISTANCES = np.array([[1, 0, 2, 1],      # ranking 1,0,3,2 → relevant at ranks 2, 4: AP (1/2 + 2/4)/2
                      [0, 0, 2, 2],      # tie: database order 0,1,2,3 → ranks 2, 4: AP 1/2
                      [3, 3, 3, 3]])     # class 2 is absent from the database: AP 0


def test_mean_average_precision_by_hand():
    per_query = mean_average_precision(QUERY_LABELS, DATABASE_LABELS, DISTANCES, per_query=True)
    np.testing.assert_allclose(per_query, [0.5, 0.5, 0.0])
    assert mean_average_precision(QUERY_LABELS, DATABASE_LABELS, DISTANCES) == pytest.approx(1 / 3)
    perfect = mean_average_precision([0], DATABASE_LABELS, [[0, 1, 0, 1]])
    assert perfect == pytest.approx(1.0)
    with pytest.raises(DataError, match="shape"):
        mean_average_precision(QUERY_LABELS, DATABASE_LABELS, DISTANCES[:2])


def test_precision_within_radius_by_hand():
    # radius 1: query 0 retrieves items 0,1,3 (1 relevant), query 1 items 0,1 (1 relevant),
    # query 2 nothing (counts as precision 0)
    result = precision_within_radius(QUERY_LABELS, DATABASE_LABELS, DISTANCES, radius=1)
    assert result.precision == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert result.hit_fraction == pytest.approx(2 / 3)
    assert precision_within_radius(QUERY_LABELS, DATABASE_LABELS, DISTANCES, radius=0).precision \
        == pytest.approx((0 + 1 / 2 + 0) / 3)


def test_precision_recall_curve_by_hand():
    # pairs within r: 3, 5, 8, 12; relevant pairs within r: 1, 2, 4, 4 (of 4)
    curve = precision_recall_curve(QUERY_LABELS, DATABASE_LABELS, DISTANCES)
    np.testing.assert_array_equal(curve.radius, [0, 1, 2, 3])
    np.testing.assert_allclose(curve.precision, [1 / 3, 2 / 5, 4 / 8, 4 / 12])
    np.testing.assert_allclose(curve.recall, [1 / 4, 2 / 4, 1, 1])
    longer = precision_recall_curve(QUERY_LABELS, DATABASE_LABELS, DISTANCES + 1, n_bits=5)
    assert np.isnan(longer.precision[0]) and longer.recall[-1] == 1.0
    with pytest.raises(DataError):
        precision_recall_curve(QUERY_LABELS, DATABASE_LABELS, DISTANCES, n_bits=2)


def test_mnist_retrieval_split_protocol():
    y = np.repeat(np.arange(10), [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958])
    y = np.random.default_rng(5).permutation(y)
    queries, database = mnist_retrieval_split(y, n_per_class=100, random_state=0)
    assert (len(queries), len(database)) == (1000, 69000)
    np.testing.assert_array_equal(np.bincount(y[queries]), np.full(10, 100))
    np.testing.assert_array_equal(np.sort(np.concatenate([queries, database])), np.arange(70000))
    again, _ = mnist_retrieval_split(y, n_per_class=100, random_state=0)
    np.testing.assert_array_equal(queries, again)
    other, _ = mnist_retrieval_split(y, n_per_class=100, random_state=1)
    assert not np.array_equal(queries, other)
    with pytest.raises(DataError, match="class"):
        mnist_retrieval_split(np.array([0, 0, 1, 1, 1]), n_per_class=2)
