import hashlib
from pathlib import Path

import pytest
import torch

from tl_core.models.backbones import (
    LITE_FILES, backbone_info, build_backbone, lite_file, lite_imagenet_model, list_backbones
)
from tl_core.base.errors import DataUnavailable


def _small(name):
    info = backbone_info(name)
    return build_backbone(name, pretrained=False, input_size=max(info.min_size, 32), in_channels=3)


@pytest.mark.parametrize("name", list_backbones())
def test_contract(name):
    info = backbone_info(name)
    bb = _small(name)
    assert bb.stage_names == list(info.stages)
    assert bb.feat_dim == info.feat_dim
    x = torch.randn(2, 3, bb.input_spec.size, bb.input_spec.size)
    bb.eval()
    assert bb.features(x).shape == (2, info.feat_dim)
    trainable, total = bb.param_counts()
    assert trainable == total > 0


@pytest.mark.parametrize("name", ["lenet", "resnet18", "efficientnet_lite0"])
def test_freeze_depth_stops_gradients_and_batchnorm_statistics(name):
    bb = _small(name)
    n = len(bb.stage_names)
    depth = n - 1
    bb.freeze(depth)
    stages = list(bb.stages.values())
    for i, st in enumerate(stages):
        for p in st.parameters():
            assert p.requires_grad == (i >= depth)
    trainable, total = bb.param_counts()
    assert trainable == sum(p.numel() for p in stages[-1].parameters()) < total
    bb.train()
    bns = [m for st in stages[:depth] for m in st.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if bns:  # LeNet has no BatchNorm
        before = [m.running_mean.clone() for m in bns]
        assert all(not m.training for m in bns)
        bb.features(torch.randn(4, 3, bb.input_spec.size, bb.input_spec.size) * 3 + 1)
        assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    bb.freeze(0)
    assert bb.param_counts()[0] == total


def test_freeze_all_leaves_nothing_trainable():
    bb = _small("lenet").freeze(3)
    assert bb.param_counts()[0] == 0


def test_lenet_reads_grey_or_colour():
    assert build_backbone("lenet", in_channels=1).features(torch.randn(2, 1, 28, 28)).shape == (2, 500)
    assert build_backbone("lenet", in_channels=3, input_size=32).features(torch.randn(2, 3, 32, 32)).shape == (2, 500)


def test_missing_imagenet_weights_are_explained_not_silently_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ok, msg = backbone_info("resnet18").weights_status()
    assert not ok and "random init" in msg
    with pytest.raises(DataUnavailable, match=r"resnet18-.*\.pth.*random init"):
        build_backbone("resnet18", pretrained=True)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_weights_file_is_the_pinned_one(variant):
    f = lite_file(variant)
    assert f is not None and f.exists()
    assert hashlib.sha256(f.read_bytes()).hexdigest() == LITE_FILES[variant][1]
    assert backbone_info(f"efficientnet_lite{variant}").weights_file() == f


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_imagenet_weights_classify_bundled_photographs(variant):
    from skimage import data

    model = lite_imagenet_model(variant)
    size = backbone_info(f"efficientnet_lite{variant}").default_size
    cat_classes = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    coffee_classes = {967, 968}  # espresso, cup
    for img, expected in ((data.chelsea(), cat_classes), (data.coffee(), coffee_classes)):
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        with torch.no_grad():
            top5 = model((x - 0.5) / 0.5).topk(5).indices[0].tolist()
        assert expected & set(top5), f"top-5 {top5} misses {expected}"
        assert top5[0] in expected  # the top-1 class is right too


def test_weight_file_table_matches_torchvision(tmp_path, monkeypatch):
    import torchvision.models as tvm

    from tl_core.models.backbones import TV_WEIGHT_FILES, hub_dir

    for arch, fname in TV_WEIGHT_FILES.items():
        assert tvm.get_model_weights(arch).IMAGENET1K_V1.url.endswith("/" + fname)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert hub_dir() == Path(torch.hub.get_dir())


@pytest.mark.parametrize("name", ["lenet", "efficientnet_lite0"])
def test_a_bottleneck_trains_behind_a_fully_frozen_backbone(name):
    info = backbone_info(name)
    bb = build_backbone(name, pretrained=False, input_size=max(info.min_size, 32), in_channels=3,
                        freeze=len(info.stages), bottleneck=64)
    assert bb.feat_dim == 64
    trainable = [n for n, p in bb.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("pool.") for n in trainable)  # the stages stay frozen, it does not
    x = torch.randn(4, 3, bb.input_spec.size, bb.input_spec.size)
    bb.train()
    f = bb.features(x)
    assert f.shape == (4, 64)
    f.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bb.parameters() if p.requires_grad)
    bb.eval()
    assert torch.allclose(bb.features(x), bb.features_from_prefix(bb.prefix(x)), atol=1e-5)
