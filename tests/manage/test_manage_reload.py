"""Hot reload: a saved menu reaches controllers over Redis between calls, never mid-call."""

from __future__ import annotations

import time

import pytest
import yaml

from bot.dialogue import Dialogue
from bot.events import CallStarted, Dtmf, Say, Transfer
from hotline.settings import Settings
from manage.config import ConfigError, ConfigStore, MenuInvalid
from manage.reload import ConfigWatcher
from tickets.service import TicketService

NEW_MENU = {
    "options": [
        {"key": "1", "label": "政策咨询", "ask": "请说出您要咨询的问题。"},
        {"key": "2", "label": "公积金专席", "transfer": "real_estate"},
    ]
}


def _key(dialogue: Dialogue, key: str) -> list[object]:
    return dialogue.handle(Dtmf(key)).actions


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_live_call_keeps_old_menu_next_call_gets_new(
    settings: Settings, service: TicketService
) -> None:
    # The console's side: its own store writes the version and announces it.
    console_side = ConfigStore(service.store, settings, service.queue.redis)
    # The controller's side: another ConfigStore (its own node), a watcher and a cache.
    controller_dir = settings.data_dir / "node2"
    node_settings = settings.model_copy(update={"data_dir": controller_dir})
    node_config = ConfigStore(service.store, node_settings)
    watcher = ConfigWatcher.start_for(node_config, node_settings, sync_every_s=3600)
    try:
        assert watcher.wait_subscribed()
        live = Dialogue(watcher.cache.current())  # a call in progress
        live.handle(CallStarted("13800000000"))
        old_version = watcher.cache.version

        console_side.save(
            "menu", yaml.safe_dump(NEW_MENU, allow_unicode=True), "boss", "公积金专席"
        )
        assert _wait(lambda: watcher.cache.version > old_version), "no reload after publish"

        # The live call still has the old menu: key 2 starts a complaint intake.
        said = [a.text for a in _key(live, "2") if isinstance(a, Say)]
        assert any("投诉" in s for s in said)
        # The next call gets the new one: key 2 transfers to the housing-fund seat.
        nxt = Dialogue(watcher.cache.current())
        nxt.handle(CallStarted("13900000000"))
        actions = _key(nxt, "2")
        assert any(isinstance(a, Transfer) and a.queue == "real_estate" for a in actions)
        assert (controller_dir / "config" / "menu.yaml").read_text(
            encoding="utf-8"
        ) == console_side.active("menu").content  # type: ignore[union-attr]

        # Roll back: the call after that is back on the original menu.
        version = watcher.cache.version
        console_side.rollback("menu", 1, "boss")
        assert _wait(lambda: watcher.cache.version > version)
        third = Dialogue(watcher.cache.current())
        third.handle(CallStarted("13700000000"))
        assert not any(isinstance(a, Transfer) for a in _key(third, "2"))
        assert [v.version for v in console_side.versions("menu")] == [3, 2, 1]
        assert console_side.active("menu").note == "回滚到版本 1"  # type: ignore[union-attr]
    finally:
        watcher.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_invalid_versions_are_never_stored(settings: Settings, service: TicketService) -> None:
    config = ConfigStore(service.store, settings)
    config.seed()
    before = config.active("menu")
    with pytest.raises(MenuInvalid) as info:
        config.save("menu", "options:\n  - {key: '1', label: a}\n", "boss")
    assert "options[1] (key 1 a): needs exactly one action" in str(info.value)
    with pytest.raises(ConfigError, match=r"prompt\(s\) missing or empty: greeting"):
        config.save("prompts", "goodbye: 再见\n", "boss")
    assert config.active("menu") == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_watcher_catches_up_without_pubsub(settings: Settings, service: TicketService) -> None:
    """A node that missed the message (Redis away) syncs on its periodic check."""
    config = ConfigStore(service.store, settings)  # no Redis client: nothing is published
    config.seed()
    node = settings.model_copy(update={"data_dir": settings.data_dir / "node3"})
    watcher = ConfigWatcher.start_for(ConfigStore(service.store, node), node, sync_every_s=1.0)
    try:
        version = watcher.cache.version
        config.save("menu", yaml.safe_dump(NEW_MENU, allow_unicode=True), "boss")
        assert _wait(lambda: watcher.cache.version > version, timeout=8)
        assert watcher.cache.current().menu.option("2").action == "transfer"  # type: ignore[union-attr]
    finally:
        watcher.stop()
