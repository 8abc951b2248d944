"""Bad prototxt: ParseError with path:line:column, the line, a caret, and a hint; exact text."""
import pytest

from minicaffe.errors import ParseError
from minicaffe.prototxt import error_at, parse_message, parse_net, parse_solver, read_net


def error_of(text, path="net.prototxt", parse=parse_net):
    with pytest.raises(ParseError) as info:
        parse(text, path)
    return info.value


def test_parse_error_is_value_error_with_location():
    err = error_of('layer {\n  name: "a"\n  nme: "b"\n}\n')
    assert isinstance(err, ValueError)
    assert (err.path, err.line, err.column) == ("net.prototxt", 3, 3)


def test_unknown_field_with_did_you_mean():
    err = error_of('layer {\n  convolution_param {\n    kernal_size: 5\n  }\n}\n')
    assert str(err) == (
        "net.prototxt:3:5: unknown field 'kernal_size' in convolution_param; did you mean "
        "'kernel_size'?\n"
        "        kernal_size: 5\n"
        "        ^")


def test_unknown_field_without_close_match():
    err = error_of('zzzz_qqq: 1')
    assert str(err) == ("net.prototxt:1:1: unknown field 'zzzz_qqq' in NetParameter\n"
                        "    zzzz_qqq: 1\n"
                        "    ^")


def test_unknown_enum_value():
    err = error_of('layer { pooling_param { pool: MAXX } }')
    assert str(err) == (
        "net.prototxt:1:31: unknown value 'MAXX' for field 'pool' (PoolMethod); expected one "
        "of MAX, AVE, STOCHASTIC; did you mean 'MAX'?\n"
        "    layer { pooling_param { pool: MAXX } }\n"
        "                                  ^")


def test_enum_value_in_wrong_case_gets_hint():
    err = error_of('layer { include { phase: train } }')
    assert err.message == ("unknown value 'train' for field 'phase' (Phase); expected one of "
                           "TRAIN, TEST; did you mean 'TRAIN'?")


def test_unbalanced_closing_brace():
    err = error_of('layer { name: "a" }\n}\n')
    assert str(err) == ("net.prototxt:2:1: unbalanced '}': no open block to close\n"
                        "    }\n"
                        "    ^")


def test_truncated_file_names_the_open_block():
    err = error_of('name: "x"\nlayer {\n  name: "a"\n  convolution_param {\n'
                   '    num_output: 2\n')
    assert err.message == ("unexpected end of file: '{' opened at line 4, column 21 is never "
                           "closed (missing '}')")
    assert (err.line, err.column) == (6, 1)


def test_truncated_after_field_name_and_colon():
    assert error_of('name:').message == "unexpected end of file: field 'name' has no value"
    assert error_of('layer').message == ("expected ':' or '{' after field name 'layer', "
                                         "found end of file")


def test_mismatched_brackets():
    assert error_of('layer { name: "a" >').message == (
        "expected '}' to close the block opened at line 1, column 7, found '>'")


def test_wrong_type_integer():
    err = error_of('layer { convolution_param { num_output: 5.5 } }')
    assert str(err) == (
        "net.prototxt:1:41: field 'num_output' expects a non-negative integer (uint32), "
        "got 5.5\n"
        "    layer { convolution_param { num_output: 5.5 } }\n"
        "                                            ^")


def test_wrong_type_negative_unsigned_and_out_of_range():
    assert error_of('layer { convolution_param { group: -1 } }').message == \
        "field 'group' expects a non-negative integer (uint32), got -1"
    assert error_of('layer { convolution_param { axis: 3000000000 } }').message == \
        "field 'axis': 3000000000 is out of range for int32 [-2147483648, 2147483647]"


def test_wrong_type_string_unquoted_gets_quoted_hint():
    assert error_of('layer { type: Convolution }').message == \
        'field \'type\' expects a quoted string, got Convolution; did you mean "Convolution"?'


def test_wrong_type_number_for_string_and_string_for_number():
    assert error_of('name: 5').message == "field 'name' expects a quoted string, got 5"
    assert error_of('layer { loss_weight: "1" }').message == \
        "field 'loss_weight' expects a number (float), got \"1\""


def test_wrong_type_bool():
    assert error_of('force_backward: yes').message == \
        "field 'force_backward' expects true or false, got yes"
    assert error_of('force_backward: 2').message == \
        "field 'force_backward' expects true or false, got 2"


