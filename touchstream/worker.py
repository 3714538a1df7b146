"""Starting the stream worker: topics, rules, fitted population, then Faust."""

from __future__ import annotations

import logging

from streams.bgnbd import BGNBDParams
from streams.rules import Rules
from touchstream.kafka import bootstrap_for, ensure_topics
from touchstream.settings import Settings

log = logging.getLogger("touchstream.worker")


def load_population(settings: Settings) -> BGNBDParams:
    path = settings.population_path
    if path.exists():
        params = BGNBDParams.load(path)
        log.info("BG/NBD parameters from %s: r=%.3f alpha=%.3f a=%.3f b=%.3f", path,
                 params.r, params.alpha, params.a, params.b)  # fmt: skip
        return params
    log.info("no fitted BG/NBD parameters at %s: using defaults (run `touchstream fit`)", path)
    return BGNBDParams()


def output_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_touchpoints,
        settings.topic_dead_letters,
        settings.topic_metrics,
        settings.topic_signals,
    ]


def run_worker(settings: Settings, bootstrap: str | None = None) -> None:
    """Run until SIGTERM/SIGINT. Offsets are committed only after outputs are flushed."""
    import faust

    from streams.app import build_app

    bootstrap = bootstrap or bootstrap_for(settings)
    created = ensure_topics(
        bootstrap, output_topics(settings), settings.partitions, **settings.kafka_security()
    )
    if created:
        log.info("created topics %s with %d partitions", created, settings.partitions)
    rules = Rules.load(settings.rules_file)
    app = build_app(settings, bootstrap, rules, load_population(settings))
    log.info("worker %s consuming %s (rules %s)", settings.app_id, settings.topic_touchpoints,
             rules.version)  # fmt: skip
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker.execute_from_commandline()
