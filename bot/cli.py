"""``hotline bot ...``: chat with the bot, evaluate it, calibrate it; ``hotline bench bot``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.brain import BotPaths, Brain
from bot.events import (
    CallStarted,
    CreateTicket,
    Dtmf,
    HangUp,
    Listen,
    Say,
    SilenceTimeout,
    Transfer,
    Utterance,
)


def register(commands: Any, bench: Any) -> None:
    bot = commands.add_parser("bot", help="the dialogue bot: chat, eval, bench, calibrate")
    sub = bot.add_subparsers(dest="bot_command", metavar="ACTION", required=True)

    chat = sub.add_parser("chat", help="a text conversation with the bot")
    _data_args(chat)
    chat.add_argument(
        "--night", action="store_true", help="no operator on duty (tickets, callbacks)"
    )
    chat.add_argument("--show-ticket", action="store_true", help="print ticket drafts as JSON")
    chat.set_defaults(handler=_chat)

    ev = sub.add_parser("eval", help="accuracy on a TSV of text<TAB>expected")
    _data_args(ev)
    ev.add_argument("--cases", default=None, help="TSV file: text<TAB>expected")
    ev.add_argument(
        "--cv", type=int, default=0, metavar="K", help="K-fold cross-validation over the corpus"
    )
    ev.add_argument(
        "--departments", default=None, help="TSV of work-order sentences: text<TAB>department"
    )
    ev.add_argument(
        "--no-learn-heard",
        dest="learn_heard",
        action="store_false",
        help="with --cv: leave the heard copies of the corpus out of training (what they buy)",
    )
    ev.add_argument("--noise", choices=["none", "homophone"], default="none")
    ev.add_argument("--noise-rate", type=float, default=0.1)
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument("--json", action="store_true", help="print JSON (default: a short table)")
    ev.set_defaults(handler=_eval)

    heard = sub.add_parser(
        "heard", help="first turns on recogniser n-best lists (.jsonl cases or a recorded .json)"
    )
    _data_args(heard)
    heard.add_argument("cases", help="n-best cases (.jsonl) or a recorded Whisper fixture (.json)")
    heard.add_argument(
        "--first-only", action="store_true", help="the first hypothesis only, no respelling"
    )
    heard.add_argument(
        "--whole-clip",
        action="store_true",
        help="a recorded clip's utterances joined into one turn, as a call joins a turn the "
        "caller went on with (default: its first utterance)",
    )
    heard.set_defaults(handler=_heard)

    hints = sub.add_parser("hints", help="print the recogniser's phrase hints, one a line")
    _data_args(hints)
    hints.set_defaults(handler=_hints)

    cal = sub.add_parser("calibrate", help="fit the retrieval confidence on your own phrasings")
    _data_args(cal)
    cal.add_argument("--cases", required=True, help="TSV of kb:<id> and unknown cases")
    cal.set_defaults(handler=_calibrate)

    for parser in (
        sub.add_parser("bench", help="decision latency (JSON)"),
        bench.add_parser("bot", help="bot decision latency"),
    ):
        parser.add_argument("--utterances", default=None, help="text file, one utterance a line")
        parser.add_argument(
            "--large", type=int, default=5000, help="entries of the generated knowledge base"
        )
        parser.add_argument("--rounds", type=int, default=5)
        parser.add_argument("--json", action="store_true", help="(always JSON)")
        parser.set_defaults(handler=_bench)


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kb", default=None, help="knowledge base .yaml or .csv (default: the sample)"
    )
    parser.add_argument(
        "--cues", default=None, help="cue lexicon YAML (default: bot/data/cues.yaml)"
    )
    parser.add_argument("--gazetteer", default=None)
    parser.add_argument("--menu", default=None)
    parser.add_argument("--prompts", default=None)
    parser.add_argument(
        "--no-semantic", action="store_true", help="words and sounds only (no sentence encoder)"
    )
    parser.add_argument(
        "--synonyms", default=None, help="synonym lexicon YAML (default: bot/data/synonyms.yaml)"
    )
    parser.add_argument(
        "--corpus",
        default=None,
        help="folder of labelled caller phrasings *.tsv, heard copies in its heard/ (default: "
        "bot/data/corpus)",
    )


def _brain(args: argparse.Namespace) -> Brain:
    return Brain.load(
        BotPaths(
            args.kb,
            args.cues,
            args.gazetteer,
            args.menu,
            args.prompts,
            args.synonyms,
            not args.no_semantic,
            args.corpus,
        )
    )


def _heard(args: argparse.Namespace) -> int:
    """JSON: right / confirmed / wrong per label (bot.heard_eval), and the cases not right."""
    from bot import heard_eval

    brain = _brain(args)
    path = str(args.cases)
    if path.endswith(".json"):
        cases = heard_eval.load_recorded(path, whole_clip=args.whole_clip)
    else:
        cases = heard_eval.load_heard_jsonl(path)
    if args.first_only:
        brain.speller = None
    result = heard_eval.score(brain, cases, nbest=not args.first_only)
    result["rows"] = [row for row in result["rows"] if row["verdict"] != "right"]
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _hints(args: argparse.Namespace) -> int:
    for hint in _brain(args).hints():
        print(hint)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from bot.evaluate import evaluate, load_cases

    brain = _brain(args)
    if args.cv:
        from bot.evaluate import cross_validate

        result = cross_validate(brain, args.cv, args.seed, args.learn_heard, args.corpus)
    elif args.departments:
        from bot.evaluate import evaluate_departments

        departments = evaluate_departments(brain, args.departments)
        print(json.dumps(departments, ensure_ascii=False, indent=2 if args.json else None))
        return 0
    elif args.cases:
        cases = load_cases(args.cases, brain)
        result = evaluate(brain, cases, args.noise, args.noise_rate, args.seed)
    else:
        print("hotline bot eval: give --cases FILE, --departments FILE or --cv K", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    print(f"cases {result['cases']}  accuracy {result['accuracy']}  kb_top1 {result['kb_top1']}"
          f"  emergency_recall {result['emergency_recall']}"
          f"  false_answers {result['false_answers']} ({result['false_answer_rate']})"
          f"  wrong_confirms {result['wrong_confirms']}")  # fmt: skip
    if "heard" in result:
        heard = result["heard"]
        print(f"heard copies: cases {heard['cases']}  accuracy {heard['accuracy']}  kb_top1 "
              f"{heard['kb_top1']}  emergency_recall {heard['emergency_recall']}  false_answers "
              f"{heard['false_answers']} ({heard['false_answer_rate']})")  # fmt: skip
    print("per-label recall and confusion (row: expected, columns: what the bot did):")
    for label, acc in result["per_label"].items():
        row = "  ".join(f"{k} {v}" for k, v in result["confusion"][label].items())
        print(f"  {label:12} {acc:<7} {row}")
    for err in result["errors"]:
        print(f"  line {err['line']}: {err['text']}  expected {err['expected']}  got {err['got']}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from bot.calibrate import fit

    print(json.dumps(fit(_brain(args), args.cases), ensure_ascii=False, indent=2))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from bot.bench import run_bench

    print(json.dumps(run_bench(args.utterances, args.large, args.rounds), indent=2))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from bot.dialogue import Dialogue

    brain = _brain(args)
    dialogue = Dialogue(brain)
    print("输入来电者的话；数字 0-9 * # 为按键；空行为静默；Ctrl-D 结束。")
    decision = dialogue.start(CallStarted("13800000000", seats_available=not args.night))
    while _show(decision.actions, args.show_ticket):
        try:
            line = input("来电> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            event: Any = SilenceTimeout()
        elif len(line) == 1 and line in "0123456789*#":
            event = Dtmf(line)
        else:
            event = Utterance(line)
        decision = dialogue.handle(event)
    return 0


def _show(actions: list[Any], show_ticket: bool) -> bool:
    """Print the bot's actions; False when the call is over."""
    going_on = True
    for action in actions:
        if isinstance(action, Say):
            print(f"机器人: {action.text}")
        elif isinstance(action, Listen):
            pass
        elif isinstance(action, CreateTicket):
            night = "，早班回电" if action.callback_promised else ""
            print(f"[生成工单: {action.ticket.type.value} {action.ticket.topic}{night}]")
            if show_ticket:
                print(action.ticket.model_dump_json(indent=2, exclude_none=True))
        elif isinstance(action, Transfer):
            print(f"[转接队列 {action.queue}: {action.reason}]")
            if show_ticket and action.ticket is not None:
                print(action.ticket.model_dump_json(indent=2, exclude_none=True))
            going_on = False
        elif isinstance(action, HangUp):
            print(f"[挂机: {action.reason}]")
            going_on = False
    sys.stdout.flush()
    return going_on
