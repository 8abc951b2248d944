"""DummyData: tops filled by fillers (constant zeros by default), for tests and timing."""
from minicaffe import fillers
from minicaffe.catalog.base import Layer, register_layer


@register_layer("DummyData")
class DummyData(Layer):
    """top[i] has `dummy_data_param.shape[i]` (or legacy num/channels/height/width) and is
    filled by `data_filler[i]`: no filler → constant 0, one filler or one shape → used for every
    top. Constant tops are filled once at setup, random ones again on every forward.
    """

    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.dummy_data_param
        n = len(top)
        shapes = [tuple(int(d) for d in s.dim) for s in p.shape]
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        if shapes and any(legacy):
            raise self.error("give either shape or num/channels/height/width, not both")
        if any(legacy):
            for field, values in zip(("num", "channels", "height", "width"), legacy):
                if len(values) not in (1, n):
                    raise self.error(f"{field} must be given once or once per top ({n}), "
                                     f"got {len(values)}")
            shapes = [tuple(int(v[0] if len(v) == 1 else v[i]) for v in legacy) for i in range(n)]
        if len(shapes) not in (1, n):
            raise self.error(f"shape must be given once or once per top ({n}), got {len(shapes)}")
        if len(shapes) == 1:
            shapes = shapes * n
        filler_params = list(p.data_filler)
        if len(filler_params) not in (0, 1, n):
            raise self.error(f"data_filler must be given 0, 1 or {n} times, got {len(filler_params)}")
        if not filler_params:
            filler_params = [None]
        self._fillers = []
        for i, t in enumerate(top):
            t.reshape(shapes[i])
            fp = filler_params[0] if len(filler_params) == 1 else filler_params[i]
            self._fillers.append(fp)
            if fp is None:
                t.data[...] = 0
            else:
                fillers.fill(t, fp)
        self._refill = [fp is not None and (fp.type or "constant") != "constant"
                        for fp in self._fillers]

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        for t, fp, refill in zip(top, self._fillers, self._refill):
            if refill:
                fillers.fill(t, fp)
