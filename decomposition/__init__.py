"""modpact.decomposition: split a model into stages, decompose a classifier into
per-class modules, recompose them, operate on a graph of modules with checked
interfaces, and repair one blamed module.

    stages = split(model, at=["encoder"], example=x)
    modules = decompose_classes(model, x_train, y_train, labels, retention=0.6)
    clf = compose_classes(modules, labels)
    port = export(stage, interface, example); port.save("stage.pt2"); load_exported("stage.pt2")
"""

from .checkpoint import load_checkpoint, read_checkpoint_document, save_checkpoint
from .compose import ComposedClassifier, compose_classes
from .concern import ClassModule, decompose_classes
from .modular import ModularModel
from .port import Port, export, load_exported
from .port_onnx import OnnxPort, check_onnx, export_onnx, load_onnx, onnx_problems
from .port_shapes import dynamic_shapes
from .ported import PortedModule
from .repair import Compute, RepairResult, SubstitutionCheck, repair
from .split import Split, split
from .stubs import annotation, annotation_text, not_expressible, stub

__all__ = [
    "split",
    "Split",
    "decompose_classes",
    "ClassModule",
    "compose_classes",
    "ComposedClassifier",
    "ModularModel",
    "repair",
    "RepairResult",
    "Compute",
    "SubstitutionCheck",
    "export",
    "Port",
    "load_exported",
    "dynamic_shapes",
    "PortedModule",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_document",
    "annotation",
    "annotation_text",
    "not_expressible",
    "stub",
    "export_onnx",
    "OnnxPort",
    "check_onnx",
    "onnx_problems",
    "load_onnx",
]
