"""Layer types an inference graph leaves out, and why (the export report lists each one).

Sources (data layers): the blobs they produce and an exported layer reads become graph
inputs of the same shape, so a TEST-phase train_test net exports like its deploy twin.
Sinks (losses, Accuracy, ...): left out; the blobs they read that nothing exported reads
become graph outputs (a net's scores feeding its SoftmaxWithLoss, say). Any layer whose
`is_loss` is set counts as a sink too.
"""
from minicaffe.export.converters import drop_layer

drop_layer("source", "a data source: its tops are fed as graph inputs instead",
           "Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData")
drop_layer("sink", "a training loss, not part of inference",
           "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "ContrastiveLoss", "InfogainLoss",
           "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss")
drop_layer("sink", "an evaluation layer (compares with labels), not part of inference",
           "Accuracy")
drop_layer("sink", "produces nothing (it only ends the blobs it reads)", "Silence")
drop_layer("sink", "writes HDF5 files as a side effect; ONNX graphs have no file output",
           "HDF5Output")
