"""Phase/level/stage filtering of a net (Caffe's Net::FilterNet and StateMeetsRule)."""
from minicaffe.errors import ParseError
from minicaffe.phase import phase_name
from minicaffe.prototxt.message import message_class


def state_meets_rule(phase, level, stages, rule):
    """True if a net in (phase, level, stages) meets NetStateRule `rule`: same phase if the
    rule sets one, level within [min_level, max_level] where set, every `stage` present and
    no `not_stage` present."""
    if rule.has("phase") and rule.phase != phase:
        return False
    if rule.has("min_level") and level < rule.min_level:
        return False
    if rule.has("max_level") and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def layer_included(layer, phase, level=0, stages=()):
    """Whether `layer` belongs to a net in this state: with no rules, yes; with `exclude`
    rules, unless one is met; with `include` rules, only if one is met."""
    phase, stages = phase_name(phase), set(stages)
    if layer.include and layer.exclude:
        pos = layer.position_of("exclude") or (None, None, None)
        raise ParseError(f"layer '{layer.name}' has both include and exclude rules; Caffe "
                         "allows only one kind", *pos)
    if layer.include:
        return any(state_meets_rule(phase, level, stages, r) for r in layer.include)
    return not any(state_meets_rule(phase, level, stages, r) for r in layer.exclude)


def filter_net(net, phase, level=0, stages=()):
    """A copy of NetParameter `net` holding only the layers included in state
    (phase, level, stages); `phase` is TRAIN/TEST (0/1 or the names). The copy's `state`
    records that state."""
    phase = phase_name(phase)
    out = net.copy()
    out.layer = [layer for layer in out.layer if layer_included(layer, phase, level, stages)]
    out.state = message_class("NetState")(phase=phase, level=level, stage=list(stages))
    return out
