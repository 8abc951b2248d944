"""Batch shards (minicaffe/data/shard.py): P replicas of a TRAIN data layer with batch B read,
together, exactly the batches one layer with batch P*B reads (same records, same crops and
mirrors, same shuffles, across epoch boundaries), for every source; Dropout's masks likewise;
TEST layers are never sharded. No MPI here: the replicas are built one after another in this
process, each under its own BatchShard."""
import numpy as np
import pytest
from PIL import Image

from minicaffe.blob import Blob
from minicaffe.catalog import create_layer
from minicaffe.data import ArraySource, DataTransformer, HDF5Source, LMDBWriter, encode_datum
from minicaffe.data.shard import BatchShard, batch_sharding, current_batch_shard, draw_rows, shard_for
from minicaffe.errors import DataError
from minicaffe.testing.layer_case import layer_parameter

from tests.data.conftest import idx_bytes, write_cifar_batch

SEED = 77


def _layer(type_name, params, tops, shard, phase="TRAIN"):
    lp = layer_parameter("d", type_name, [], list(tops), params)
    layer = create_layer(lp, phase)
    top = [Blob((), name=t) for t in tops]
    np.random.seed(SEED)                       # the solver's random_seed, the same everywhere
    with batch_sharding(shard):
        layer.setup([], top)
    layer.reshape([], top)
    return layer, top


def _forward(layer, top):
    layer.reshape([], top)
    layer.forward([], top)
    return [np.array(t.data) for t in top]


def assert_sharded_like_single(type_name, params_for_batch, tops=("data", "label"), P=2, B=3,
                               iters=7):
    """Each of `iters` global batches: replicas' tops concatenated == the single layer's."""
    single, single_top = _layer(type_name, params_for_batch(P * B), tops, None)
    replicas = [_layer(type_name, params_for_batch(B), tops, BatchShard(r, P)) for r in range(P)]
    try:
        for it in range(iters):
            want = _forward(single, single_top)
            got = [_forward(layer, top) for layer, top in replicas]
            for k, name in enumerate(tops):
                joined = np.concatenate([g[k] for g in got])
                np.testing.assert_array_equal(joined, want[k], err_msg=f"top '{name}', global "
                                              f"batch {it}, {P} replicas of batch {B}")
    finally:
        for layer in [single] + [r[0] for r in replicas]:
            if hasattr(layer, "close"):
                layer.close()


def _idx(folder, n=11, h=6, w=5):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)            # the record's index, to read duplicates off
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(n) % 10))
    return str(folder / "train-images-idx3-ubyte")


@pytest.mark.parametrize("P, B", [(2, 3), (3, 2), (4, 1)])
def test_idx_with_crop_and_mirror(tmp_path, P, B):
    src = _idx(tmp_path)
    assert_sharded_like_single("Data", lambda b: (
        f"data_param {{ source: '{src}' backend: IDX batch_size: {b} }} "
        "transform_param { crop_size: 4 mirror: true scale: 0.5 }"), P=P, B=B)


def test_cifar_and_rand_skip(tmp_path):
    write_cifar_batch(tmp_path / "data_batch_1.bin", n=9)
    src = tmp_path / "data_batch_1.bin"
    assert_sharded_like_single("Data", lambda b: (
        f"data_param {{ source: '{src}' backend: CIFAR10 batch_size: {b} rand_skip: 5 }} "
        "transform_param { mirror: true mean_value: 120 }"))


