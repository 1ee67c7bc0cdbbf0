"""A structural checker for the hotline's Asterisk configuration.

No Asterisk config linter is packaged for Debian or PyPI, and Asterisk itself is not in
Debian 12, so this checks what breaks calls silently: every section of pjsip.conf has a
valid type; endpoints' aors/auth/context exist; dialplan jumps (Goto, GotoIf, Gosub,
Dial b()) land on an existing context, extension and label; Dial targets are defined
endpoints; every queue the bot can transfer to (bot menu and cues, ticket skills) and
every Queue() in the dialplan exists in queues.conf with members that are endpoints;
AMI carries HOTLINE_TICKET for the screen pop; the bot's SIP user matches settings;
every keyword is one Asterisk 20 knows for its file and section type (tables and their
sources in ops/asterisk_keywords.py), obsolete ones named with what to do instead; seat
phones' AORs are qualified and let a restarted phone replace its stale contact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops import asterisk_keywords as keywords

PJSIP_TYPES = {"global", "system", "transport", "endpoint", "aor", "auth", "identify",
               "registration", "domain_alias", "acl", "contact", "phoneprov",
               "resource_list", "outbound-publish", "inbound-publication"}  # fmt: skip
QUEUE_STRATEGIES = {"ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered",
                    "linear", "wrandom"}  # fmt: skip
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<opts>[^)]*)\))?\s*$")
_JUMP = re.compile(r"\b(Goto|Gosub)\(([^)]*)\)", re.I)
_GOTOIF = re.compile(r"\bGotoIf\(.*\?([^:)]*)(?::([^)]*))?\)", re.I)
_DIAL = re.compile(r"\bDial\(([^,)]*)", re.I)
_DIAL_CONTACTS = re.compile(r"PJSIP_DIAL_CONTACTS\(([^)]+)\)")  # scale-out turn-taking
_DIAL_B = re.compile(r"b\(([^)^]+)\^([^)^]+)\^([^)]+)\)")
_QUEUE = re.compile(r"\bQueue\(([^,)]*)", re.I)
_SOUND = re.compile(r"\bhotline/[\w-]+")  # a sound of ours, wherever the dialplan names it
_LABEL = re.compile(r"^n\((\w[\w-]*)\)|^\d+\((\w[\w-]*)\)")


@dataclass
class Section:
    name: str
    file: str
    line: int
    template: bool = False
    parents: list[str] = field(default_factory=list)
    values: list[tuple[str, str, int]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        found = [v for k, v, _ in self.values if k == key]
        return found[-1] if found else None

    def all(self, key: str) -> list[str]:
        return [v for k, v, _ in self.values if k == key]


def parse(path: Path) -> list[Section]:
    """Asterisk's .conf syntax: sections, templates ``(!)``, ``key = value``, ``=>``, ``;``."""
    sections: list[Section] = []
    current: Section | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if not line or line.startswith("#"):
            continue
        match = _SECTION.match(line)
        if match:
            opts = [o.strip() for o in (match.group("opts") or "").split(",") if o.strip()]
            current = Section(match.group("name").strip(), path.name, number, "!" in opts,
                              [o for o in opts if o not in ("!", "+")])  # fmt: skip
            sections.append(current)
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise ValueError(f"{path.name}:{number}: not a section or key=value: {raw.strip()}")
        current.values.append((key.strip(), value.lstrip(">").strip(), number))
    return sections


def _resolved(sections: list[Section]) -> dict[str, list[Section]]:
    """Same-named sections (pjsip uses them: endpoint + aor + auth) with templates applied."""
    by_name: dict[str, list[Section]] = {}
    templates = {s.name: s for s in sections if s.template}
    for s in sections:
        if s.template:
            continue
        inherited: list[tuple[str, str, int]] = []
        for parent in s.parents:
            if parent in templates:
                inherited += templates[parent].values
        s.values = inherited + s.values
        by_name.setdefault(s.name, []).append(s)
    return by_name


def _pattern_matches(pattern: str, exten: str) -> bool:
    if not pattern.startswith("_"):
        return pattern == exten
    regex = ""
    chars = pattern[1:]
    i = 0
    while i < len(chars):
        c = chars[i]
        if c == "[":
            end = chars.index("]", i)
            regex += "[" + chars[i + 1 : end] + "]"
            i = end
        else:
            regex += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(
                c, re.escape(c)
            )
        i += 1
    return re.fullmatch(regex, exten) is not None


