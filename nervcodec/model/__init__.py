"""Video models and their registry.

Importing this package registers every built-in model (NeRV, D-NeRV, latent grids): a model that
fails to import fails loudly here instead of silently vanishing from the choices.
"""
from .base import (MODEL_SPECS, ModelSpec, VideoModel, build_model, config_from_dict, config_to_dict, model_names,
                   model_spec, model_spec_by_id, register_model)
from . import nerv, dnerv, grid  # noqa: F401,E402  (registers the built-in models)

__all__ = ["MODEL_SPECS", "ModelSpec", "VideoModel", "build_model", "config_from_dict", "config_to_dict",
           "model_names", "model_spec", "model_spec_by_id", "register_model"]
