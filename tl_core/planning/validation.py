"""A run config checked against the catalogues: its domains, backbone and method exist and fit together."""
from __future__ import annotations

import dataclasses

from tl_core.models.backbones import backbone_info
from tl_core.config import MethodSpec, RunConfig
from tl_core.data.domains import check_label_spaces, get_domain
from tl_core.base.errors import ConfigError
from tl_core.methods import get_method


def validate(cfg: RunConfig) -> RunConfig:
    """Check every choice; return the config with the method's parameter defaults filled in.

    Raises `ConfigError` with a message that names the bad choice and the fix.
    """
    cfg = cfg.check_fields()
    m, d = cfg.model, cfg.data
    info = backbone_info(m.backbone)
    n = len(info.stages)
    if not 0 <= m.freeze <= n:
        raise ConfigError(
            f"freeze depth {m.freeze} is out of range: {m.backbone} has {n} stages "
            f"({', '.join(info.stages)}), so the depth must be between 0 (train all) and {n} (freeze all)."
        )
    if m.input_size is not None and not info.min_size <= m.input_size <= 512:
        raise ConfigError(f"input size for {m.backbone} must be between {info.min_size} and 512 pixels "
                          f"(got {m.input_size}).")
    if m.pretrained and not info.has_pretrained:
        raise ConfigError(f"{m.backbone} has no pretrained weights; it always starts from random weights.")

    check_label_spaces(get_domain(d.source), get_domain(d.target))

    method = get_method(cfg.method.name)
    params = method.resolve_params(cfg.method.params)
    if method.needs_target_labels and d.target_labels == "none":
        raise ConfigError(f"{method.label} needs labelled target images: set target labels to a number per class "
                          f"(e.g. 5) or 'all'.")
    method.check(cfg)
    return dataclasses.replace(cfg, method=MethodSpec(cfg.method.name, params))
