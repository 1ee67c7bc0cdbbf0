"""Taking a work order down: the five elements (where, when, who/what, what happened,
what the caller wants) found in what the caller says.

Extraction is rule-based on purpose: the elements are short spans (a place from the
gazetteer or a place-like phrase, a time expression, the facility or party named by a
topic keyword, a request clause after 希望/要求/请...), and the operator reads the
caller's verbatim words on the ticket anyway.
"""

from __future__ import annotations

import re

from bot.gazetteer import Gazetteer
from bot.lexicon import Lexicon
from bot.text import Prepared, normalise
from hotline.draft import Address, FiveElements

ELEMENTS = ("what_happened", "where", "when", "who_what", "caller_wants")
ELEMENT_NAMES = {
    "what_happened": "事情经过",
    "where": "地点",
    "when": "时间",
    "who_what": "涉及对象",
    "caller_wants": "诉求",
}
# What a caller says to name an element when correcting it.
ELEMENT_WORDS = {
    "where": ("地点", "地址", "位置", "地方", "在哪"),
    "when": ("时间", "日期", "几点", "什么时候"),
    "who_what": ("对象", "单位", "哪个人", "设施"),
    "what_happened": ("经过", "事情", "情况", "问题"),
    "caller_wants": ("诉求", "要求", "希望", "处理"),
}
# Required elements per type; the others are asked for only when the type needs them.
REQUIRED = {
    "complaint": ELEMENTS,
    "help": ELEMENTS,
    "report": ("what_happened", "where", "when", "who_what"),
    "suggestion": ("what_happened", "caller_wants"),
    "praise": ("what_happened", "who_what"),
}
DEFAULT_WANTS = {"report": "请相关部门依法查处", "praise": "转达表扬"}

_NUM = "[0-9零一二三四五六七八九十两几半]"
_TIME = re.compile(
    rf"(昨天|今天|前天|大前天|明天|刚才|刚刚|现在|最近|这几天|这两天|上周|上个?星期|上个月|本周|今年|去年|"
    rf"每天|天天|每晚|每天晚上|经常|一直|早上|上午|中午|下午|傍晚|晚上|夜里|半夜|凌晨|深夜|"
    rf"{_NUM}+[点時时](?:{_NUM}+分?)?|{_NUM}+(?:个)?(?:多)?(?:天|周|星期|个月|月|年|小时|分钟)(?:了|以来|多了)?|"
    rf"{_NUM}+月{_NUM}+[日号])+"
)
_PLACE = re.compile(
    r"(?P<place>[\u4e00-\u9fff0-9]{0,10}?(?:小区|社区|花园|家园|新村|公寓|大厦|广场|公园|市场|医院|学校|"
    r"大道|路口|路边|路|街|巷|村|镇|号楼|楼下|楼上|楼道|楼|单元|栋|幢|门口|大门|[东南西北]门|附近|旁边|对面|隔壁|"
    r"河边|桥下|[0-9零一二三四五六七八九十百两]+(?:号楼|栋|幢|单元|号院|号|层|室))+)"
    # the facility beside the place is part of where: 阳光花园旁边的工地
    r"(?P<beside>的?(?:那个|那家)?(?:工地|饭店|餐馆|烧烤店|超市|商店|工厂|停车场|菜场|垃圾站|公厕))?"
)
_WANTS = re.compile(
    r"((?:希望|要求|请求|请你们|请|麻烦你们|赶紧|尽快|赶快|能不能|能否|帮忙|帮我们|让他们|给我)[\u4e00-\u9fff0-9]*)"
)
_PARTY = re.compile(
    r"((?:有人|有个|有家|有一家|有辆|一个|一家)?[\u4e00-\u9fff]{0,6}?(?:公司|工地|饭店|餐馆|店|超市|药店|物业|开发商|单位|工厂|作坊|司机|老板|商家|医院|学校|窗口|工作人员|部门|车))"
)


# Words before a place or party that belong to the sentence, not to the name.
_LEAD = re.compile(
    r"^.*(?:投诉|举报|反映|求助|建议|表扬|我们|我家|咱们|他们|你们|就在|是在|住在|在|我|是|的|了)"
)


# Places relative to the caller: kept in the detail, but they are not an address.
_RELATIVE = re.compile(
    r"^(?:楼下|楼上|楼道|隔壁|旁边|对面|附近|门口|家门口|这里|那里|河边|桥下|路口|路边|楼)+$"
)


def _said(level: str, spoken: str) -> bool:
    """Whether the caller named this gazetteer level (东湖 for 东湖区, 湖滨 for 湖滨街道)."""
    core = re.sub(r"(?:街道|社区|区)$", "", level)
    return core[:2] in spoken


def _merged(old: Address, new: Address, within: bool) -> Address:
    """A place that agrees with the old one refines it; one that contradicts it replaces
    it, unless the caller was only asked for the spot inside the old one."""
    levels = ("district", "street", "community", "building")
    if all(not getattr(old, f) or not getattr(new, f) or getattr(old, f) == getattr(new, f)
           for f in levels):  # fmt: skip
        update = {f: getattr(new, f) for f in levels if getattr(new, f)}
        return old.model_copy(update=update)
    return old if within else new


def _trim(span: str) -> str:
    trimmed = _LEAD.sub("", span)
    return trimmed if len(trimmed) >= 2 else span


