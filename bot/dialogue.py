"""The dialogue policy: an explicit state machine, one per call, events in, actions out.

States (``Decision.state``):

    main          waiting for the caller's request (after the greeting)
    answered      a knowledge-base answer was given; waiting for "anything else?"
    rephrase      the bot did not understand and asked once to rephrase
    submenu       the caller is in a second-level keypad menu
    ask:<element> taking a work order down: asking for one missing element
    where:area    the place is vague: asking for the street, road or community
    where:spot    the area is known: asking for the building, gate or landmark
    readback      the summary was read back; waiting for yes or a correction
    correct       the caller said it is wrong; waiting for what to correct
    fix:<element> waiting for the new value of one element
    ended         the call is over for the bot (transferred, ticket created, hung up)

From every state, DTMF ``0`` or asking for a person (人工) hands over at once, and an
emergency is advised and handed over at once. Silence re-prompts, then reads the menu,
then ends the call (keeping anything already taken down as a ticket).

Night mode (``CallStarted.seats_available=False``): no operator to transfer to, so work
orders and hand-overs become ``CreateTicket(callback_promised=True)``; the session tells
the caller the ticket number and that the morning shift will call back.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from bot.address import Gap, gap
from bot.brain import Brain
from bot.classifier import Intent
from bot.contact import parse_name, parse_phone, spoken_digits
from bot.events import (
    Action,
    BargeIn,
    CallEnded,
    CallStarted,
    CreateTicket,
    Decision,
    DialogueState,
    Dtmf,
    Event,
    HangUp,
    Listen,
    Phase,
    Say,
    SilenceTimeout,
    TicketLookup,
    Transfer,
    Utterance,
)
from bot.intake import DEFAULT_WANTS, ELEMENT_NAMES, REQUIRED, spoken_summary, summary
from bot.kb import Entry
from bot.menu import MenuOption
from bot.nbest import Doubt, Understood
from bot.safety import Danger, danger_of
from bot.text import Prepared
from hotline.draft import Caller, RequestType, TicketDraft, Urgency, request_type_label

MIN_ASR_CONFIDENCE = 0.35  # below this the words are too unreliable to act on


@dataclass
class _CallState:
    state: DialogueState = field(default_factory=lambda: DialogueState.of(Phase.MAIN))
    night: bool = False
    caller: str = ""
    rephrased: bool = False
    warned: bool = False
    silences: int = 0
    human_asked_at_night: bool = False
    submenu: tuple[MenuOption, ...] = ()
    menu_path: list[str] = field(default_factory=list)
    dtmf: str = ""
    words: list[str] = field(default_factory=list)
    kb_answers: list[str] = field(default_factory=list)
    ticket: TicketDraft | None = None
    asked: list[str] = field(default_factory=list)
    contact_asked: bool = False
    number_keys: str = ""
    last_says: list[Say] = field(default_factory=list)  # what "再说一遍" repeats
    last_entry: str = ""  # the entry answered last (follow-ups are read against it)
    not_meant: list[str] = field(default_factory=list)  # entries the caller said no to
    pending_text: str = ""  # the words behind 「现在有人有生命危险吗？」
    pending_danger: str = ""  # the reading that sounded dangerous (may be a lesser hypothesis)
    confirm_nos: int = 0
    ticket_tries: int = 0
    failed_corrections: int = 0
    address_asks: int = 0  # questions about a vague address so far (at most two)


class Dialogue:
    """One call's dialogue. ``brain`` is shared and read-only; this object is per call.

    ``turns`` lists each caller turn and what the bot made of it, for the call record
    (``manage.calls``): ``input`` (speech|dtmf), ``text``, ``confidence``, ``state`` (before
    the turn), ``intent``, ``kb_id`` and ``kb_confidence`` (best entry), ``answered``
    (the entry was read out), ``unanswered`` (a question the knowledge base had no answer
    for: the list of entries to write next).
    """

    def __init__(self, brain: Brain, lookup: TicketLookup | None = None) -> None:
        self.brain = brain
        self.lookup = lookup  # the ticket store, for callers asking after a work order
        self.s = _CallState()
        self.turns: list[dict[str, object]] = []
        self._turn: dict[str, object] = {}

    def prompt_text(self, prompt_id: str) -> str:
        """A fixed prompt's wording (the one managers edit), for what the call session says
        by itself: the satisfaction survey, the thanks, a callback confirmation."""
        return self.brain.prompts.text(prompt_id)

    # ---- entry points ----
    def start(self, event: CallStarted) -> Decision:
        self.s = _CallState(night=not event.seats_available, caller=event.caller_number)
        self.turns, self._turn = [], {}
        prompt = "greeting_night" if self.s.night else "greeting"
        return self._decide([self._say(prompt), self._listen()], Phase.MAIN)

    def handle(self, event: Event) -> Decision:
        if isinstance(event, CallStarted):
            return self.start(event)
        if self.s.state.phase is Phase.ENDED:
            return Decision([], Phase.ENDED)
        if isinstance(event, CallEnded):
            return self._call_ended()
        if isinstance(event, BargeIn):
            return self._decide([self._listen()], self.s.state)  # the session stopped the prompt
        if isinstance(event, SilenceTimeout):
            return self._silence()
        if isinstance(event, Dtmf):
            return self._dtmf(event.digit)
        return self._utterance(event)

    def snapshot(self) -> object:
        """Everything a turn may change, to take that turn back (see ``restore``)."""
        return copy.deepcopy((self.s, self.turns, self._turn))

    def restore(self, snapshot: object) -> None:
        """Undo the turns since ``snapshot``: the session takes back a reply whose turn the
        caller went on with (they had only paused), to answer the whole sentence instead."""
        self.s, self.turns, self._turn = copy.deepcopy(snapshot)  # type: ignore[misc]

    @property
    def state(self) -> str:
        return self.s.state

    @property
    def ticket(self) -> TicketDraft | None:
        return self.s.ticket

    # ---- events ----
    def _utterance(self, u: Utterance) -> Decision:
        s = self.s
        s.silences = 0
        if not u.text.strip():
            return self._not_understood("empty utterance", heard=False)
        # Every hypothesis the recogniser heard is read (bot.nbest); where the caller says
        # what they called about, the best joint reading decides, elsewhere (an answer to
        # the bot's question) the first hypothesis does, and danger in any reading counts.
        open_request = s.state.phase in _OPEN_PHASES
        understood = self.brain.understand(u, tuple(s.not_meant), ask=open_request)
        reading = understood.chosen if open_request else understood.readings[0]
        text, intent = reading.text.strip(), reading.intent
        doubt = understood.doubt if open_request else None
        wording = understood.wording if open_request else None
        s.words.append(text)
        if s.ticket is not None:
            s.ticket.caller_words.append(text)
        self._record_turn(text, u.confidence, intent, understood)
        # Safety first, in every state: danger to life goes to a person at once.
        if intent.label == "emergency":
            return self._emergency(intent)
        if s.state.phase is Phase.EMERGENCY_CHECK:
            return self._danger_reply(text)
        if intent.label == "emergency_check" or (open_request and understood.danger is not None):
            # Danger heard in any hypothesis, however unsure: ask, never guess it away. (In
            # answer to the bot's own questions the first hypothesis decides, as before: a
            # "no" must not lose the work order being taken down.)
            s.pending_text = text
            s.pending_danger = understood.danger.text if understood.danger else text
            return self._decide(
                [self._say("emergency_check"), self._listen()], Phase.EMERGENCY_CHECK
            )
        p = Prepared.of(text)
        asks_again = p.any(self.brain.lexicon.repeat) is not None and len(p.text) <= 10
        if asks_again and p.any(self.brain.lexicon.human) is None:  # 没听清，转人工: a person
            return self._repeat()
        if intent.label == "human":
            return self._human(f"caller asked for a person ({intent.cue})")
        if s.state.phase is Phase.CONTACT:
            return self._contact_reply(s.state.detail, text)
        if s.state.phase is Phase.STATUS:
            return self._ticket_number(text)
        low_confidence = u.confidence < MIN_ASR_CONFIDENCE
        if low_confidence and s.state.phase not in (Phase.ASK, Phase.FIX, Phase.WHERE):
            if open_request and intent.label == "consultation" and intent.match is not None:
                # Unsure words that still point at one answer: ask, rather than 「没听清」.
                return self._confirm_entry(intent.match.entry, wording)
            return self._not_understood(f"recogniser confidence {u.confidence:.2f}", heard=False)
        if s.state.phase is Phase.ASK:
            return self._answer_element(s.state.detail, text)
        if s.state.phase is Phase.WHERE:
            return self._address_reply(text)
        if s.state.phase is Phase.READBACK:
            return self._readback_reply(text)
        if s.state.phase is Phase.CORRECT:
            return self._correction(text)
        if s.state.phase is Phase.FIX:
            return self._fixed(s.state.detail, text)
        if self._closing(p, intent):
            return self._decide([self._say("goodbye"), HangUp("answered")], Phase.ENDED)
        if s.state.phase is Phase.CONFIRM:
            return self._confirm_reply(s.state.detail, text, p, intent)
        if s.state.phase is Phase.ANSWERED and s.last_entry:
            intent = self._in_context(text, p, intent)
        return self._request(intent, text, doubt, wording)

    def _record_turn(
        self, text: str, confidence: float, intent: Intent, understood: Understood | None = None
    ) -> None:
        top = intent.candidates[0] if intent.candidates else None
        self._turn = {"input": "speech", "text": text, "confidence": round(confidence, 3),
                      "state": self.s.state, "intent": intent.label,
                      "kb_id": top.entry.id if top else "",
                      "kb_confidence": round(top.confidence, 3) if top else 0.0,
                      "answered": False, "unanswered": False}  # fmt: skip
        if understood is not None and len(understood.readings) > 1:
            self._turn["readings"] = [r.as_dict() for r in understood.readings]
        self.turns.append(self._turn)

    def _closing(self, p: Prepared, intent: Intent) -> bool:
        """谢谢 / 知道了 / 没有了: a polite end, unless the words carry a new request."""
        if not self.brain.is_closing(p):
            return False
        return intent.label == "unknown" or (intent.band != "answer" and len(p.text) <= 6)

    # ---- context: repeat, follow-up, correction, confirmation ----
    def _repeat(self) -> Decision:
        """The last prompt again, more slowly (the session renders ``slow`` at a slower pace)."""
        says = [Say(x.text, x.prompt, x.barge_in, slow=True) for x in self.s.last_says]
        if not says:
            says = [self._say("listen_again")]
        return Decision([*says, self._listen()], self.s.state)

    def _in_context(self, text: str, p: Prepared, intent: Intent) -> Intent:
        """A follow-up (那要带什么材料) or a correction (不是身份证，我问的是驾照) read
        against the entry answered last."""
        s = self.s
        lx = self.brain.lexicon
        if p.text.startswith(("不是", "不对", "错了")) or _CORRECTION_LEAD.search(p.text):
            if s.last_entry not in s.not_meant:
                s.not_meant.append(s.last_entry)
            rest = _after_correction(text)
            if not rest:
                return Intent("ask_again", 0.0, cue="correction without a new question")
            return self.brain.classify(rest, tuple(s.not_meant))
        if intent.band == "answer":
            return intent
        if p.any(lx.follow_up) is not None or len(p.text) <= 8:
            last = self.brain.kb.get(s.last_entry)
            if last is not None:
                joined = self.brain.classify(f"{last.question} {text}", tuple(s.not_meant))
                if joined.label == "consultation":
                    return joined
        return intent

    def _confirm_reply(self, entry_id: str, text: str, p: Prepared, intent: Intent) -> Decision:
        s = self.s
        lx = self.brain.lexicon
        denied = p.any(lx.deny) is not None or "不" in p.text[:2] or "没" in p.text[:2]
        if not denied and p.any(lx.confirm) is not None and len(p.text) <= 8:
            entry = self.brain.kb.get(entry_id)
            if entry is not None:
                return self._answer(entry, confidence=1.0)
        if not denied:
            return self._request(intent, text)  # a new question instead of yes or no
        s.not_meant.append(entry_id)
        s.confirm_nos += 1
        rest = _after_correction(text)
        if len(Prepared.of(rest).text) >= 4:
            return self._request(self.brain.classify(rest, tuple(s.not_meant)), rest)
        if s.confirm_nos >= 2:
            return self._hand_over_unanswered("caller said no to two suggested answers")
        return self._decide([self._say("ask_again"), self._listen()], Phase.REPHRASE)

    def _danger_reply(self, text: str) -> Decision:
        s = self.s
        p = Prepared.of(text)
        lx = self.brain.lexicon
        if p.any(lx.danger_no) is None and p.any(lx.danger_yes) is not None:
            heard = s.pending_danger or s.pending_text
            intent = Intent("emergency", 1.0, cue=f"caller confirmed danger: {heard}")
            intent.danger = danger_of(Prepared.of(heard))
            return self._emergency(intent)
        original, s.pending_text, s.pending_danger = s.pending_text, "", ""
        s.state = DialogueState.of(Phase.MAIN)
        intent = self.brain.classifier.classify(original, tuple(s.not_meant), ask=False)
        return self._request(intent, original)

    def _request(
        self, intent: Intent, text: str, doubt: Doubt | None = None, wording: Doubt | None = None
    ) -> Decision:
        """``doubt``: the reading acted on means something else than the recogniser's first
        hypothesis (confirm first); ``wording``: the heard word a confirm names."""
        s = self.s
        if doubt is not None and intent.label == "abusive":
            # Abuse heard only by respelling or in a lesser hypothesis: not a warning.
            return self._not_understood("abuse only in a doubtful reading", heard=False)
        if intent.label == "abusive":
            if s.warned:
                return self._decide([self._say("abusive_end"), HangUp("abusive")], Phase.ENDED)
            s.warned = True
            return self._decide([self._say("abusive_warning"), self._listen()], Phase.MAIN)
        if intent.label == "ask_again":
            return self._decide([self._say("ask_again"), self._listen()], Phase.REPHRASE)
        if self.lookup is not None and self._asks_after_ticket(text, intent):
            return self._ticket_number(text, first=True)
        if intent.label == "consultation" and intent.match is not None:
            entry = intent.match.entry
            if intent.band == "confirm" or doubt is not None:
                return self._confirm_entry(entry, wording or doubt)
            return self._answer(entry, intent.match.confidence)
        if intent.label in REQUIRED:
            return self._start_intake(intent, text)
        if not self.brain.lexicon.strip_fillers(Prepared.of(text)):
            # 喂 / 你好 alone: nothing was asked yet, so nothing is "not answered".
            return self._decide([self._say("listen_again"), self._listen()], self.s.state)
        if intent.label in ("unknown", "consultation"):
            self._turn["unanswered"] = True
        return self._not_understood("no knowledge-base answer", intent)

    def _confirm_entry(self, entry: Entry, wording: Doubt | None) -> Decision:
        """「您是说低保吗？」 when a word heard by sound decides, else 「您是想问……吗？」."""
        if wording is not None and wording.term:
            say = Say(self.brain.prompts.text("confirm_heard", term=wording.term), "confirm_heard")
            self._turn["doubt"] = f"{wording.heard}->{wording.term}"
        else:
            say = Say(confirm_kb_text(self.brain, entry), "confirm_kb")
        return self._decide([say, self._listen()], DialogueState.of(Phase.CONFIRM, entry.id))

    def _answer(self, entry: Entry, confidence: float) -> Decision:
        s = self.s
        s.kb_answers.append(entry.id)
        s.last_entry = entry.id
        s.rephrased = False
        s.confirm_nos = 0
        self._turn.update(kb_id=entry.id, kb_confidence=round(confidence, 3), answered=True)
        return self._decide(
            [Say(entry.answer), self._say("answer_followup"), self._listen()], Phase.ANSWERED
        )

    # ---- asking after an earlier work order (the session's ticket lookup) ----
    def _asks_after_ticket(self, text: str, intent: Intent) -> bool:
        p = Prepared.of(text)
        if p.any(self.brain.lexicon.ticket_query) is not None:
            return True
        return _ticket_number_in(text) is not None and intent.label in ("unknown", "consultation")

    def _ticket_number(self, text: str, first: bool = False) -> Decision:
        s = self.s
        number = _ticket_number_in(text)
        if number is None:
            if first:
                return self._decide([self._say("ask_ticket_number"), self._listen()],
                                    DialogueState.of(Phase.STATUS, "number"))  # fmt: skip
            return self._ticket_not_found()
        assert self.lookup is not None
        found = self.lookup.ticket_status(number)
        if found is None:
            return self._ticket_not_found()
        s.ticket_tries = 0
        spoken = " ".join(found.number.replace("-", ""))  # read digit by digit
        say = self._say("ticket_status", ticket_no=spoken, status=found.status)
        return self._decide([say, self._say("answer_followup"), self._listen()], Phase.ANSWERED)

    def _ticket_not_found(self) -> Decision:
        s = self.s
        s.ticket_tries += 1
        if s.ticket_tries >= 2:
            return self._human("work order number not found twice")
        return self._decide(
            [self._say("ticket_not_found"), self._listen()],
            DialogueState.of(Phase.STATUS, "number"),
        )

    def _dtmf(self, digit: str) -> Decision:
        s = self.s
        s.dtmf += digit
        s.silences = 0
        self.turns.append(
            {
                "input": "dtmf",
                "text": digit,
                "confidence": 1.0,
                "state": s.state,
                "intent": "human" if digit == "0" else "key",
                "kb_id": "",
                "kb_confidence": 0.0,
                "answered": False,
                "unanswered": False,
            }
        )
        if s.state.phase is Phase.CONTACT and s.state.detail in ("number", "digits"):
            return self._callback_key(digit)
        if s.state.phase is Phase.STATUS:  # keys are the number's digits here, 0 included
            if digit in "*#":
                keys, s.number_keys = s.number_keys, ""
                return self._ticket_number(keys)
            s.number_keys += digit
            return self._decide([], s.state)
        if digit == "0":
            return self._human("caller pressed 0")
        if s.state.phase is Phase.READBACK and digit in "12":
            return self._readback_reply("对" if digit == "1" else "不对")
        if s.state.phase is Phase.CONFIRM and digit in "12":  # 是请按一，不是请按二
            answer = "是" if digit == "1" else "不是"
            return self._confirm_reply(s.state.detail, answer, Prepared.of(answer),
                                       Intent("unknown", 0.0))  # fmt: skip
        level = s.submenu or self.brain.menu.options
        option = self.brain.menu.option(digit, level)
        if option is None:
            text = self.brain.prompts.text("menu_invalid") + self.brain.menu.spoken(level)
            return self._decide([Say(text, "menu_invalid"), self._listen()], s.state)
        s.menu_path.append(option.path())
        s.submenu = ()
        if option.action == "submenu":
            s.submenu = option.submenu
            return self._decide(
                [Say(self.brain.menu.spoken(option.submenu)), self._listen()], Phase.SUBMENU
            )
        if option.action == "repeat":
            return self._decide(
                [Say(self.brain.menu.spoken(self.brain.menu.options)), self._listen()], Phase.MAIN
            )
        if option.action == "ask":
            return self._decide([Say(option.value), self._listen()], Phase.MAIN)
        if option.action == "transfer":
            ticket = self._new_ticket(RequestType.CONSULTATION, f"menu: {option.label}")
            return self._hand_over(ticket, f"menu choice {option.label}", option.value)
        intent = Intent(option.value, 1.0)
        return self._start_intake(intent, "")

    def _silence(self) -> Decision:
        s = self.s
        s.silences += 1
        if s.silences == 1:
            return self._decide([self._say("silence"), self._listen()], s.state)
        if s.silences == 2 and s.state.phase in (Phase.MAIN, Phase.ANSWERED, Phase.REPHRASE):
            menu = self.brain.menu.spoken(self.brain.menu.options)
            return self._decide([self._say("silence_menu", menu=menu), self._listen()], Phase.MAIN)
        if s.ticket is not None and s.ticket.elements.what_happened:
            return self._finish_ticket("caller went silent during intake")
        return self._decide([self._say("silence_end"), HangUp("silence")], Phase.ENDED)

    def _call_ended(self) -> Decision:
        s = self.s
        if s.ticket is not None and s.ticket.elements.what_happened:
            s.ticket.handover_reason = "caller hung up before the intake was finished"
            self._complete(s.ticket)
            s.state = DialogueState.of(Phase.ENDED)
            return Decision([CreateTicket(s.ticket, callback_promised=s.night)], Phase.ENDED)
        s.state = DialogueState.of(Phase.ENDED)
        return Decision([], Phase.ENDED)

    # ---- hand-over paths ----
    def _emergency(self, intent: Intent) -> Decision:
        """Advice that fits the danger, then a person at once, day and night (never a
        morning callback). What an intake had taken down goes along with the caller."""
        s = self.s
        reason = f"emergency: {intent.cue}"
        ticket = s.ticket or self._new_ticket(RequestType.EMERGENCY, reason)
        ticket.type = RequestType.EMERGENCY
        ticket.urgency = Urgency.EMERGENCY
        ticket.handover_reason = reason
        if not ticket.elements.what_happened:
            ticket.elements.what_happened = s.words[-1] if s.words else ""
        if s.pending_text and s.pending_text not in ticket.elements.what_happened:
            ticket.elements.what_happened = f"{s.pending_text}；{ticket.elements.what_happened}"
        self._complete(ticket)
        advice = self._say(EMERGENCY_PROMPTS[intent.danger], barge_in=False)
        return self._decide([advice, Transfer("general", reason, ticket)], Phase.ENDED)

    def _human(self, reason: str) -> Decision:
        s = self.s
        ticket = s.ticket or self._new_ticket(RequestType.HUMAN, reason)
        if not ticket.handover_reason:
            ticket.handover_reason = reason
        if s.night:
            if s.ticket is not None and s.ticket.elements.what_happened:
                return self._finish_ticket(reason)
            if not s.human_asked_at_night:
                s.human_asked_at_night = True
                return self._decide([self._say("human_night"), self._listen()], Phase.MAIN)
            return self._decide([self._callback_ticket(ticket), HangUp("callback")], Phase.ENDED)
        queue = self.brain.lexicon.queue_for(ticket.department, ticket.topic)
        return self._hand_over(ticket, reason, queue)

    def _not_understood(
        self, reason: str, intent: Intent | None = None, heard: bool = True
    ) -> Decision:
        """Once: 「没听清」 when the recogniser was unsure (``heard`` False), otherwise the
        truth (「这个问题我暂时答不了」) and a rephrase; the second time a person."""
        s = self.s
        if not s.rephrased:
            s.rephrased = True
            prompt = "cannot_answer" if heard else "rephrase"
            return self._decide([self._say(prompt), self._listen()], Phase.REPHRASE)
        return self._hand_over_unanswered(f"not answered after rephrasing: {reason}", intent)

    def _hand_over_unanswered(self, reason: str, intent: Intent | None = None) -> Decision:
        s = self.s
        ticket = self._new_ticket(RequestType.CONSULTATION, reason)
        if intent is not None and intent.candidates:
            ticket.topic = intent.candidates[0].entry.topic
        ticket.elements.what_happened = "；".join(s.words[-2:])
        if s.night:
            return self._decide(
                [
                    self._say("not_understood_night"),
                    self._callback_ticket(ticket),
                    HangUp("callback"),
                ],
                Phase.ENDED,
            )
        return self._decide(
            [
                self._say("not_understood_handover"),
                Transfer("general", ticket.handover_reason, ticket),
            ],
            Phase.ENDED,
        )

    def _hand_over(self, ticket: TicketDraft, reason: str, queue: str) -> Decision:
        ticket.handover_reason = ticket.handover_reason or reason
        self._complete(ticket)
        if self.s.night:
            return self._decide([self._callback_ticket(ticket), HangUp("callback")], Phase.ENDED)
        return self._decide([self._say("transfer"), Transfer(queue, reason, ticket)], Phase.ENDED)

    # ---- taking a work order down ----
    def _start_intake(self, intent: Intent, text: str) -> Decision:
        s = self.s
        kind = RequestType(intent.label)
        ticket = self._new_ticket(kind, "")
        if text:
            ticket.caller_words.append(text)
        self._classify_topic(ticket, intent, text)
        if text:
            self.brain.extractor.fill(text, ticket.elements, first=True)
        s.ticket = ticket
        opening = self._say("intake_start", type_name=request_type_label(kind))
        return self._next_question([opening])

    def _classify_topic(self, ticket: TicketDraft, intent: Intent, text: str) -> None:
        lx = self.brain.lexicon
        p = Prepared.of(text)
        for rule, keywords in lx.topics:
            if p.any(keywords) is not None:
                ticket.topic, ticket.department = rule.topic, rule.department
                break
        else:  # the knowledge-base entry the matter is closest to, when clearly closest
            entry = intent.closest_entry()
            if entry is not None and "政务服务热线" not in entry.department:  # not a department
                ticket.topic, ticket.department = entry.topic, entry.department
        if p.any(lx.urgent) is not None:
            ticket.urgency = Urgency.URGENT
        if p.any(lx.anonymous) is not None:
            ticket.caller.anonymous = ticket.caller.confidential = True

    def _missing(self) -> list[str]:
        t = self._ticket()
        return [
            n
            for n in REQUIRED.get(t.type.value, ())
            if not getattr(t.elements, n) and n not in self.s.asked
        ]

    def _next_question(self, before: list[Action]) -> Decision:
        vague = self._address_gap()
        if vague is not Gap.NONE:
            self.s.address_asks += 1
            prompt = f"ask_where_{vague.value}"
            return self._decide(
                [*before, self._say(prompt), self._listen()], DialogueState.of(Phase.WHERE, vague)
            )
        missing = self._missing()
        if missing:
            name = missing[0]
            self.s.asked.append(name)
            return self._decide(
                [*before, self._say(f"ask_{name}"), self._listen()],
                DialogueState.of(Phase.ASK, name),
            )
        if not self.s.contact_asked and not self._ticket().caller.anonymous:
            self.s.contact_asked = True
            return self._decide(
                [*before, self._say("ask_caller_name"), self._listen()],
                DialogueState.of(Phase.CONTACT, "name"),
            )
        return self._readback(before)

    def _address_gap(self) -> Gap:
        """The missing part of a place a department must go to, asked at most twice."""
        t = self._ticket()
        e = t.elements
        if "where" not in REQUIRED.get(t.type.value, ()) or not e.where or e.where == "不清楚":
            return Gap.NONE
        if self.s.address_asks >= 2:
            return Gap.NONE
        return gap(e.where, e.address, e.who_what)

    def _address_reply(self, text: str) -> Decision:
        t = self._ticket()
        p = Prepared.of(text)
        if p.any(self.brain.lexicon.dont_know) is not None:
            self.s.address_asks = 2  # the caller does not know more: do not press
        else:
            within = self.s.state == DialogueState.of(Phase.WHERE, Gap.SPOT)
            self.brain.extractor.add_to_where(text, t.elements, within)
        self.brain.extractor.fill(text, t.elements)  # a caller often answers more than asked
        return self._next_question([])

    # ---- the caller's name and callback number (optional; anonymous on request) ----
    def _contact_reply(self, step: str, text: str) -> Decision:
        caller = self._ticket().caller
        if step == "name":
            answer = parse_name(text, self.brain.lexicon)
            caller.name = answer.name
            caller.confidential = caller.confidential or answer.confidential
            if answer.anonymous:
                caller.anonymous = caller.confidential = True
                return self._readback()
            return self._decide(
                [self._say("ask_callback_number"), self._listen()],
                DialogueState.of(Phase.CONTACT, "number"),
            )
        number = parse_phone(text)
        if number is not None:
            caller.callback_number = number
            return self._readback()
        p = Prepared.of(text)
        lx = self.brain.lexicon
        # 不行 / 不是 contain 行 / 是: any 不 is a no here (the caller was asked a yes/no).
        agrees = p.any(lx.confirm) is not None and "不" not in p.text and p.any(lx.deny) is None
        if step == "number" and not agrees:
            return self._decide(
                [self._say("ask_callback_digits"), self._listen()],
                DialogueState.of(Phase.CONTACT, "digits"),
            )
        return self._readback()  # 可以 / 对: the caller ID stays the callback number

    def _callback_key(self, digit: str) -> Decision:
        s = self.s
        if digit in "*#":
            number = s.number_keys
            s.number_keys = ""
            if number and parse_phone(number) == number:
                self._ticket().caller.callback_number = number
            return self._readback()
        s.number_keys += digit
        return self._decide([], s.state)

    def _answer_element(self, name: str, text: str) -> Decision:
        t = self._ticket()
        before = t.elements.model_dump()
        self.brain.extractor.fill(text, t.elements)  # a caller often answers more than asked
        after = t.elements.model_dump()
        others = [k for k in after if k not in (name, "address") and after[k] != before[k]]
        if not getattr(t.elements, name):
            if others and name in ("where", "when") and self.s.asked.count(name) < 2:
                self.s.asked.remove(name)  # it answered another question: ask this one again
            else:
                self.brain.extractor.set_element(name, text, t.elements)
        p = Prepared.of(text)
        if p.any(self.brain.lexicon.urgent) is not None and t.urgency == Urgency.NORMAL:
            t.urgency = Urgency.URGENT
        return self._next_question([])

    def _readback(self, before: list[Action] | None = None) -> Decision:
        t = self._ticket()
        for name, default in DEFAULT_WANTS.items():
            if t.type.value == name and not t.elements.caller_wants:
                t.elements.caller_wants = default
        t.summary = summary(request_type_label(t.type), t.elements)
        say = self._say("readback", summary=self._spoken_readback(t))
        return self._decide([*(before or []), say, self._listen()], Phase.READBACK)

    def _spoken_readback(self, t: TicketDraft) -> str:
        """The short read-back, then the name and the callback number digit by digit."""
        text = spoken_summary(request_type_label(t.type), t.elements)
        if t.caller.name:
            text += f"；联系人{t.caller.name}"
        if t.caller.callback_number and not t.caller.anonymous:
            text += "，回电号码" + " ".join(t.caller.callback_number)
        return text

    def _fixed(self, name: str, value: str) -> Decision:
        """A corrected element: re-read only what changed."""
        elements = self._ticket().elements
        self.brain.extractor.set_element(name, value, elements)
        self._ticket().summary = summary(request_type_label(self._ticket().type), elements)
        change = f"{ELEMENT_NAMES[name]}改为{getattr(elements, name)}"
        return self._decide(
            [self._say("readback_changed", changes=change), self._listen()], Phase.READBACK
        )

    def _correction_failed(self) -> Decision:
        """A correction the bot did not understand: ask once more, then a person."""
        self.s.failed_corrections += 1
        if self.s.failed_corrections >= 2:
            return self._human("two corrections not understood")
        return self._decide([self._say("ask_correction"), self._listen()], Phase.CORRECT)

    def _readback_reply(self, text: str) -> Decision:
        lx = self.brain.lexicon
        p = Prepared.of(text)
        target = self.brain.extractor.correction_target(text)
        if p.any(lx.deny) is not None or target is not None:
            if target is not None:
                value = self.brain.extractor.correction_value(text, target)
                if len(value) >= 2:
                    return self._fixed(target, value)
                return self._decide(
                    [
                        self._say("ask_correction_field", field_name=ELEMENT_NAMES[target]),
                        self._listen(),
                    ],
                    DialogueState.of(Phase.FIX, target),
                )
            return self._decide([self._say("ask_correction"), self._listen()], Phase.CORRECT)
        if p.any(lx.confirm) is not None:
            return self._finish_ticket("")
        return self._correction_failed()

    def _correction(self, text: str) -> Decision:
        target = self.brain.extractor.correction_target(text)
        if target is None:
            return self._correction_failed()
        value = self.brain.extractor.correction_value(text, target)
        if len(value) >= 2 and value not in ELEMENT_NAMES.values():
            return self._fixed(target, value)
        return self._decide(
            [self._say("ask_correction_field", field_name=ELEMENT_NAMES[target]), self._listen()],
            DialogueState.of(Phase.FIX, target),
        )

    def _callback_ticket(self, ticket: TicketDraft) -> CreateTicket:
        """Night: a work order the morning shift calls back on, confirmed to the caller in
        the manager's wording (``ticket_created_night``, its number filled by the session)."""
        wording = self.brain.prompts.text("ticket_created_night")
        return CreateTicket(ticket, callback_promised=True, confirmation=wording)

    def _finish_ticket(self, reason: str) -> Decision:
        t = self._ticket()
        if reason:
            t.handover_reason = reason
        self._complete(t)
        if self.s.night:
            t.callback_promised = True
            return self._decide([self._callback_ticket(t), HangUp("ticket")], Phase.ENDED)
        t.handover_reason = t.handover_reason or f"{request_type_label(t.type)}需要人工处理"
        queue = self.brain.lexicon.queue_for(t.department, t.topic)
        for rule, _ in self.brain.lexicon.topics:
            if rule.topic == t.topic:
                queue = rule.queue
        return self._decide(
            [self._say("ticket_created_day"), Transfer(queue, t.handover_reason, t)], Phase.ENDED
        )

    # ---- helpers ----
    def _new_ticket(self, kind: RequestType, reason: str) -> TicketDraft:
        s = self.s
        return TicketDraft(
            type=kind,
            caller=Caller(number=s.caller, callback_number=s.caller),
            caller_words=list(s.words),
            handover_reason=reason,
            kb_answers=list(s.kb_answers),
            menu_path=list(s.menu_path),
            dtmf=s.dtmf,
        )

    def _complete(self, t: TicketDraft) -> None:
        s = self.s
        t.menu_path, t.dtmf, t.kb_answers = list(s.menu_path), s.dtmf, list(s.kb_answers)
        t.caller_words = list(dict.fromkeys([*t.caller_words, *s.words]))
        if not t.summary:
            t.summary = summary(request_type_label(t.type), t.elements)
        if not t.department:
            t.department = "市政务服务热线"

    def _ticket(self) -> TicketDraft:
        if self.s.ticket is None:
            raise RuntimeError("no work order is being taken down")
        return self.s.ticket

    def _say(self, prompt_id: str, barge_in: bool = True, **values: str) -> Say:
        return Say(self.brain.prompts.text(prompt_id, **values), prompt_id, barge_in)

    def _listen(self) -> Listen:
        return Listen(hints=self.brain.hints())

    def _decide(self, actions: list[Action], state: DialogueState | Phase) -> Decision:
        if isinstance(state, Phase):
            state = DialogueState.of(state)
        self.s.state = state
        says = [a for a in actions if isinstance(a, Say)]
        if says:
            self.s.last_says = says
        return Decision(actions, state)


