"""Fetching the standard datasets: checksum-verified, resumable downloads with local fallbacks.

`get_dataset(name, folder)` makes `folder` hold the dataset's files (MNIST and Fashion-MNIST:
the original `*-idx?-ubyte.gz`; CIFAR-10: `cifar-10-batches-bin/*.bin`). For each file it uses,
in order: a copy already in `folder` that verifies; a verified local copy (Fashion-MNIST from the
Debian package `dataset-fashion-mnist`, /usr/share/datasets/fashion-mnist); a download from the
official location (then mirrors). Downloads go to `<file>.part` and resume with an HTTP Range
request; a file whose checksum disagrees is deleted and reported.
"""
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from minicaffe.errors import DataError


@dataclass
class RemoteFile:
    """One file of a dataset: its name, where to get it, and how to check it.

    `md5` is the digest of the file as published; `content_sha256` (optional) the SHA-256 of
    its gunzipped content, which identifies re-compressed copies (Debian's) of the same data.
    """
    name: str
    urls: list
    md5: str
    content_sha256: str = None


@dataclass
class DatasetSpec:
    name: str
    default_dir: str
    files: list
    local_dirs: list = field(default_factory=list)
    hint: str = ""


_MNIST_BASES = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
_FASHION_BASES = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                  "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"]


def _idx_files(bases, digests):
    return [RemoteFile(name, [b + name for b in bases], md5, sha) for name, md5, sha in digests]


DATASETS = {
    "mnist": DatasetSpec(
        "mnist", "data/mnist",
        _idx_files(_MNIST_BASES, [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", None),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", None),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", None),
        ]),
        hint="download the four MNIST .gz files by hand from http://yann.lecun.com/exdb/mnist/ "
             "(or a mirror) into {dir}, or use Fashion-MNIST, which Debian packages "
             "(apt-get install dataset-fashion-mnist)"),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "data/fashion-mnist",
        _idx_files(_FASHION_BASES, [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
             "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
             "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ]),
        local_dirs=["/usr/share/datasets/fashion-mnist"],
        hint="install the Debian package (apt-get install dataset-fashion-mnist) and run this "
             "again, or copy the four .gz files from "
             "https://github.com/zalandoresearch/fashion-mnist into {dir}"),
    "cifar10": DatasetSpec(
        "cifar10", "data/cifar10",
        [RemoteFile("cifar-10-binary.tar.gz", ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
                    "c32a1d4ab5d03f1284b67883e8d87530")],
        hint="download cifar-10-binary.tar.gz by hand from https://www.cs.toronto.edu/~kriz/cifar.html "
             "into {dir} and run this again"),
}

CIFAR_MEMBERS = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]
_CHUNK = 1 << 16


def file_digests(path):
    """(md5 of the file, sha256 of its gunzipped content or None when not gzip)."""
    import gzip
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            md5.update(chunk)
    sha = None
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    if is_gzip:
        sha = hashlib.sha256()
        try:
            with gzip.open(path, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    sha.update(chunk)
            sha = sha.hexdigest()
        except (OSError, EOFError):
            sha = None
    return md5.hexdigest(), sha


def verifies(path, remote):
    """Whether `path` is `remote`'s file: its md5 matches, or its gunzipped content's sha256."""
    if not os.path.isfile(path):
        return False
    md5, sha = file_digests(path)
    return md5 == remote.md5 or (remote.content_sha256 is not None and sha == remote.content_sha256)


def _progress(total, desc, initial=0):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, leave=False)


def download(url, dest, remote, timeout=30, log=print):
    """Download `url` to `dest`, resuming from `dest + '.part'`, then verify against `remote`.

    Raises OSError/URLError for network failures (the caller tries the next URL) and DataError
    when the finished file fails its checksum (the partial file is removed).
    """
    part = dest + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "minicaffe-data"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:           # 416: nothing left to fetch, the .part is whole
            raise
        response = None
    if response is not None:
        with response:
            if have and response.status == 206:
                mode = "ab"
                log(f"resuming {os.path.basename(dest)} at byte {have}")
            else:
                mode, have = "wb", 0            # server ignored the Range header: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            bar = _progress(total, os.path.basename(dest), have)
            got = have
            with open(part, mode) as f:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if bar is not None:
                bar.close()
            if total is not None and got < total:
                # keep the .part: the next run resumes from here
                raise ConnectionError(f"connection closed after {got} of {total} bytes")
    md5, sha = file_digests(part)
    if md5 != remote.md5 and not (remote.content_sha256 and sha == remote.content_sha256):
        os.remove(part)
        raise DataError(f"{dest}: checksum mismatch after downloading {url}: md5 {md5}, expected "
                        f"{remote.md5}; the partial file was deleted, run the command again")
    os.replace(part, dest)


