"""Hardware profiles (data, TOML) and the cost functions of links and memories."""

from .profile import (HardwareProfile, describe_hardware_presets, is_hardware_key, list_hardware,
                      load_hardware, split_overrides)

__all__ = ["HardwareProfile", "describe_hardware_presets", "is_hardware_key", "list_hardware",
           "load_hardware", "split_overrides"]
