# The hotline12345 image: `hotline run` (call controller) and `hotline console`.
# Speech models live in the /models volume (`hotline models pull ...`), prompts in
# /prompts, recordings, call records and caches in /data.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# sox: audio conversion of manager-recorded prompts; espeak-ng: offline Mandarin TTS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends sox libsox-fmt-all espeak-ng \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hotline ./hotline
COPY asr ./asr
COPY bot ./bot
COPY voice ./voice
COPY ivr ./ivr
COPY tickets ./tickets
COPY console ./console
COPY manage ./manage
# testkit: sipp callers, replayed AMI for `hotline bench`, `demo`, `drill` (tests/ stays out).
COPY testkit ./testkit
COPY ops ./ops
RUN pip install . && rm -rf /app/build

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin hotline \
 && mkdir -p /data/recordings /models /prompts \
 && chown -R hotline:hotline /data /models /prompts
USER hotline
WORKDIR /data

ENV HOTLINE_DATA_DIR=/data HOTLINE_MODELS_DIR=/models HOTLINE_IVR__PROMPTS_DIR=/prompts \
    HOTLINE_OBSERVABILITY__LOG_FORMAT=json
VOLUME ["/data", "/models", "/prompts"]
# SIP (controller), console, controller metrics. RTP: sip.rtp_port_low..high (UDP).
EXPOSE 5070/udp 8345 9346

ENTRYPOINT ["hotline"]
CMD ["run"]
