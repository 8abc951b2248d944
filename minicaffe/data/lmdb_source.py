"""LMDB databases of Caffe `Datum` records: `LMDBSource` (reading), `LMDBWriter` (writing).

Records are read in key order (Caffe's converters write zero-padded index keys, so key order is
insertion order) and the cursor wraps around at the end.
"""
import os
import struct
import threading
import weakref

import numpy as np

from minicaffe import wire
from minicaffe.data.datum import datum_to_array, decode_datum
from minicaffe.data.source import Source
from minicaffe.errors import DataError


def _import_lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError("the 'lmdb' package is needed for backend: LMDB (pip install lmdb)") from None
    return lmdb


_ENVS = {}                     # realpath -> [Environment, users]
_ENVS_LOCK = threading.Lock()


# LMDB's on-disk layout (lmdb's mdb.c, 64-bit builds): pages 0 and 1 each hold a meta record
# after the 16-byte page header: magic (u32), version (u32), address (u64), map size (u64), two
# MDB_db records of 48 bytes (the free-list db's first u32 is the page size), last used page
# (u64), transaction id (u64). The live meta is the one with the larger transaction id.
_META_MAGIC = 0xBEEFC0DE
_PAGE_HEADER = 16
_META = struct.Struct("<IIQQ48s48sQQ")


def _meta_pages(head):
    """(page size, last page) from the live meta page of the data file's first bytes, or None
    when neither meta page is readable."""
    metas = []
    offset = _PAGE_HEADER
    for _ in range(2):
        if len(head) < offset + _META.size:
            break
        magic, _version, _addr, _mapsize, free_db, _main_db, last_pg, txnid = \
            _META.unpack_from(head, offset)
        if magic != _META_MAGIC:
            break
        psize = struct.unpack_from("<I", free_db)[0]
        metas.append((txnid, psize, last_pg))
        if not 512 <= psize <= 1 << 20:
            break
        offset = psize + _PAGE_HEADER                 # the second meta page
    if not metas:
        return None
    _, psize, last_pg = max(metas)
    return psize, last_pg


def check_data_file(path):
    """Raise DataError unless the LMDB data file of `path` (a folder or the file itself) is as
    long as its meta page says. LMDB maps the file and reads pages straight from memory: a page
    past the end of a truncated file is a SIGBUS that kills the process, not an error."""
    data = os.path.join(path, "data.mdb") if os.path.isdir(path) else path
    try:
        size = os.path.getsize(data)
        with open(data, "rb") as f:
            head = f.read(1 << 21)
    except OSError as e:
        raise DataError(f"{path}: cannot read the LMDB data file ({e.strerror})") from None
    meta = _meta_pages(head)
    if meta is None:
        raise DataError(f"{path}: {os.path.basename(data)} ({size} bytes) has no readable LMDB "
                        "meta page; not an LMDB, or cut short")
    psize, last_pg = meta
    need = (last_pg + 1) * psize
    if size < need:
        raise DataError(f"{path}: truncated LMDB: {os.path.basename(data)} has {size} bytes but "
                        f"its meta page needs {need} ({last_pg + 1} pages of {psize}); the "
                        "database was cut short (copy or convert it again)")


def open_env(path):
    """A read-only Environment for `path`, shared within the process: the lmdb package refuses
    to open one database twice in a process (e.g. TRAIN and TEST nets reading the same LMDB).
    The data file's size is checked first (check_data_file). Pair every call with
    `release_env(path)`."""
    lmdb = _import_lmdb()
    key = os.path.realpath(path)
    with _ENVS_LOCK:
        entry = _ENVS.get(key)
        if entry is None:
            check_data_file(path)
            try:
                env = lmdb.open(str(path), readonly=True, lock=False, readahead=False,
                                subdir=os.path.isdir(path), max_readers=126)
            except lmdb.Error as e:
                raise DataError(f"{path}: cannot open as LMDB ({e})") from None
            entry = _ENVS[key] = [env, 0]
        entry[1] += 1
        return entry[0]


def release_env(path):
    key = os.path.realpath(path)
    with _ENVS_LOCK:
        entry = _ENVS.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            entry[0].close()
            del _ENVS[key]


def _finish(txn, path):
    txn.abort()
    release_env(path)