@dataclass
class Dialplan:
    extens: dict[str, dict[str, set[str]]]  # context -> exten -> labels
    lines: list[tuple[str, str, str, int]]  # context, exten, application text, line

    def has(self, context: str, exten: str | None, label: str | None) -> bool:
        if context not in self.extens:
            return False
        if exten is None or "${" in exten:
            return True
        if exten in self.extens[context]:  # the same (possibly pattern) extension
            return label is None or label.isdigit() or label in self.extens[context][exten]
        for pattern, labels in self.extens[context].items():
            if _pattern_matches(pattern, exten):
                return label is None or label.isdigit() or label in labels
        return False


def dialplan(sections: list[Section]) -> tuple[Dialplan, list[str]]:
    problems: list[str] = []
    extens: dict[str, dict[str, set[str]]] = {}
    lines: list[tuple[str, str, str, int]] = []
    for s in sections:
        if s.name in ("general", "globals"):
            continue
        ctx = extens.setdefault(s.name, {})
        exten = None
        for key, value, number in s.values:
            if key == "exten":
                parts = value.split(",", 2)
                if len(parts) < 3:
                    problems.append(f"extensions.conf:{number}: exten needs name,priority,app")
                    continue
                exten, prio, app = parts
                if (
                    prio.split("(")[0].strip() not in ("1", "n", "hint")
                    and not prio.strip()[0].isdigit()
                ):
                    problems.append(f"extensions.conf:{number}: odd priority {prio!r}")
            elif key == "same":
                if exten is None:
                    problems.append(f"extensions.conf:{number}: 'same' before any exten")
                    continue
                prio, _, app = value.partition(",")
            elif key in ("include", "switch"):
                continue
            else:
                problems.append(f"extensions.conf:{number}: unknown key {key!r} in [{s.name}]")
                continue
            labels = ctx.setdefault(exten.strip(), set())
            label = _LABEL.match(prio.strip())
            if label:
                labels.add(label.group(1) or label.group(2))
            lines.append((s.name, exten.strip(), app, number))
    return Dialplan(extens, lines), problems


