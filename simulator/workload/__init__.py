"""Model configurations (tables, dims, MLPs, optimizer) and their presets (TOML)."""

from .model import ModelConfig, describe_model_presets, list_models, load_model

__all__ = ["ModelConfig", "describe_model_presets", "list_models", "load_model"]
