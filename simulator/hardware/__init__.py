"""Hardware profiles (data, TOML) and the cost functions of links and memories."""

from .profile import HardwareProfile, describe_hardware_presets, list_hardware, load_hardware

__all__ = ["HardwareProfile", "describe_hardware_presets", "list_hardware", "load_hardware"]
