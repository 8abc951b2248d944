"""The fuzz targets of minicaffe.testing.fuzz (what `python -m minicaffe.testing.fuzz TARGET`
drives with atheris) keep the readers' contract on a few hostile inputs, so the optional
coverage-guided driver always has working targets."""
import gzip
import subprocess
import sys

import pytest

from minicaffe.testing.fuzz import TARGETS, assert_contract, main

pytestmark = pytest.mark.fuzz

INPUTS = [b"", b"\x00", b"\xff" * 64, b"PK\x03\x04" + b"\x00" * 40, b"\x1f\x8b\x08" + b"\x00" * 20,
          gzip.compress(b"\x00\x00\x08\x03" + b"\xff" * 12), b"\x0a\x02\xff\xfe",
          b"layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: -1 } } }",
          b"\x3a\x0b\x0a\x09" + b"\xff" * 8 + b"\x7f"]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_keeps_the_contract_on_hostile_bytes(name):
    for data in INPUTS:
        assert_contract(TARGETS[name], data, what=data)


def test_the_driver_explains_its_usage(capsys):
    assert main([]) == 2
    assert "usage: python -m minicaffe.testing.fuzz {prototxt," in capsys.readouterr().err
    out = subprocess.run([sys.executable, "-m", "minicaffe.testing.fuzz", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "usage:" in out.stderr
