"""WindowData is refused at net construction with a clear reason and the layer's position."""
import pytest

from minicaffe import Net, prototxt
from minicaffe.catalog import create_layer, layer_type_list
from minicaffe.errors import LayerSetupError

NET = """name: "rcnn"
layer {
  name: "windows"
  type: "WindowData"
  top: "data"
  top: "label"
  window_data_param { source: "window_file.txt" batch_size: 128 fg_threshold: 0.5 }
}
"""


def test_refused_at_net_construction_with_position_and_reason(tmp_path):
    path = tmp_path / "rcnn.prototxt"
    path.write_text(NET)
    with pytest.warns(UserWarning, match="window_data_param"):
        net_param = prototxt.read_net(str(path))
    with pytest.raises(LayerSetupError) as info:
        Net(net_param, phase="TRAIN")
    msg = str(info.value)
    assert msg.startswith(f"{path}:2:1: layer 'windows' (WindowData): WindowData is not supported")
    assert "OpenCV" in msg and "ImageData" in msg and "Python data layer" in msg


def test_v1_window_data_is_refused_too():
    text = 'layers { name: "w" type: WINDOW_DATA top: "data" top: "label" }'
    with pytest.raises(LayerSetupError, match=r"layer 'w' \(WindowData\): WindowData is not supported"):
        Net(prototxt.parse_net(text), phase="TEST")


def test_not_listed_as_a_layer_type():
    assert "WindowData" not in layer_type_list()
    with pytest.raises(LayerSetupError, match="not supported"):
        create_layer(prototxt.LayerParameter(name="w", type="WindowData"))
