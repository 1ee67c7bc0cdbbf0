"""City gazetteer: recognise district / street / community / building names in speech.

File format (YAML): ``districts`` -> ``streets`` -> ``communities`` -> ``buildings``, each
place ``{name, aliases}``. A mention of a lower level fills in the levels above it
(幸福里 -> 东湖区 湖滨街道 幸福里社区). Names match by characters or, for names of
three or more syllables, by sound, so recognition errors still find the place.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.text import Phrase, Prepared, phrases
from tickets.draft import Address


class GazetteerError(ValueError):
    """A gazetteer file that cannot be used."""


class _Place(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class Building(_Place):
    pass


class Community(_Place):
    buildings: list[Building] = Field(default_factory=list)


class Street(_Place):
    communities: list[Community] = Field(default_factory=list)


class District(_Place):
    streets: list[Street] = Field(default_factory=list)


class GazetteerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = ""
    districts: list[District]


@dataclass(frozen=True, slots=True)
class _Name:
    phrase: Phrase
    address: Address  # the levels this name fixes
    level: int  # 0 district .. 3 building


class Gazetteer:
    def __init__(self, data: GazetteerFile) -> None:
        self.data = data
        names: list[_Name] = []
        for d in data.districts:
            self._add(names, d, 0, Address(district=d.name))
            for s in d.streets:
                self._add(names, s, 1, Address(district=d.name, street=s.name))
                for c in s.communities:
                    addr = Address(district=d.name, street=s.name, community=c.name)
                    self._add(names, c, 2, addr)
                    for b in c.buildings:
                        self._add(names, b, 3, addr.model_copy(update={"building": b.name}))
        names.sort(key=lambda n: -len(n.phrase.text))
        self._names = names

    @staticmethod
    def _add(out: list[_Name], place: _Place, level: int, address: Address) -> None:
        for phrase in phrases([place.name, *place.aliases], min_sound=3):
            out.append(_Name(phrase, address, level))

    def terms(self) -> list[str]:
        return [n.phrase.text for n in self._names]

    def find(self, text: str) -> Address | None:
        """The most specific consistent address mentioned in ``text``, or None."""
        p = Prepared.of(text)
        found: list[_Name] = []
        taken = [False] * len(p.text)
        for name in self._names:
            span = p.find(name.phrase)
            if span is None or any(taken[span[0] : span[1]]):
                continue
            for i in range(*span):
                taken[i] = True
            found.append(name)
        if not found:
            return None
        found.sort(key=lambda n: -n.level)
        best = found[0].address.model_copy()
        for other in found[1:]:  # a district said alongside a community must agree with it
            for level_field in ("district", "street", "community"):
                value = getattr(other.address, level_field)
                if value and not getattr(best, level_field):
                    setattr(best, level_field, value)
        best.detail = text
        return best


def load_gazetteer(path: str | Path | None = None) -> Gazetteer:
    if path is None:
        text = resources.files("bot").joinpath("data/gazetteer.yaml").read_text(encoding="utf-8")
        source = "bot/data/gazetteer.yaml"
    else:
        path = Path(path)
        if not path.is_file():
            raise GazetteerError(f"gazetteer {path}: file not found")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        raw: Any = yaml.safe_load(text)
        return Gazetteer(GazetteerFile.model_validate(raw))
    except yaml.YAMLError as exc:
        raise GazetteerError(f"gazetteer {source}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GazetteerError(f"gazetteer {source}: {problems}") from exc
