"""``check_compatible(producer, consumer)``: can a producer's output feed a
consumer's input? Specs or interfaces, every reason collected; the rules,
spec by spec, are in ``subtyping.py``.
"""

from __future__ import annotations

from typing import Any

from .interface import Interface
from .nested import SPEC_TYPES
from .spec import TensorSpec
from .subtyping import Compatibility, any_spec_reasons, mapping_compat, spec_reasons

__all__ = ["Compatibility", "check_compatible", "spec_reasons"]


def check_compatible(producer: Any, consumer: Any) -> Compatibility:
    """Does ``producer`` (a spec, or an Interface's outputs) satisfy
    ``consumer`` (a spec, or an Interface's inputs)? A spec is a TensorSpec or
    a nested spec (TupleSpec, DictSpec, ...), compared leaf by leaf."""
    if isinstance(producer, TensorSpec) and isinstance(consumer, TensorSpec):
        return Compatibility(spec_reasons(producer, consumer), producer=repr(producer), consumer=repr(consumer))
    if isinstance(producer, SPEC_TYPES) and isinstance(consumer, SPEC_TYPES):
        return Compatibility(any_spec_reasons(producer, consumer), producer=repr(producer), consumer=repr(consumer))
    if isinstance(producer, Interface) and isinstance(consumer, Interface):
        outs, ins = producer.outputs, consumer.inputs
        pname, cname = f"{producer.name}.outputs", f"{consumer.name}.inputs"
    elif isinstance(producer, (*SPEC_TYPES, Interface)) and isinstance(consumer, (*SPEC_TYPES, Interface)):
        outs = producer.outputs if isinstance(producer, Interface) else {"x": producer}
        ins = consumer.inputs if isinstance(consumer, Interface) else {"x": consumer}
        pname = f"{producer.name}.outputs" if isinstance(producer, Interface) else repr(producer)
        cname = f"{consumer.name}.inputs" if isinstance(consumer, Interface) else repr(consumer)
    else:
        raise TypeError(
            f"check_compatible(producer={type(producer).__name__}, consumer={type(consumer).__name__}): "
            "expected a spec (TensorSpec, TupleSpec, ...) or an Interface for both"
        )
    return mapping_compat(outs, ins, pname, cname, allow_extra=True)