class LMDBSource(Source):
    """Datum records of an LMDB, as `(n, C, H, W)` batches (uint8, or float32 for float_data)
    and int64 labels. The first record fixes the shape; a record of another shape raises
    DataError naming the database, key and record index."""

    def __init__(self, path, force_color=False, force_gray=False):
        self.name = str(path)
        if not os.path.exists(path):
            raise DataError(f"{path}: no such LMDB (write one with `python -m minicaffe.data convert`)")
        self._env = open_env(path)
        self._count = self._env.stat()["entries"]
        if self._count == 0:
            self._release()
            raise DataError(f"{path}: LMDB holds no records")
        self._force = (force_color, force_gray)
        self._txn = self._env.begin(buffers=False)
        # Closing when the source is garbage-collected returns the shared environment, so a
        # database rewritten later in the same process is opened afresh.
        self._finalizer = weakref.finalize(self, _finish, self._txn, self.name)
        self._cursor = self._txn.cursor()
        self._cursor.first()
        self._index = 0
        first = self._read_current()
        self.shape = first[0].shape
        self.dtype = first[0].dtype
        self._template = self._layout(self._cursor.value())

    def __len__(self):
        return self._count

    def _read_current(self):
        key = self._cursor.key()
        where = f"{self.name}: record {self._index} (key {key.decode('latin-1')!r})"
        datum = decode_datum(self._cursor.value(), where)
        return datum_to_array(datum, where, *self._force), datum.label, where

    def _advance(self):
        self._index += 1
        if not self._cursor.next():
            self._cursor.first()
            self._index = 0

    def _layout(self, value):
        """The fixed byte layout of a uint8 Datum as Caffe and `convert` serialise it,
        `08 C 10 H 18 W 22 <len> <C*H*W bytes> 28 <label < 128>`, as (header, record length),
        or None when the first record is not laid out so (float, encoded, big labels...)."""
        if self.dtype != np.uint8 or any(self._force):
            return None
        c, h, w = self.shape
        header = (wire.Writer().varint(1, c).varint(2, h).varint(3, w).getvalue()
                  + b"\x22" + wire.encode_varint(c * h * w))
        length = len(header) + c * h * w + 2
        if len(value) != length or not value.startswith(header) or value[-2] != 0x28 \
                or value[-1] >= 0x80:
            return None
        return header, length

    def _fast_batch(self, values):
        """Decode a whole batch at once when every record has the first record's layout
        (checked byte by byte outside the pixels); None to fall back to per-record parsing."""
        if self._template is None or any(len(v) != self._template[1] for v in values):
            return None
        header, length = self._template
        rows = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), length)
        h = len(header)
        if not ((rows[:, :h] == np.frombuffer(header, np.uint8)).all()
                and (rows[:, -2] == 0x28).all() and (rows[:, -1] < 0x80).all()):
            return None
        data = rows[:, h:length - 2].reshape((len(values),) + self.shape)
        return data, rows[:, -1].astype(np.int64)

    def next_batch(self, n):
        records = []
        for _ in range(n):
            records.append((self._index, self._cursor.key(), self._cursor.value()))
            self._advance()
        fast = self._fast_batch([r[2] for r in records])
        if fast is not None:
            return fast
        data = np.empty((n,) + self.shape, dtype=self.dtype)
        labels = np.empty(n, dtype=np.int64)
        for i, (index, key, value) in enumerate(records):
            where = f"{self.name}: record {index} (key {key.decode('latin-1')!r})"
            datum = decode_datum(value, where)
            array = datum_to_array(datum, where, *self._force)
            if array.shape != self.shape:
                raise DataError(f"{where}: Datum shape {array.shape} differs from the first "
                                f"record's {self.shape}")
            data[i] = array
            labels[i] = datum.label
        return data, labels

    def skip(self, k):
        for _ in range(k % self._count):
            self._advance()

    def _release(self):
        self._env = None
        release_env(self.name)

    def close(self):
        if self._env is not None:
            self._env = None
            self._finalizer()


class LMDBWriter:
    """Writes `key → value` pairs into a new LMDB in batched transactions, growing the map
    when full. Use as a context manager; `put(key: str|bytes, value: bytes)`."""

    def __init__(self, path, commit_every=1000, map_size=1 << 26):
        lmdb = _import_lmdb()
        self._lmdb = lmdb
        if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
            raise DataError(f"{path}: already exists; refusing to overwrite (remove it first)")
        os.makedirs(path, exist_ok=True)
        self.path = path
        self._env = lmdb.open(str(path), map_size=map_size, subdir=True)
        self._pending = []
        self._commit_every = commit_every
        self.count = 0

    def put(self, key, value):
        if isinstance(key, str):
            key = key.encode("utf-8")
        self._pending.append((key, value))
        self.count += 1
        if len(self._pending) >= self._commit_every:
            self.flush()

    def flush(self):
        while self._pending:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
                self._pending = []
            except self._lmdb.MapFullError:
                self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def close(self):
        if self._env is not None:
            self.flush()
            self._env.close()
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close()