def fetch_file(remote, folder, local_dirs=(), log=print, timeout=30):
    """Make `folder/remote.name` a verified copy (existing, local, or downloaded); return its path.

    Raises DataError when no source worked, listing what was tried."""
    dest = os.path.join(folder, remote.name)
    if os.path.exists(dest):
        if verifies(dest, remote):
            log(f"{dest}: present, checksum ok")
            return dest
        log(f"{dest}: present but its checksum is wrong; fetching it again")
        os.remove(dest)
    for local in local_dirs:
        candidate = os.path.join(local, remote.name)
        if verifies(candidate, remote):
            shutil.copyfile(candidate, dest + ".copying")
            os.replace(dest + ".copying", dest)
            log(f"{dest}: copied from local copy {candidate}")
            return dest
    errors, network_only = [], True
    for url in remote.urls:
        try:
            log(f"downloading {url}")
            download(url, dest, remote, timeout=timeout, log=log)
            return dest
        except DataError as e:
            errors.append(str(e))
            network_only = False
        except (OSError, http.client.HTTPException) as e:     # URLError is an OSError
            kept = os.path.getsize(dest + ".part") if os.path.exists(dest + ".part") else 0
            resume = f" ({kept} bytes kept in {dest}.part; run again to resume)" if kept else ""
            errors.append(f"{url}: {getattr(e, 'reason', None) or e!r}{resume}")
    why = " (no network access?)" if network_only else ""
    raise DataError(f"{dest}: could not get {remote.name}{why}:\n  " + "\n  ".join(errors))


def extract_cifar(archive, folder):
    """Extract the CIFAR-10 batch files (only those names, no other paths) into
    `folder/cifar-10-batches-bin/`."""
    out = os.path.join(folder, "cifar-10-batches-bin")
    os.makedirs(out, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            found = 0
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and base in CIFAR_MEMBERS:
                    src = tar.extractfile(member)
                    with open(os.path.join(out, base), "wb") as f:
                        shutil.copyfileobj(src, f)
                    found += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: cannot extract ({e}); delete it and run again") from None
    if found < 6:
        raise DataError(f"{archive}: holds only {found} of the CIFAR-10 batch files")
    return out


def get_dataset(name, folder=None, local_dirs=None, specs=None, log=print, timeout=30):
    """Fetch dataset `name` ("mnist", "fashion-mnist", "cifar10") into `folder` (default:
    its `data/<name>` under the working directory); return the folder.

    `local_dirs` overrides where local copies are looked for; `specs` overrides the dataset
    table (tests point it at a local server). Raises DataError saying what to do when a file
    cannot be had.
    """
    specs = DATASETS if specs is None else specs
    if name not in specs:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(sorted(specs))})")
    spec = specs[name]
    folder = folder or spec.default_dir
    os.makedirs(folder, exist_ok=True)
    local_dirs = spec.local_dirs if local_dirs is None else local_dirs
    if name == "cifar10" and all(os.path.isfile(os.path.join(folder, "cifar-10-batches-bin", m))
                                 for m in CIFAR_MEMBERS[:6]):
        log(f"{folder}/cifar-10-batches-bin: present")
        return folder
    for remote in spec.files:
        try:
            path = fetch_file(remote, folder, local_dirs, log=log, timeout=timeout)
        except DataError as e:
            raise DataError(f"{e}\nTo fix: {spec.hint.format(dir=folder)}") from None
        if remote.name.endswith(".tar.gz"):
            extract_cifar(path, folder)
    return folder
