"""The examples the docs show run, and say what the docs say they say."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_huggingface_bert_example_end_to_end(capsys):
    pytest.importorskip("transformers", reason="the example builds BERT with transformers")
    runpy.run_path(str(EXAMPLES / "huggingface_bert.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "'input_ids': TensorSpec('batch d1', dtype='int64', range=(0, 99))" in out
    assert "'attention_mask': TensorSpec('batch d1', dtype='int64', range=(0, 1), padding='right')" in out
    assert "   dims:    {'d1': (1, 32)}" in out
    assert "3. validate: 2 real batches and " in out and "generated examples, OK" in out
    assert "5. split by export: 2 stages, edges compatible: True, exact: True" in out
    assert "6. NaN weight found by validate: True, by the guard: True" in out
    assert "inferred contracts: bert.encoder.layer.1.output.dense: postcondition failed" in out
