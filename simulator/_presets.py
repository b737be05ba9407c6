"""Named presets as TOML files in a package folder, or a TOML file given by path."""

import tomllib
from pathlib import Path

from .errors import OptionError


def preset_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


def read_toml(name_or_path, folder: Path, kind: str) -> tuple[dict, Path]:
    """The parsed TOML of a file path, or else of the preset of that name in folder."""
    path = Path(name_or_path)
    if not path.is_file():
        path = folder / f"{name_or_path}.toml"
        if not path.is_file():
            raise OptionError(f"unknown {kind} {str(name_or_path)!r}: not a file, nor one of the "
                              f"presets {', '.join(preset_names(folder))}")
    try:
        return tomllib.loads(path.read_text()), path
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise OptionError(f"{path}: not a valid TOML file ({e})") from None
