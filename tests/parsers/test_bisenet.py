"""BiSeNet: face-parsing.PyTorch parameter names, strict loading, forward shapes, errors."""

from __future__ import annotations

import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.parsers.bisenet import BiSeNet, load_bisenet

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def original_keys() -> list[str]:
    """The state-dict keys of face-parsing.PyTorch's BiSeNet, written out from its model.py /
    resnet.py (not derived from our module), so a rename on our side fails this test."""
    keys: list[str] = []

    def conv(p):
        keys.append(p + ".weight")

    def bn(p):
        keys.extend(f"{p}.{s}" for s in BN)

    r = "cp.resnet"
    conv(r + ".conv1")
    bn(r + ".bn1")
    for li in range(1, 5):
        for b in range(2):
            p = f"{r}.layer{li}.{b}"
            conv(p + ".conv1"); bn(p + ".bn1"); conv(p + ".conv2"); bn(p + ".bn2")
            if b == 0 and li > 1:  # layer1 keeps 64 channels and stride 1: no downsample
                conv(p + ".downsample.0"); bn(p + ".downsample.1")
    for arm in ("cp.arm16", "cp.arm32"):
        conv(arm + ".conv.conv"); bn(arm + ".conv.bn"); conv(arm + ".conv_atten"); bn(arm + ".bn_atten")
    for c in ("cp.conv_head32", "cp.conv_head16", "cp.conv_avg"):
        conv(c + ".conv"); bn(c + ".bn")
    conv("ffm.convblk.conv"); bn("ffm.convblk.bn"); conv("ffm.conv1"); conv("ffm.conv2")
    for h in ("conv_out", "conv_out16", "conv_out32"):
        conv(h + ".conv.conv"); bn(h + ".conv.bn"); conv(h + ".conv_out")
    return keys


# (key, shape) pairs from the original's constructor arguments
ORIGINAL_SHAPES = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer4.1.conv2.weight": (512, 512, 3, 3),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm32.conv.conv.weight": (128, 512, 3, 3),
    "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out16.conv_out.weight": (19, 64, 1, 1),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = BiSeNet(19)
    # non-trivial BN statistics so a wrong load would change the outputs
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "79999_iter.pth"
    torch.save(model.state_dict(), path)
    return path


def test_parameter_names_match_original(model):
    sd = model.state_dict()
    assert list(sd) == original_keys()
    for key, shape in ORIGINAL_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key


def test_forward_shapes_and_heads():
    torch.manual_seed(0)
    m = BiSeNet(7).eval()
    with torch.no_grad():
        outs = m(torch.randn(2, 3, 64, 96))
    assert len(outs) == 3
    for o in outs:
        assert o.shape == (2, 7, 64, 96)
        assert torch.isfinite(o).all()
    with pytest.raises(ValueError):
        m(torch.randn(1, 1, 64, 64))


def test_strict_load_of_original_named_state_dict(model, weights):
    # build the state dict by the hand-written original names (an OrderedDict, as torch.save'd by the original)
    sd = model.state_dict()
    handmade = {k: sd[k].clone() for k in original_keys()}
    fresh = BiSeNet(19)
    fresh.load_state_dict(handmade, strict=True)
    loaded = load_bisenet(weights)
    assert not loaded.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x)[0], loaded(x)[0]
    assert torch.equal(a, b)


def test_load_strips_module_prefix_and_fills_num_batches(model, tmp_path):
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    p = tmp_path / "dp.pth"
    torch.save(sd, p)
    loaded = load_bisenet(p)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])


def test_missing_and_unexpected_keys_are_listed(model, tmp_path):
    sd = dict(model.state_dict())
    del sd["ffm.conv1.weight"]
    sd["sp.conv1.weight"] = torch.zeros(1)
    p = tmp_path / "bad.pth"
    torch.save(sd, p)
    with pytest.raises(LabelsplatError) as exc:
        load_bisenet(p)
    msg = str(exc.value)
    assert "ffm.conv1.weight" in msg and "sp.conv1.weight" in msg and "bad.pth" in msg


def test_class_count_checked(weights):
    assert load_bisenet(weights, n_classes=19).n_classes == 19
    with pytest.raises(LabelsplatError, match="19 classes but 11"):
        load_bisenet(weights, n_classes=11)


def test_bad_files(tmp_path):
    with pytest.raises(LabelsplatError, match="not found"):
        load_bisenet(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(LabelsplatError, match="cannot load"):
        load_bisenet(junk)
    other = tmp_path / "other.pth"
    torch.save({"a": torch.zeros(2)}, other)
    with pytest.raises(LabelsplatError, match="not a BiSeNet"):
        load_bisenet(other)