class Extractor:
    def __init__(self, lexicon: Lexicon, gazetteer: Gazetteer) -> None:
        self.lexicon = lexicon
        self.gazetteer = gazetteer

    def where(self, text: str, elements: FiveElements) -> str:
        """The place in ``text`` in the caller's own words; the gazetteer only adds the
        levels the caller left out, in brackets (阳光花园旁边的工地（东湖区湖滨街道）),
        and fills the structured address."""
        address = self.gazetteer.find(text)
        place = _PLACE.search(normalise(text))
        spoken = _trim(place["place"]) + (place["beside"] or "") if place else ""
        if _RELATIVE.match(spoken):
            spoken = ""
        if address is None:
            return spoken
        elements.address = address
        if not spoken:
            return address.text()
        unsaid = [part for part in (address.district, address.street) if not _said(part, spoken)]
        return spoken + (f"（{''.join(unsaid)}）" if unsaid else "")

    def add_to_where(self, text: str, elements: FiveElements, within: bool) -> None:
        """The caller's answer to 「具体在哪」: it adds to the place already taken down.
        ``within``: the answer names a spot inside the area already known (三号楼 is
        that area's building, even if the gazetteer knows a 三号楼 elsewhere)."""
        more = FiveElements()
        found = self.where(text, more) or normalise(text)
        if more.address.text():
            elements.address = _merged(elements.address, more.address, within)
        if found and found not in elements.where:
            elements.where = f"{elements.where}，{found}" if elements.where else found

    def fill(self, text: str, elements: FiveElements, first: bool = False) -> None:
        """Fill the empty elements ``text`` mentions (never overwrite what the caller said)."""
        norm = normalise(text)
        if not elements.where:
            elements.where = self.where(text, elements)
        if not elements.when:
            times = [m.group(0) for m in _TIME.finditer(norm)]
            elements.when = "".join(dict.fromkeys(times))
        if not elements.who_what:
            elements.who_what = self.party(norm)
        if not elements.caller_wants:
            wants = _WANTS.search(norm)
            if wants and len(wants.group(1)) >= 3:
                elements.caller_wants = wants.group(1)
        if first and not elements.what_happened and self.describes(norm):
            elements.what_happened = text.strip()

    def party(self, norm: str) -> str:
        found = _PARTY.search(norm)
        if found:
            return _trim(found.group(1))
        p = Prepared.of(norm)
        for rule, keywords in self.lexicon.topics:
            cue = p.any(keywords)
            if cue is not None and rule.topic != "热线服务":
                return cue.text
        return ""

    def describes(self, norm: str) -> bool:
        """Whether an utterance says more than naming the request type (我要投诉)."""
        rest = norm
        for phrases in self.lexicon.explicit.values():
            for phrase in phrases:
                rest = rest.replace(phrase.text, "")
        for filler in (
            "我",
            "要",
            "想",
            "一下",
            "你好",
            "喂",
            "您好",
            "的",
            "了",
            "个",
            "问题",
            "事情",
        ):
            rest = rest.replace(filler, "")
        return len(rest) >= 4

    def set_element(self, name: str, text: str, elements: FiveElements) -> None:
        """The caller's answer to a question about one element."""
        value = text.strip()
        if any(p.text in normalise(text) for p in self.lexicon.dont_know):
            value = "不清楚"
        if name == "where":
            elements.address = Address()  # a new place replaces the old one, fields too
            found = self.where(text, elements)
            value = found if found and len(found) >= len(normalise(text)) // 2 else (found or value)
            if found and found not in value:
                value = f"{found}（{value}）"
        setattr(elements, name, value)

    def correction_target(self, text: str) -> str | None:
        norm = normalise(text)
        for name, words in ELEMENT_WORDS.items():
            if any(w in norm for w in words):
                return name
        if self.gazetteer.find(text) is not None or _PLACE.search(norm):
            return "where"
        if _TIME.search(norm):
            return "when"
        return None

    def correction_value(self, text: str, name: str) -> str:
        """The new value in a correction such as 地点不对，是幸福里三号楼."""
        norm = normalise(text)
        for word in (
            *ELEMENT_WORDS[name],
            "不对",
            "不是",
            "错了",
            "应该是",
            "改成",
            "更正",
            "是",
            "在",
        ):
            norm = norm.replace(word, "", 1) if norm.startswith(word) else norm
        for marker in ("应该是", "改成", "是在", "是", "在"):
            at = normalise(text).rfind(marker)
            if at >= 0 and len(normalise(text)) - at - len(marker) >= 2:
                return normalise(text)[at + len(marker) :]
        return norm


# Spoken read-back: at most about 60 characters (what, where, when, the wish), so a
# caller hears it in ten seconds instead of forty; the ticket keeps the full summary.
_SPOKEN_LIMITS = (("what_happened", 22), ("where", 18), ("when", 8), ("caller_wants", 12))


_BRACKETED = re.compile(r"（[^）]*）")


def spoken_summary(type_name: str, e: FiveElements) -> str:
    # The gazetteer's bracketed levels are for the department, not worth the caller's time.
    parts = [_clip(_BRACKETED.sub("", getattr(e, name)), limit) for name, limit in _SPOKEN_LIMITS]
    what, where, when, wants = parts
    out = f"{type_name}：{what}" if what else type_name
    if where:
        out += f"，地点{where}"
    if when:
        out += f"，{when}"
    if wants:
        out += f"，{wants}"
    return out


_LEAD_WORDS = re.compile(r"^(?:我要投诉|我要举报|我想反映|我要反映|还有|那个|就是|喂|你好)+[，,]?")


def _clip(value: str, limit: int) -> str:
    value = re.sub(_LEAD_WORDS, "", value or "")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def summary(type_name: str, e: FiveElements) -> str:
    parts = [f"{ELEMENT_NAMES[n]}：{getattr(e, n)}" for n in ELEMENTS if getattr(e, n)]
    return f"{type_name}，" + "；".join(parts)
