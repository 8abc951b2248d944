"""`python -m minicaffe.prototxt check|upgrade` (called in-process through main)."""
from pathlib import Path

from minicaffe.prototxt import parse_net
from minicaffe.prototxt.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures"


def test_check_reports_ok_and_errors(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer {\n  nme: "x"\n}\n')
    status = main(["check", str(FIXTURES / "v1_lenet.prototxt"), str(bad)])
    out, err = capsys.readouterr()
    assert status == 1
    assert f"OK   {FIXTURES / 'v1_lenet.prototxt'}" in out
    assert f"FAIL {bad}:2:3: unknown field 'nme' in layer; did you mean 'name'?" in err


def test_upgrade_writes_current_form(tmp_path, capsys):
    out_path = tmp_path / "new.prototxt"
    assert main(["upgrade", str(FIXTURES / "v1_lenet.prototxt"), str(out_path)]) == 0
    text = out_path.read_text()
    assert "layers {" not in text and parse_net(text).layer[1].type == "Convolution"
    assert main(["upgrade", str(FIXTURES / "ssl_fork_solver.prototxt")]) == 0
    assert 'type: "Nesterov"' in capsys.readouterr().out
