"""Can a department go to this address? The gap between what a caller said and a
dispatchable place: an area (a street, road or community) and a spot in it (a building,
a gate, a named shop or landmark).

「小区旁边」 or a bare district is where a caller is, not where an inspector can go, so
the intake asks for exactly the missing part. Rules rather than a model: the parts are
short spans with fixed suffixes (路, 小区, 号楼, 门口), and a wrong guess only costs one
extra question.
"""

from __future__ import annotations

import re
from enum import StrEnum

from hotline.draft import Address


class Gap(StrEnum):
    NONE = ""
    AREA = "area"  # no street, road or community: 「就在东湖区」「小区旁边」
    SPOT = "spot"  # an area but no building or landmark in it: 「阳光花园小区」


_HAN = "\u4e00-\u9fff"
# Words before a suffix that do not name a place (这个小区, 我们这条路).
_NOT_A_NAME = re.compile(
    r"^(?:.*(?:在|住|到|是|的|了|去|就|说|有|我们|咱们|你们|他们|我家|我))?"
    r"(?:这个|那个|这条|那条|这边|那边|这|那|一个|一条|有个|某个|附近|旁边|对面|隔壁)*"
)
_AREA_SUFFIX = (
    "大道|大街|路|街|巷|胡同|小区|社区|花园|家园|新村|村|镇|乡|苑|公寓|大厦|华庭|华府|山庄|"
    "广场|公园|市场|园区|工业园|开发区"
)
_LANDMARK_SUFFIX = (
    "门口|大门|东门|南门|西门|北门|路口|交叉口|十字路口|红绿灯|超市|医院|学校|小学|中学|幼儿园|"
    "公园|广场|市场|菜场|银行|酒店|宾馆|饭店|餐馆|药店|加油站|地铁站|公交站|车站|站|桥|工地|"
    "停车场|店|公司|工厂|厂|大厅|服务中心|局|所"
)
_NUMBERED = re.compile(
    r"[0-9零一二三四五六七八九十百两]+(?:号楼|栋|幢|单元|号院|号|弄|室|层|楼|排|期)"
)
# A facility next to a named place: 阳光花园旁边的工地, 学校对面那家饭店.
_BESIDE = re.compile(
    rf"(?:旁边|对面|隔壁|附近|后面|前面|楼下)(?:的|那个|那家|那|一个|一家)?[{_HAN}]{{0,4}}"
    r"(?:工地|饭店|餐馆|烧烤店|超市|商店|店|工厂|厂|公司|停车场|菜场|市场|垃圾站|公厕|路口|学校|医院)"
)
_NAMED_AREA = re.compile(rf"([{_HAN}0-9]{{1,10}}?)(?:{_AREA_SUFFIX})")
_NAMED_LANDMARK = re.compile(rf"([{_HAN}0-9]{{1,10}}?)(?:{_LANDMARK_SUFFIX})")
_RELATIVE_WORD = re.compile(r"楼下|楼上|隔壁|对面|旁边|附近|路边|门口|家")
_GENERIC_PLACE = re.compile(r"^(?:小区|社区|楼|楼下|家|单位|这|那)*$")
# Gazetteer places that are landmarks themselves (a school, a park), not residential areas.
_LANDMARK_PLACE = re.compile(r"(?:广场|公园|中学|小学|学校|市场|医院|厂|港|软件园|园区|大厦|站)$")


# A party that is itself the place to go once the area is known: the property company
# of a community, a shop in a street.
_ORGANISATION = re.compile(
    r"物业|开发商|业委会|公司|单位|店|饭店|餐馆|超市|工厂|厂|学校|幼儿园|医院|窗口|部门|商家|老板|市场"
)


def gap(where: str, address: Address, party: str = "") -> Gap:
    """What is missing for a department to find the place, or Gap.NONE. ``party`` is
    who or what the matter is about (the work order's who_what)."""
    has_spot = bool(address.building) or _has_spot(where) or bool(_ORGANISATION.search(party))
    if address.community and _LANDMARK_PLACE.search(address.community):
        has_spot = True
    has_area = bool(address.street or address.community) or _named(_NAMED_AREA, where)
    if not has_area and not (has_spot and _named(_NAMED_LANDMARK, where)):
        return Gap.AREA
    return Gap.NONE if has_spot else Gap.SPOT


def _has_spot(where: str) -> bool:
    return bool(_NUMBERED.search(where) or _BESIDE.search(where) or _named(_NAMED_LANDMARK, where))


def _named(pattern: re.Pattern[str], where: str) -> bool:
    """Whether a suffix in ``where`` follows a real name (万达广场), not 这个广场 or 小区门口."""
    for found in pattern.finditer(where):
        if _RELATIVE_WORD.search(found.group(1)):
            continue  # 楼下烧烤店, 路边小卖部: where the caller is, not a name
        name = _NOT_A_NAME.sub("", found.group(1))
        if len(name) >= 2 and not _GENERIC_PLACE.match(name):
            return True
    return False
