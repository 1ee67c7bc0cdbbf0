"""City gazetteer: recognise district / street / community / building names in speech.

File format (YAML): ``districts`` -> ``streets`` -> ``communities`` -> ``buildings``, each
place ``{name, aliases}``. A mention of a lower level fills in the levels above it
(幸福里 -> 东湖区 湖滨街道 幸福里社区). Names match by characters or, for names of
three or more syllables, by sound, so recognition errors still find the place.

What the caller said wins over the gazetteer: a name that is only part of a different
place the caller named (锦绣 in 锦绣华庭小区, 广场 in 万达广场, 东湖 in 东湖花园) is not a
match, and a place that contradicts a district the caller said is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.text import Phrase, Prepared, phrases
from hotline.draft import Address
from hotline.errors import UserFacingError


class GazetteerError(UserFacingError, ValueError):
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


# A place-name ending right after a match: the match is the start of another name
# (锦绣 + 华庭小区). 小区/社区 alone only say what kind of place the name is.
_NAME_CONTINUES = re.compile(
    r"^([\u4e00-\u9fff]{0,3}?)(小区|社区|花园|家园|华庭|华府|苑|公寓|大厦|新村|新城|山庄|庄园|"
    r"广场|公馆|中学|小学|学校|公园|市场|医院)"
)
# Aliases that are also common nouns (广场, 公园): they name the gazetteer's place only
# when no other name is said right before them (万达广场 is not 人民广场).
_GENERIC_NAME = re.compile(r"[\u4e00-\u9fff]?(广场|公园|市场|菜市场|医院|学校|中学|小学|车站|商场)")
# Characters that end a place name when reading leftwards from a generic alias.
_NAME_BREAK = set("在住到是的我家了去从和跟与及就这那个说有边旁对近面下上里区路街道镇村号楼")


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
            if _part_of_another_name(p.text, span, name.phrase.text, taken):
                continue
            for i in range(*span):
                taken[i] = True
            found.append(name)
        if not found:
            return None
        found.sort(key=lambda n: -n.level)
        said = found[-1].address  # the least specific name said
        agreeing = [n for n in found if _agrees(n.address, said)]
        best = agreeing[0].address.model_copy()
        for other in agreeing[1:]:
            for level_field in ("district", "street", "community"):
                value = getattr(other.address, level_field)
                if value and not getattr(best, level_field):
                    setattr(best, level_field, value)
        best.detail = text
        return best


def _part_of_another_name(text: str, span: tuple[int, int], name: str, taken: list[bool]) -> bool:
    start, end = span
    continues = _NAME_CONTINUES.match(text[end:])
    if continues and (continues.group(1) or continues.group(2) not in ("小区", "社区")):
        return True
    if not _GENERIC_NAME.fullmatch(name):
        return False
    named_before = 0
    at = start - 1
    while at >= 0 and not taken[at] and _name_char(text[at]):
        named_before += 1
        at -= 1
    return named_before >= 2


def _name_char(char: str) -> bool:
    return char not in _NAME_BREAK and "\u4e00" <= char <= "\u9fff"


def _agrees(address: Address, said: Address) -> bool:
    """Whether a more specific place lies inside the broadest place the caller named."""
    return all(
        not getattr(said, level) or getattr(address, level) == getattr(said, level)
        for level in ("district", "street", "community")
    )


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
