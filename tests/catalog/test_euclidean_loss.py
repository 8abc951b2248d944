from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestEuclideanLoss(LayerCase):
    type, bottom_shapes = "EuclideanLoss", [(4, 3, 2), (4, 3, 2)]

    def reference(self, a, b):
        return sum((a[i] - b[i]) ** 2 for i in range(4)).sum() / (2 * 4)


class TestEuclideanLossWeighted(LayerCase):
    type, bottom_shapes = "EuclideanLoss", [(3, 5), (3, 5, 1)]
    layer_fields = {"loss_weight": [0.25]}

    def reference(self, a, b):
        return ((a - b[..., 0]) ** 2).sum() / 6


def test_euclidean_count_mismatch():
    expect_setup_error(TestEuclideanLoss, [(4, 3), (4, 2)], "same count")
