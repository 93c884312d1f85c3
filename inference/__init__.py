"""modpact.inference: contracts learned from data.

    from modpact.inference import infer_contracts

    inferred = infer_contracts(model, (x_train, y_train), margin=0.5)
    inferred.install()                 # ordinary guards: the Monitor checks them device-side
    inferred.refine((x_more, y_more))  # explicit widening, never automatic

``infer_contracts`` records, in one pass over reference data, each module's
input/output envelopes (and boxes per class), shapes, dtypes and label space;
``InferredContracts`` installs, refines, scores and serializes them. The
conditions it installs (``envelope``, ``in_boxes``, ``in_class_boxes``) are
ordinary contracts conditions and can be written by hand. Built on
modpact.interfaces and modpact.contracts; knows nothing of the runtime. See
docs/inferred.md.
"""

from .envelope import Envelope, InBoxes, InClassBoxes, envelope, in_boxes, in_class_boxes
from .inferred import InferredContracts, TensorEnvelope, infer_contracts

__all__ = [
    "infer_contracts",
    "InferredContracts",
    "TensorEnvelope",
    "envelope",
    "in_boxes",
    "in_class_boxes",
    "Envelope",
    "InBoxes",
    "InClassBoxes",
]
