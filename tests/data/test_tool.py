"""The data tool: downloads against a local HTTP server on 127.0.0.1 (checksums, resume,
dropped connections, offline fallback), convert → LMDB, compute-mean. Never uses the internet."""
import gzip
import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest

from minicaffe.data import CIFARSource, LMDBSource, read_mean_file
from minicaffe.data.__main__ import main
from minicaffe.data.download import DatasetSpec, RemoteFile, fetch_file, get_dataset
from minicaffe.errors import DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` with HTTP Range support; `server.mode` can ignore Range or drop
    the connection after `server.drop_after` bytes."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.mode != "ignore-range":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.mode == "drop":
            srv.mode = "normal"                  # only the first request is cut short
            self.wfile.write(payload[:srv.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.mode, srv.drop_after = {}, [], "normal", 0
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def _remote(server, name, content, md5=None):
    server.files[name] = content
    return RemoteFile(name, [server.url + name], md5 or hashlib.md5(content).hexdigest())


def _quiet(*args):
    pass


def test_download_verifies_checksum(server, tmp_path, rng):
    content = rng.bytes(200_000)
    remote = _remote(server, "a.bin", content)
    path = fetch_file(remote, str(tmp_path), log=_quiet)
    assert open(path, "rb").read() == content
    # present and valid: no second request
    fetch_file(remote, str(tmp_path), log=_quiet)
    assert len(server.requests) == 1


def test_checksum_mismatch_deletes_and_reports(server, tmp_path, rng):
    remote = _remote(server, "a.bin", rng.bytes(1000), md5="0" * 32)
    with pytest.raises(DataError, match=r"a.bin: checksum mismatch after downloading .* expected 0{32}"):
        fetch_file(remote, str(tmp_path), log=_quiet)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_resume_from_partial_file(server, tmp_path, rng):
    content = rng.bytes(300_000)
    remote = _remote(server, "a.bin", content)
    (tmp_path / "a.bin.part").write_bytes(content[:123_456])
    fetch_file(remote, str(tmp_path), log=_quiet)
    assert (tmp_path / "a.bin").read_bytes() == content
    assert server.requests == [("/a.bin", "bytes=123456-")]


def test_dropped_connection_keeps_part_then_resumes(server, tmp_path, rng):
    content = rng.bytes(300_000)
    remote = _remote(server, "a.bin", content)
    server.mode, server.drop_after = "drop", 100_000
    with pytest.raises(DataError, match=r"100000 bytes kept in .*a.bin.part; run again to resume"):
        fetch_file(remote, str(tmp_path), log=_quiet)
    assert (tmp_path / "a.bin.part").read_bytes() == content[:100_000]
    fetch_file(remote, str(tmp_path), log=_quiet)
    assert (tmp_path / "a.bin").read_bytes() == content
    assert server.requests[-1] == ("/a.bin", "bytes=100000-")


def test_server_ignoring_range_restarts(server, tmp_path, rng):
    content = rng.bytes(50_000)
    remote = _remote(server, "a.bin", content)
    (tmp_path / "a.bin.part").write_bytes(b"x" * 1000)       # stale bytes: must not be kept
    server.mode = "ignore-range"
    fetch_file(remote, str(tmp_path), log=_quiet)
    assert (tmp_path / "a.bin").read_bytes() == content


def test_complete_part_file_answered_416(server, tmp_path, rng):
    content = rng.bytes(5000)
    remote = _remote(server, "a.bin", content)
    (tmp_path / "a.bin.part").write_bytes(content)
    fetch_file(remote, str(tmp_path), log=_quiet)
    assert (tmp_path / "a.bin").read_bytes() == content


def test_corrupt_existing_file_is_fetched_again(server, tmp_path, rng):
    content = rng.bytes(5000)
    remote = _remote(server, "a.bin", content)
    (tmp_path / "a.bin").write_bytes(b"garbage")
    fetch_file(remote, str(tmp_path), log=_quiet)
    assert (tmp_path / "a.bin").read_bytes() == content


def _gz_spec(server, tmp_path, names=("x-images-idx3-ubyte.gz", "x-labels-idx1-ubyte.gz"), url=None):
    """A dataset of gzipped files, published with one gzip header and known content hashes."""
    files = []
    for i, name in enumerate(names):
        data = bytes(range(i, i + 100)) * 50
        published = gzip.compress(data, mtime=1)
        server.files[name] = published
        files.append(RemoteFile(name, [(url or server.url) + name], hashlib.md5(published).hexdigest(),
                                hashlib.sha256(data).hexdigest()))
    return {"toy": DatasetSpec("toy", str(tmp_path / "default"), files,
                               hint="install the toy package into {dir}")}, files


def test_offline_uses_verified_local_copy(server, tmp_path):
    dead = "http://127.0.0.1:9/"                 # discard port: connection refused
    specs, files = _gz_spec(server, tmp_path, url=dead)
    local = tmp_path / "usr-share"
    local.mkdir()
    for f in files:
        # re-compressed differently (as Debian does): md5 differs, content hash matches
        data = gzip.decompress(server.files[f.name])
        (local / f.name).write_bytes(gzip.compress(data, mtime=12345, compresslevel=1))
    folder = get_dataset("toy", str(tmp_path / "out"), local_dirs=[str(local)], specs=specs, log=_quiet)
    for f in files:
        assert gzip.decompress((tmp_path / "out" / f.name).read_bytes()) == gzip.decompress(server.files[f.name])
    assert folder == str(tmp_path / "out") and not server.requests


def test_offline_without_local_copy_says_what_to_do(server, tmp_path):
    specs, files = _gz_spec(server, tmp_path, url="http://127.0.0.1:9/")
    bad_local = tmp_path / "bad"
    bad_local.mkdir()
    (bad_local / files[0].name).write_bytes(b"not the file")        # wrong copies are ignored
    with pytest.raises(DataError) as info:
        get_dataset("toy", str(tmp_path / "out"), local_dirs=[str(bad_local)], specs=specs, log=_quiet)
    msg = str(info.value)
    assert "could not get x-images-idx3-ubyte.gz (no network access?)" in msg
    assert "To fix: install the toy package into " + str(tmp_path / "out") in msg


def test_get_cifar_extracts_batches(server, tmp_path, helpers):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for k, name in enumerate(names):
            helpers.write_cifar_batch(tmp_path / name, n=2, seed=k)
            tar.add(tmp_path / name, arcname=f"cifar-10-batches-bin/{name}")
        evil = tarfile.TarInfo("../../evil.bin")
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    remote = _remote(server, "cifar-10-binary.tar.gz", buf.getvalue())
    specs = {"cifar10": DatasetSpec("cifar10", "x", [remote], hint="")}
    folder = get_dataset("cifar10", str(tmp_path / "c"), local_dirs=[], specs=specs, log=_quiet)
    src = CIFARSource(f"{folder}/cifar-10-batches-bin")
    assert len(src) == 10
    first, _ = helpers.write_cifar_batch(tmp_path / "again.bin", n=2, seed=0)
    np.testing.assert_array_equal(src.next_batch(2)[0], first)
    assert not (tmp_path / "evil.bin").exists() and not (tmp_path.parent / "evil.bin").exists()
    # second run: batches present, nothing fetched
    n = len(server.requests)
    get_dataset("cifar10", str(tmp_path / "c"), local_dirs=[], specs=specs, log=_quiet)
    assert len(server.requests) == n


# -- convert / compute-mean -------------------------------------------------------------------
def test_convert_idx_to_lmdb_exact(tmp_path, helpers, capsys):
    path, images, labels = helpers.write_idx_pair(tmp_path, n=12, h=7, w=5)
    assert main(["convert", str(path), str(tmp_path / "db")]) == 0
    assert "wrote 12 records" in capsys.readouterr().out
    src = LMDBSource(str(tmp_path / "db"))
    data, lab = src.next_batch(12)
    np.testing.assert_array_equal(data[:, 0], images)
    np.testing.assert_array_equal(lab, labels)
    src.close()
    # keys are Caffe's zero-padded indices
    import lmdb
    with lmdb.open(str(tmp_path / "db"), readonly=True, lock=False) as env, env.begin() as txn:
        assert [k for k, _ in txn.cursor()][:2] == [b"00000000", b"00000001"]


def test_convert_cifar_and_mean(tmp_path, helpers):
    images, labels = helpers.write_cifar_batch(tmp_path / "data_batch_1.bin", n=5)
    assert main(["convert", str(tmp_path / "data_batch_1.bin"), str(tmp_path / "db")]) == 0
    data, lab = LMDBSource(str(tmp_path / "db")).next_batch(5)
    np.testing.assert_array_equal(data, images)
    np.testing.assert_array_equal(lab, labels)
    assert main(["compute-mean", str(tmp_path / "db"), str(tmp_path / "mean.binaryproto")]) == 0
    expected = images.astype(np.float64).mean(axis=0).astype(np.float32)
    np.testing.assert_allclose(read_mean_file(tmp_path / "mean.binaryproto"), expected, rtol=1e-6)
    assert main(["compute-mean", str(tmp_path / "data_batch_1.bin"), str(tmp_path / "m2"),
                 "--backend", "cifar10"]) == 0
    assert (tmp_path / "m2").read_bytes() == (tmp_path / "mean.binaryproto").read_bytes()


@pytest.mark.parametrize("encoded", [False, True])
def test_convert_imageset(tmp_path, rng, encoded):
    from PIL import Image
    arrays = rng.integers(0, 256, size=(4, 3, 5, 3), dtype=np.uint8)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / f"p{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"p{i}.png {i + 10}\n" for i in range(4)))
    args = ["convert", str(tmp_path / "list.txt"), str(tmp_path / "db"), "--root-folder", f"{tmp_path}/",
            "--shuffle", "--seed", "3"] + (["--encoded"] if encoded else [])
    assert main(args) == 0
    data, lab = LMDBSource(str(tmp_path / "db")).next_batch(4)
    assert sorted(lab.tolist()) == [10, 11, 12, 13] and lab.tolist() != [10, 11, 12, 13]
    for img, label in zip(data, lab):
        np.testing.assert_array_equal(img, arrays[label - 10][:, :, ::-1].transpose(2, 0, 1))


def test_tool_errors_exit_1_with_message(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "none-images-idx3-ubyte.gz"), str(tmp_path / "db")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "weird.dat"), str(tmp_path / "db2")]) == 1
    assert "pass --format" in capsys.readouterr().err
    assert main(["compute-mean", str(tmp_path / "nodb"), str(tmp_path / "m")]) == 1
    assert "no such LMDB" in capsys.readouterr().err