def test_message_given_a_value_and_value_given_a_block():
    assert error_of('layer { convolution_param: 3 }').message == (
        "field 'convolution_param' is a ConvolutionParameter message: write "
        "'convolution_param { ... }', not a value")
    assert error_of('name { }').message == \
        "field 'name' takes a value (a quoted string), not a { ... } block"


def test_duplicated_non_repeated_field():
    err = error_of('layer {\n  name: "a"\n  name: "b"\n}\n')
    assert str(err) == (
        "net.prototxt:3:3: field 'name' appears twice in layer (first at line 2, column 3); "
        "it is not a repeated field\n"
        "      name: \"b\"\n"
        "      ^")


def test_list_for_non_repeated_field():
    assert error_of('name: ["a", "b"]').message == \
        "field 'name' of NetParameter is not repeated; a [list] value needs a repeated field"


def test_bad_strings_and_characters():
    assert error_of('name: "abc\n').message == 'unterminated string (missing closing ")'
    assert error_of(r'name: "\q"').message == "unknown escape sequence \\q"
    assert error_of(r'name: "\400"').message == "octal escape \\400 is larger than a byte"
    assert error_of(r'name: "\xff"').message == "field 'name': string is not valid UTF-8"
    assert error_of('name: "a" @').message == "unexpected character '@'"
    assert error_of('layer { loss_weight: 1e }').message == "malformed number '1e'"


def test_nesting_limit():
    deep = "layer { " * 0 + "state { " * 101 + "}" * 101
    err = error_of(deep)
    assert "nested deeper than 100 levels" in err.message


def test_string_path_is_shown_as_string_placeholder():
    with pytest.raises(ParseError, match=r"^<string>:1:1: unknown field 'nme' in NetParameter; "
                       "did you mean 'name'\\?"):
        parse_net('nme: "x"')


def test_solver_errors_name_solver_fields():
    err = error_of('base_lr: 0.1\nbreadth_decy: 0.1\n', "solver.prototxt", parse_solver)
    assert err.message == ("unknown field 'breadth_decy' in SolverParameter; did you mean "
                           "'breadth_decay'?")
    err = error_of('group_lasso_update: PROX', "solver.prototxt", parse_solver)
    assert err.message == ("unknown value 'PROX' for field 'group_lasso_update' "
                           "(GroupLassoUpdate); expected one of SUBGRADIENT, PROXIMAL; "
                           "did you mean 'PROXIMAL'?")


def test_missing_file_is_a_parse_error(tmp_path):
    with pytest.raises(ParseError, match="cannot read prototxt file '.*nope.prototxt': "
                       "No such file or directory"):
        read_net(tmp_path / "nope.prototxt")


def test_error_at_points_at_a_field_for_later_checks():
    net = parse_net('layer {\n  name: "c"\n  convolution_param {\n    group: 3\n  }\n}\n',
                    path="n.prototxt")
    conv = net.layer[0].convolution_param
    err = error_at(conv, "group", "layer 'c': group=3 does not divide 20 input channels")
    assert str(err) == ("n.prototxt:4:5: layer 'c': group=3 does not divide 20 input channels\n"
                        "        group: 3\n"
                        "        ^")
    assert str(error_at(parse_message("ParamSpec", ""), None, "x")) == "<string>:1:1: x\n    \n    ^"


def test_wrong_kind_of_file_gets_a_hint():
    assert error_of('base_lr: 0.01').message == ("unknown field 'base_lr' in NetParameter (is "
                                                 "this a solver file; read it with read_solver?)")
    assert error_of('layer { name: "a" }', "s.prototxt", parse_solver).message == (
        "unknown field 'layer' in SolverParameter (is this a net file; read it with read_net?)")


def test_caret_lines_up_with_tabs_and_crlf_and_bom_is_skipped():
    err = error_of('layer {\r\n\t\tnme: "a"\r\n}\r\n')
    assert str(err).splitlines()[1:] == ["      nme: \"a\"", "      ^"]
    assert parse_net(b'\xef\xbb\xbfname: "bom"').name == "bom"


def test_v1_spellings_in_a_current_layer_get_hints():
    assert error_of('layer { type: CONVOLUTION }').message == \
        'field \'type\' expects a quoted string, got CONVOLUTION; did you mean "Convolution"?'
    assert error_of('layer { blobs_lr: 1 }').message == (
        "unknown field 'blobs_lr' in layer (a V1 'layers' field; in 'layer' write "
        "param { lr_mult: ... })")
