"""A validated config together with what the loader learned beside it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.config.yamlsource import Loc, Located, YamlPath

if TYPE_CHECKING:
    from collections.abc import Mapping

    from broadcastd.config.schema import Config
    from broadcastd.errors import Problem


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The frozen `config`, the files it was read from (main file first, then includes), where
    every value was written, and the measured length of every recorded clip.

    The schema stays what the YAML says; facts about the files live here, so a config built in
    code (a test, the demo) says plainly that it has none.
    """

    config: Config
    files: tuple[Path, ...] = ()
    located: Located | None = None
    clip_durations: Mapping[Path, float] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        """The main config file."""
        return self.files[0] if self.files else Path("config.yaml")

    def clip_seconds(self, path: Path) -> float:
        """The real duration of a recorded clip, measured by ffprobe at load time (0 if not)."""
        return self.clip_durations.get(path, 0.0)

    def where(self, path: YamlPath, *, key: bool = False) -> Loc:
        """The file:line:col a value (or with `key`, its key) was written at; line 1 if unknown."""
        if self.located is None:
            return Loc(self.source, 1, 1)
        return self.located.where(path, key=key)

    def relabel(self, problems: list[Problem]) -> list[Problem]:
        """Findings about included announcements, numbered as in their own file."""
        return problems if self.located is None else self.located.relabel(problems)

    def with_config(self, config: Config) -> LoadedConfig:
        """The same files and measurements for a config changed in code (the demo's copy)."""
        return replace(self, config=config)
