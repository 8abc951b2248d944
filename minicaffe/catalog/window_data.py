"""WindowData (Caffe's WindowDataLayer) is refused with the reason, at net construction.

It is R-CNN's detection fine-tuning input: it reads a window file (image paths with labelled
boxes), samples foreground and background windows by their overlap with the boxes, and warps
each crop (with context padding) through OpenCV. minicaffe has neither OpenCV nor a detection
pipeline, and a partial imitation would train on different crops without saying so.
"""
from minicaffe.catalog.base import refuse_layer

refuse_layer("WindowData", (
    "WindowData is not supported by minicaffe: it is R-CNN's detection fine-tuning layer, which "
    "samples foreground/background windows from a window file and warps each crop with OpenCV "
    "(fg_threshold, bg_threshold, fg_fraction, context_pad, crop_mode), and minicaffe has no "
    "OpenCV or window sampling. Cut the windows offline and read them with an ImageData or Data "
    "layer, or produce them in a Python data layer"))