def _target(spec: str, context: str, exten: str) -> tuple[str, str | None, str]:
    """Goto's forms: label | exten,label | context,exten,label."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return context, parts[0], parts[1]
    return context, exten, parts[0]


def bot_queues(repo: Path) -> set[str]:
    """Queue names the bot transfers to: its menu's ``transfer:`` and its cues' ``queue:``."""
    data = repo / "bot" / "data"
    names: set[str] = {"general"}
    for name in ("menu.yaml", "cues.yaml"):
        path = data / name
        if path.is_file():
            names |= set(re.findall(r"\b(?:transfer|queue):\s*([A-Za-z_][\w-]*)",
                                    path.read_text(encoding="utf-8")))  # fmt: skip
    return names


def lint(
    directory: Path,
    *,
    manager: Path | None = None,
    repo: Path | None = None,
    settings: object | None = None,
) -> list[str]:
    """Problems found, one readable line each; an empty list means the files hang together."""
    repo = repo or Path(__file__).resolve().parent.parent
    problems: list[str] = []
    files = {n: directory / n for n in ("pjsip.conf", "extensions.conf", "queues.conf",
                                        "manager.conf")}  # fmt: skip
    if manager is not None:
        files["manager.conf"] = manager
    parsed: dict[str, list[Section]] = {}
    for name, path in files.items():
        if not path.is_file():
            problems.append(f"{name}: missing in {directory}")
            continue
        try:
            parsed[name] = parse(path)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        return problems
    pjsip = _resolved(parsed["pjsip.conf"])
    plan, found = dialplan(parsed["extensions.conf"])
    problems += found
    queues = {s.name: s for s in parsed["queues.conf"] if s.name != "general"}
    endpoints = {n for n, ss in pjsip.items() for s in ss if s.get("type") == "endpoint"}

    for name, same in pjsip.items():
        for s in same:
            kind = s.get("type")
            if kind not in PJSIP_TYPES:
                problems.append(f"pjsip.conf:{s.line}: [{name}] has no valid type ({kind!r})")
                continue
            if kind == "endpoint":
                for ref, want in (("aors", "aor"), ("auth", "auth")):
                    for target in filter(None, (s.get(ref) or "").split(",")):
                        if not any(t.get("type") == want for t in pjsip.get(target.strip(), [])):
                            problems.append(f"pjsip.conf:{s.line}: endpoint [{name}] {ref}="
                                            f"{target} is not a defined {want}")  # fmt: skip
                ctx = s.get("context")
                if ctx and ctx not in plan.extens:
                    problems.append(f"pjsip.conf:{s.line}: endpoint [{name}] context={ctx} "
                                    "is not in extensions.conf")  # fmt: skip
            if kind == "identify" and s.get("endpoint") not in endpoints:
                problems.append(f"pjsip.conf:{s.line}: identify [{name}] names no endpoint")
            if kind == "identify":
                problems += _unresolvable_matches(s)

    from ivr.asterisk_sounds import ASTERISK_SOUNDS

    rendered = {sound.name for sound in ASTERISK_SOUNDS}
    for context, exten, app, number in plan.lines:
        where = f"extensions.conf:{number}"
        for kind, spec in _JUMP.findall(app):
            ctx, ext, label = _target(spec, context, exten)
            if "${" not in spec and not plan.has(ctx, ext, label):
                problems.append(f"{where}: {kind}({spec}) goes nowhere")
        for branch in (b for pair in _GOTOIF.findall(app) for b in pair if b):
            ctx, ext, label = _target(branch, context, exten)
            if "${" not in branch and not plan.has(ctx, ext, label):
                problems.append(f"{where}: GotoIf branch {branch} goes nowhere")
        for ctx, ext, prio in _DIAL_B.findall(app):
            if not plan.has(ctx, ext, prio):
                problems.append(f"{where}: Dial pre-dial handler {ctx}^{ext}^{prio} goes nowhere")
        for target in _DIAL.findall(app):
            for leg in target.split("&"):
                tech, _, rest = leg.partition("/")
                name = rest.split("@")[0]
                if (
                    tech.upper() == "PJSIP"
                    and "${" not in leg
                    and "@" not in rest
                    and name not in endpoints
                ):
                    problems.append(f"{where}: Dial({leg}) is not a PJSIP endpoint")
                if tech.upper() == "PJSIP" and "@" in rest and rest.split("@")[1] not in endpoints:
                    problems.append(f"{where}: Dial({leg}) goes through an unknown endpoint")
        for name in _DIAL_CONTACTS.findall(app):
            if "${" not in name and name not in endpoints:
                problems.append(f"{where}: PJSIP_DIAL_CONTACTS({name}) is not a PJSIP endpoint")
        for sound in _SOUND.findall(app):
            if sound[8:] not in rendered:
                problems.append(
                    f"{where}: {sound} is no sound the hotline renders "
                    "(ivr/asterisk_sounds.py): the caller would hear silence"
                )
        for queue in _QUEUE.findall(app):
            if "${" not in queue and queue not in queues:
                problems.append(f"{where}: Queue({queue}) is not in queues.conf")

    # The controller Redirects callers to the queue of a skill (settings ami.queues) in
    # the queue context: every skill the bot or the ticket store uses must map to a queue
    # that exists and is routed.
    from hotline.settings import Settings

    current: Any = settings if settings is not None else Settings.model_construct()
    queue_ctx = current.ami.queue_context
    mapping: dict[str, str] = dict(current.ami.queues)
    for skill in sorted(bot_queues(repo) | set(current.tickets.skills)):
        queue = mapping.get(skill)
        if queue is None:
            problems.append(f"settings ami.queues: no Asterisk queue for skill {skill}, which "
                            "the bot or a ticket skill transfers to")  # fmt: skip
        elif queue not in queues:
            problems.append(f"queues.conf: no queue [{queue}] (skill {skill}, ami.queues)")
        elif not plan.has(queue_ctx, queue, None):
            problems.append(f"extensions.conf: [{queue_ctx}] does not route {queue}")
    for name, s in queues.items():
        for key, sound, line in s.values:
            if "announce" in key and sound.startswith("hotline/") and sound[8:] not in rendered:
                problems.append(f"queues.conf:{line}: [{name}] {key}={sound} is no sound the "
                                "hotline renders (ivr/asterisk_sounds.py)")  # fmt: skip
        strategy = s.get("strategy")
        if strategy and strategy not in QUEUE_STRATEGIES:
            problems.append(f"queues.conf:{s.line}: [{name}] unknown strategy {strategy}")
        for member in s.all("member"):
            iface = member.split(",")[0].strip()
            tech, _, ep = iface.partition("/")
            if tech.upper() == "PJSIP" and ep not in endpoints:
                problems.append(f"queues.conf:{s.line}: [{name}] member {iface} is not an endpoint")

    mgr = {s.name: s for s in parsed["manager.conf"]}
    general = mgr.get("general")
    if general is None or general.get("enabled") != "yes":
        problems.append("manager.conf: AMI is not enabled ([general] enabled=yes)")
    elif "HOTLINE_TICKET" not in (general.get("channelvars") or ""):
        problems.append("manager.conf: channelvars lacks HOTLINE_TICKET (no screen pop)")
    users = [s for n, s in mgr.items() if n != "general"]
    if not users:
        problems.append("manager.conf: no AMI user for the controller")
    for user in users:
        if not user.get("secret"):
            problems.append(f"manager.conf:{user.line}: [{user.name}] has no secret")
        for need, perm in (("write", "originate"), ("write", "call"), ("read", "agent")):
            if perm not in (user.get(need) or ""):
                problems.append(f"manager.conf:{user.line}: [{user.name}] {need}= lacks {perm}")

    problems += _unknown_keywords(pjsip, parsed["queues.conf"], parsed["manager.conf"])
    problems += _seat_aors(pjsip, queues, endpoints)

    if settings is not None:
        sip = getattr(settings, "sip", None)
        bot = [s for s in pjsip.get("hotline-bot-auth", []) if s.get("type") == "auth"]
        if sip is not None and bot and bot[0].get("username") != sip.username:
            problems.append(f"pjsip.conf: [hotline-bot-auth] username={bot[0].get('username')} "
                            f"but sip.username={sip.username}")  # fmt: skip
    return list(dict.fromkeys(problems))  # a template's fault is reported once


# RFC 2606/6761 names that never resolve: a placeholder left in place.
_RESERVED = re.compile(r"(^|\.)(example\.(com|net|org)|example|invalid|test|localhost)$", re.I)


def _unresolvable_matches(identify: Section) -> list[str]:
    """Asterisk resolves ``match=`` host names when it loads; one that does not resolve
    drops the whole identify (ERROR "Could not create an object of type 'identify'"),
    and every call from that carrier is refused as from an unknown endpoint."""
    names = [m.strip() for v in identify.all("match") for m in v.split(",") if m.strip()]
    return [
        f"pjsip.conf:{identify.line}: identify [{identify.name}] match={name} is a placeholder "
        "that never resolves: Asterisk drops the identify; use the carrier's IP address"
        for name in names
        if _RESERVED.search(name.split("/")[0].split(":")[0])
    ]


def _keyword_problem(file: str, section: str, key: str, line: int, known: frozenset[str]) -> str:
    where = f"{file}:{line}: [{section}] {key}"
    if (file, key) in keywords.OBSOLETE:
        return f"{where}: obsolete, {keywords.OBSOLETE[(file, key)]}"
    if key in known:
        return ""
    return f"{where}: unknown keyword (Asterisk 20 ignores or refuses it)"


def _unknown_keywords(
    pjsip: dict[str, list[Section]], queues: list[Section], manager: list[Section]
) -> list[str]:
    """Every key checked against its file's and section type's table (asterisk_keywords)."""
    found: list[str] = []
    for name, same in pjsip.items():
        for s in same:
            known = keywords.PJSIP.get(s.get("type") or "")
            if known is None:
                continue  # no valid type: reported above
            found += [_keyword_problem("pjsip.conf", name, k, n, known) for k, _, n in s.values]
    for s in queues:
        known = keywords.QUEUE_GENERAL if s.name == "general" else keywords.QUEUE
        found += [_keyword_problem("queues.conf", s.name, k, n, known) for k, _, n in s.values]
    for s in manager:
        known = keywords.MANAGER_GENERAL if s.name == "general" else keywords.MANAGER_USER
        found += [_keyword_problem("manager.conf", s.name, k, n, known) for k, _, n in s.values]
    return [f for f in found if f]


def _seat_aors(
    pjsip: dict[str, list[Section]], queues: dict[str, Section], endpoints: set[str]
) -> list[str]:
    """A queue member's phone must be qualified and replaceable: without qualify a phone
    that died without unregistering stays "Not in use" and the queue rings a dead contact
    (for up to the registration's expiry); without remove_existing, max_contacts=1 refuses
    the restarted phone (403)."""
    members = {
        iface.partition("/")[2]
        for q in queues.values()
        for member in q.all("member")
        if (iface := member.split(",")[0].strip()).upper().startswith("PJSIP/")
    }
    found: list[str] = []
    for endpoint in sorted(members & endpoints):
        for s in pjsip[endpoint]:
            if s.get("type") != "endpoint":
                continue
            for aor_name in filter(None, (a.strip() for a in (s.get("aors") or "").split(","))):
                for aor in (a for a in pjsip.get(aor_name, []) if a.get("type") == "aor"):
                    found += _seat_aor_problems(aor)
    return found


def _seat_aor_problems(aor: Section) -> list[str]:
    where = f"pjsip.conf:{aor.line}: seat aor [{aor.name}]"
    found = []
    if _number(aor.get("qualify_frequency")) <= 0:
        found.append(f"{where} has no qualify_frequency: a phone that dies without "
                     "unregistering stays 'Not in use' and the queue rings it")  # fmt: skip
    contacts = _number(aor.get("max_contacts"))
    if contacts < 1 and not aor.get("contact"):
        found.append(f"{where} has max_contacts=0: the phone cannot register")
    replaces = (aor.get("remove_existing") or "no").lower() in ("yes", "true", "1")
    if contacts >= 1 and not replaces:
        found.append(
            f"{where} lacks remove_existing=yes: a restarted phone is refused "
            f"(max contacts of {int(contacts)}) until its stale contact expires"
        )
    return found


def _number(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0
