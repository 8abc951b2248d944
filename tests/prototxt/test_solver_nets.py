"""Solver net fields: which nets are trained/tested, their states, and path resolution."""
import os

import pytest

from minicaffe.errors import ParseError
from minicaffe.prototxt import parse_solver, read_solver, resolve_net_path, solver_nets

NET = '''name: "tiny"
layer { name: "d" type: "Input" top: "x" }
layer { name: "t" type: "ReLU" bottom: "x" top: "x" include { phase: TEST } }
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project dir (the cwd) with models/net.prototxt and models/solver.prototxt."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "net.prototxt").write_text(NET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_solver(path, text):
    path.write_text(text)
    return read_solver(path)


def test_net_relative_to_working_directory_like_caffe(project):
    solver = write_solver(project / "models" / "solver.prototxt",
                          'net: "models/net.prototxt"\ntest_iter: 5\ntest_interval: 10\n')
    nets = solver_nets(solver)
    assert nets.train_source == "models/net.prototxt"
    assert nets.train.name == "tiny"
    assert nets.train.state.phase == "TRAIN"
    assert [n.state.phase for n in nets.tests] == ["TEST"]
    assert nets.test_sources == ["models/net.prototxt"]


def test_net_relative_to_the_solver_folder_as_fallback(project):
    solver = write_solver(project / "models" / "solver.prototxt", 'net: "net.prototxt"')
    nets = solver_nets(solver)
    assert nets.train_source == str(project / "models" / "net.prototxt")
    assert nets.tests == []


def test_working_directory_wins_over_solver_folder(project):
    (project / "net.prototxt").write_text('name: "from_cwd"')
    solver = write_solver(project / "models" / "solver.prototxt", 'net: "net.prototxt"')
    assert solver_nets(solver).train.name == "from_cwd"


def test_missing_net_file_names_every_path_tried(project):
    solver = write_solver(project / "models" / "solver.prototxt",
                          'base_lr: 0.1\nnet: "nets/missing.prototxt"\n')
    with pytest.raises(ParseError) as info:
        solver_nets(solver)
    err = info.value
    assert (err.path, err.line, err.column) == (str(project / "models" / "solver.prototxt"), 2, 1)
    assert err.message == (
        f"net file 'nets/missing.prototxt' not found (tried "
        f"{project / 'nets' / 'missing.prototxt'} and "
        f"{project / 'models' / 'nets' / 'missing.prototxt'})")


def test_errors_inside_the_net_file_carry_the_resolved_path(project):
    (project / "models" / "bad.prototxt").write_text('layer {\n  nam: "x"\n}\n')
    solver = write_solver(project / "models" / "solver.prototxt", 'train_net: "bad.prototxt"')
    with pytest.raises(ParseError) as info:
        solver_nets(solver)
    assert info.value.path == os.path.join(str(project / "models"), "bad.prototxt")
    assert str(info.value).startswith(f"{project / 'models' / 'bad.prototxt'}:2:3: unknown "
                                      "field 'nam' in layer; did you mean 'name'?")


def test_absolute_path(project):
    path = str(project / "models" / "net.prototxt")
    solver = parse_solver(f'net: "{path}"')
    assert resolve_net_path(solver, "net", path) == path


def test_train_net_and_test_nets_in_caffe_order(project):
    solver = write_solver(project / "s.prototxt", '''
        train_net: "models/net.prototxt"
        test_net: "models/net.prototxt"
        test_net_param { name: "inline_test" }
        test_iter: 3 test_iter: 4
        test_state { stage: "a" }
        test_state { stage: "b" level: 2 }
        train_state { level: 1 stage: "t" }
        test_interval: 10
    ''')
    nets = solver_nets(solver)
    assert nets.train.state.phase == "TRAIN"
    assert (nets.train.state.level, nets.train.state.stage) == (1, ["t"])
    # Caffe's order: test_net_param first, then test_net files
    assert nets.test_sources == ["test_net_param[0]", "models/net.prototxt"]
    assert [n.name for n in nets.tests] == ["inline_test", "tiny"]
    assert [(n.state.phase, n.state.level, n.state.stage) for n in nets.tests] == \
        [("TEST", 0, ["a"]), ("TEST", 2, ["b"])]


def test_generic_net_used_for_remaining_test_iters(project):
    solver = parse_solver('net_param { name: "inline" state { stage: "s" } } '
                          'test_iter: 1 test_iter: 2')
    nets = solver_nets(solver)
    assert nets.train_source == "net_param" and nets.train.name == "inline"
    assert nets.train.state.stage == ["s"]
    assert [n.name for n in nets.tests] == ["inline", "inline"]
    assert all(n.state.phase == "TEST" for n in nets.tests)


def test_no_train_net():
    with pytest.raises(ParseError, match=r"s.prototxt:1:1: solver names no train net; set one "
                       "of train_net_param, train_net, net_param, net"):
        solver_nets(parse_solver("base_lr: 0.1", "s.prototxt"))


def test_two_train_nets():
    with pytest.raises(ParseError, match=r"s.prototxt:2:1: solver names the train net more "
                       r"than once \(train_net, net\); keep one"):
        solver_nets(parse_solver('train_net: "a"\nnet: "b"\n', "s.prototxt"))


def test_test_iter_must_match_test_nets():
    with pytest.raises(ParseError, match=r"test_iter is given 2 time\(s\) for 1 test net\(s\); "
                       "give one test_iter per test net"):
        solver_nets(parse_solver('train_net_param { } test_net_param { } '
                                 'test_iter: 1 test_iter: 2'))
    with pytest.raises(ParseError, match="test_iter is given 0 time"):
        solver_nets(parse_solver('net_param { } test_net_param { }'))


def test_test_state_count_must_match():
    with pytest.raises(ParseError, match=r"2 test_state\(s\) for 1 test net\(s\)"):
        solver_nets(parse_solver('net_param { } test_iter: 1 test_state { } test_state { }'))


def test_inline_nets_are_copies(project):
    solver = parse_solver('net_param { name: "a" } test_iter: 1')
    nets = solver_nets(solver)
    nets.train.name = "changed"
    assert solver.net_param.name == "a" and nets.tests[0].name == "a"