# States where the caller says what they called about (not answering one of our
# questions): only here does an uncertain danger signal earn 「现在有人有生命危险吗？」;
# while a work order is taken down, cues and a confident model still hand over at once.
def confirm_kb_text(brain: Brain, entry: Entry) -> str:
    """「您是想问低保怎么申请吗？」 for one entry (the session pre-renders them all)."""
    asked = entry.question.rstrip("？?。 ").removesuffix("吗").removesuffix("呢")
    return brain.prompts.text("confirm_kb", question=asked)


_OPEN_PHASES = (Phase.MAIN, Phase.ANSWERED, Phase.REPHRASE, Phase.SUBMENU)

EMERGENCY_PROMPTS = {
    Danger.FIRE: "emergency_fire",
    Danger.MEDICAL: "emergency_medical",
    Danger.POLICE: "emergency_police",
    Danger.TRAFFIC: "emergency_traffic",
    Danger.WATER: "emergency_water",
    Danger.GENERAL: "emergency",
}
_CORRECTION_LEAD = re.compile(
    r"(?:我问的是|我说的是|我是问|我是说|我想问的是|我要问的是|是想问|我问)(.*)$"
)
_TICKET_NUMBER = re.compile(r"(20\d{6})-?(\d{4})")


def _after_correction(text: str) -> str:
    """What the caller asks instead: the part after 我问的是 (不是身份证，我问的是驾照),
    or after the first pause when the correction leads (不是这个，驾照到期怎么换)."""
    m = _CORRECTION_LEAD.search(text)
    if m:
        return m.group(1).strip(" ，,。")
    parts = re.split(r"[，,。 ]+", text.strip(), maxsplit=1)
    if len(parts) == 2 and parts[0].startswith(("不是", "不对", "错了")):
        return parts[1].strip()
    return ""


def _ticket_number_in(text: str) -> str | None:
    """A work-order number (20261122-0042) spoken digit by digit or typed, or None."""
    digits = re.sub(r"[^0-9-]", "", spoken_digits(text))
    m = _TICKET_NUMBER.search(digits)
    return f"{m.group(1)}-{m.group(2)}" if m else None
