"""Named presets as TOML files in a package folder, or a TOML file given by path, with keys of
their TOML layout overridden (dotted: "link.h2d_gb_per_s")."""

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


def load_preset(name_or_path, cls, folder: Path, kind: str, overrides=None):
    """A cls (from_dict reads its TOML layout, to_dict writes it) from a preset name, a TOML
    file or a cls, with the dotted keys of overrides set before from_dict checks them all."""
    if isinstance(name_or_path, cls):
        if not overrides:
            return name_or_path
        data, source = name_or_path.to_dict(), name_or_path.source
    else:
        data, path = read_toml(name_or_path, folder, kind)
        source = str(path)
    for key, value in (overrides or {}).items():
        *tables, last = key.split(".")
        table = data
        for name in tables:
            table = table.get(name)
            if not isinstance(table, dict):
                raise OptionError(f"{source}: {key}: {name!r} is not a table of the {kind} "
                                  "layout")
        table[last] = value
    return cls.from_dict(data, source=source)
