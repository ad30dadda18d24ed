"""ONNX export: onnxruntime and torch agree (needs the [onnx] extra; skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labelsplat.parsers.bisenet import BiSeNet
from labelsplat.parsers.onnx_export import export_onnx


def test_onnx_matches_torch(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = BiSeNet(19).eval()
    w = tmp_path / "w.pth"
    torch.save(model.state_dict(), w)
    out = tmp_path / "m.onnx"
    meta = export_onnx(w, out, input_size=64)
    assert meta["input_size"] == 64 and json.loads((tmp_path / "m.onnx.json").read_text())["label_scheme"] == "celebamask19-zll"
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 64, 64)  # batch 3: the batch axis is dynamic
    got = sess.run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x)[0].numpy()
    assert got.shape == (3, 19, 64, 64)
    np.testing.assert_allclose(got, ref, atol=1e-4 * float(np.abs(ref).max()), rtol=1e-4)
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.999
    # height and width are dynamic too: another (non-square) size gives torch's result
    x = torch.randn(1, 3, 96, 64)
    got = sess.run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x)[0].numpy()
    assert got.shape == (1, 19, 96, 64)
    np.testing.assert_allclose(got, ref, atol=1e-4 * float(np.abs(ref).max()), rtol=1e-4)
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.999