def test_lmdb_with_prefetch(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "db"
    with LMDBWriter(str(path)) as db:
        for i in range(13):
            db.put(f"{i:08d}", encode_datum(rng.integers(0, 256, (2, 5, 5), dtype=np.uint8), i))
    assert_sharded_like_single("Data", lambda b: (
        f"data_param {{ source: '{path}' backend: LMDB batch_size: {b} prefetch: 2 }} "
        "transform_param { crop_size: 3 mirror: true }"), P=3, B=2)


def test_hdf5_shuffled_files(tmp_path):
    import h5py
    rng = np.random.default_rng(5)
    names = []
    for k, rows in enumerate((4, 7, 3)):
        with h5py.File(tmp_path / f"f{k}.h5", "w") as f:
            f["data"] = rng.standard_normal((rows, 2, 3, 3)).astype(np.float32)
            f["label"] = np.arange(rows, dtype=np.float32) + 10 * k
        names.append(f"f{k}.h5")
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    src = tmp_path / "list.txt"
    assert_sharded_like_single("HDF5Data", lambda b: (
        f"hdf5_data_param {{ source: '{src}' batch_size: {b} shuffle: true }}"), iters=9)
    # ... and with a transform (which HDF5Data runs in a prefetch thread)
    assert_sharded_like_single("HDF5Data", lambda b: (
        f"hdf5_data_param {{ source: '{src}' batch_size: {b} shuffle: true }} "
        "transform_param { crop_size: 2 mirror: true }"), P=2, B=2, iters=9)


def test_hdf5_skip_equals_reading(tmp_path):
    import h5py
    rng = np.random.default_rng(6)
    for k, rows in enumerate((3, 5)):
        with h5py.File(tmp_path / f"g{k}.h5", "w") as f:
            f["data"] = rng.standard_normal((rows, 2)).astype(np.float32)
    (tmp_path / "list.txt").write_text("g0.h5\ng1.h5\n")
    a = HDF5Source(str(tmp_path / "list.txt"), ["data"], shuffle=True, seed=1)
    b = HDF5Source(str(tmp_path / "list.txt"), ["data"], shuffle=True, seed=1)
    for k in (2, 4, 7, 1, 9):
        a.next_batch(k)
        b.skip(k)
        np.testing.assert_array_equal(a.next_batch(3)[0], b.next_batch(3)[0])


def test_image_data_shuffled(tmp_path):
    rng = np.random.default_rng(7)
    lines = []
    for i in range(7):
        Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(tmp_path / f"i{i}.png")
        lines.append(f"i{i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    src, root = tmp_path / "list.txt", f"{tmp_path}/"
    assert_sharded_like_single("ImageData", lambda b: (
        f"image_data_param {{ source: '{src}' root_folder: '{root}' batch_size: {b} "
        "shuffle: true rand_skip: 3 } transform_param { crop_size: 4 mirror: true }"), iters=6)


def test_memory_data_reads_its_slice_and_checks_the_global_batch():
    rng = np.random.default_rng(8)
    data = rng.standard_normal((12, 1, 2, 2)).astype(np.float32)
    labels = np.arange(12, dtype=np.float32)
    P, B = 2, 3
    params = "memory_data_param { batch_size: %d channels: 1 height: 2 width: 2 }"
    single, single_top = _layer("MemoryData", params % (P * B), ("data", "label"), None)
    single.set_input_arrays(data, labels)
    replicas = [_layer("MemoryData", params % B, ("data", "label"), BatchShard(r, P))
                for r in range(P)]
    for layer, _ in replicas:
        layer.set_input_arrays(data, labels)
    for _ in range(5):
        want = _forward(single, single_top)[1]
        got = np.concatenate([_forward(layer, top)[1] for layer, top in replicas])
        np.testing.assert_array_equal(got, want)
    with pytest.raises(DataError, match=r"multiple of batch_size 3 x 2 replicas = 6"):
        replicas[0][0].set_input_arrays(data[:9], labels[:9])


def test_dropout_masks_are_the_global_batch_rows():
    P, B = 3, 2
    x = np.random.default_rng(9).standard_normal((P * B, 4, 3)).astype(np.float32)

    def run(n, shard, rows):
        lp = layer_parameter("drop", "Dropout", ["x"], ["y"], "dropout_param { dropout_ratio: 0.3 }")
        layer = create_layer(lp, "TRAIN")
        bottom, top = [Blob(x[rows].shape)], [Blob(())]
        bottom[0].data[...] = x[rows]
        with batch_sharding(shard):
            layer.setup(bottom, top)
        layer.reshape(bottom, top)
        np.random.seed(SEED)
        layer.forward(bottom, top)
        return np.array(top[0].data)

    want = run(P * B, None, slice(None))
    got = np.concatenate([run(B, BatchShard(r, P), slice(r * B, (r + 1) * B)) for r in range(P)])
    np.testing.assert_array_equal(got, want)
    assert (want == 0).any() and (want != 0).any()


def test_test_phase_is_never_sharded(tmp_path):
    src = _idx(tmp_path)
    params = f"data_param {{ source: '{src}' backend: IDX batch_size: 4 }}"
    plain, plain_top = _layer("Data", params, ("data", "label"), None, phase="TEST")
    sharded, sharded_top = _layer("Data", params, ("data", "label"), BatchShard(1, 2), phase="TEST")
    for _ in range(4):
        np.testing.assert_array_equal(_forward(plain, plain_top)[0], _forward(sharded, sharded_top)[0])


def test_shard_context_and_helpers():
    assert current_batch_shard() is None
    shard = BatchShard(1, 3)
    with batch_sharding(shard):
        assert current_batch_shard() is shard
        assert shard_for("TRAIN") is shard and shard_for(0) is shard
        assert shard_for("TEST") is None and shard_for(1) is None
    assert current_batch_shard() is None
    with pytest.raises(ValueError, match="rank 3 outside 0..2"):
        BatchShard(3, 3)
    # the draws of the whole global batch, this replica's rows kept; the generator advances
    # as the single process's
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    got = draw_rows(a.integers, (2, 5), shard, 0, 100)
    want = b.integers(0, 100, size=(6, 5))
    np.testing.assert_array_equal(got, want[2:4])
    assert a.random() == b.random()
    assert not BatchShard(0, 2).syncs_batch_norm
    assert BatchShard(0, 2, allreduce=np.asarray).syncs_batch_norm
    assert not BatchShard(0, 1, allreduce=np.asarray).syncs_batch_norm


def test_array_source_epochs_have_no_duplicates():
    """Over whole passes the replicas read every record once (a shuffled source included)."""
    n, P, B = 12, 3, 2
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    sources = [ArraySource(images, np.arange(n), shuffle=True, seed=4) for _ in range(P)]
    for epoch in range(3):
        seen = []
        for _ in range(n // (P * B)):
            for r, src in enumerate(sources):
                seen.extend(BatchShard(r, P).read(src, B)[1].tolist())
        assert sorted(seen) == list(range(n)), f"epoch {epoch}"


def test_transformer_draws_for_the_global_batch():
    x = np.random.default_rng(2).integers(0, 256, size=(6, 3, 5, 5)).astype(np.uint8)
    param = type("P", (), {"crop_size": 3, "mirror": True, "scale": 1.0})()
    single = DataTransformer(param, "TRAIN", seed=11)(x)
    parts = [DataTransformer(param, "TRAIN", seed=11, shard=BatchShard(r, 3))(x[2 * r:2 * r + 2])
             for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), single)
