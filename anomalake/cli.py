"""The ``anomalake`` command line: the one entry point for people and for make."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from anomalake.errors import AnomalakeError
from anomalake.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from anomalake.alerts.store import AlertStore

app = typer.Typer(
    help="Anomalake: anomaly detection over event streams and their history.",
    no_args_is_help=True,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(func: F) -> F:
    """Report AnomalakeError (and invalid settings) as one line and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AnomalakeError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            first = " ".join(str(exc).split())
            typer.secho(f"error: invalid settings: {first[:400]}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


Components = Annotated[
    list[str] | None,
    typer.Argument(help="kafka, mlflow, airflow (all when omitted)", show_default=False),
]


@app.command()
@one_line_errors
def install(force: Annotated[bool, typer.Option(help="re-resolve even if cached")] = False) -> None:
    """Check Java and Maven; resolve the Kafka broker and Spark connector jars; build ours.

    Ours is the local profile's Hadoop file system without forks (``infra/java``).
    """
    from anomalake.install import install as do_install

    for jar_set in do_install(get_settings(), force=force):
        typer.echo(f"{jar_set.name:8} {len(jar_set.jars):3} jar(s) in {jar_set.directory}")


@app.command()
@one_line_errors
def up(names: Components = None) -> None:
    """Start the local stack (idempotent): Kafka, MLflow, Airflow."""
    from anomalake import stack

    settings = get_settings()
    stack.up(settings, names, echo=typer.echo)
    typer.echo(f"logs and pid files: {settings.run_dir}")


@app.command()
@one_line_errors
def down(names: Components = None) -> None:
    """Stop the local stack; leaves no process behind."""
    from anomalake import stack

    stack.down(get_settings(), names, echo=typer.echo)


@app.command()
@one_line_errors
def status() -> None:
    """Print each component, its URL and health; exit 1 if any is down."""
    from anomalake import stack

    rows = stack.status(get_settings())
    for row in rows:
        state = "healthy" if row.healthy else ("unhealthy" if row.running else "stopped")
        pid = f"pid {row.pid}" if row.pid else ""
        typer.echo(f"{row.name:8} {state:10} {row.url:28} {pid:10} {row.detail}")
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


@app.command()
@one_line_errors
def demo(
    symbols: Annotated[int, typer.Option(help="symbols to generate")] = 10,
    days: Annotated[int, typer.Option(help="trading days to generate")] = 2,
) -> None:
    """Markets end to end: generate -> replay to Kafka -> speed layer -> Delta + alerts."""
    from anomalake.demo import run_demo

    run_demo(get_settings(), n_symbols=symbols, days=days, echo=typer.echo)


generate_app = typer.Typer(
    help="Write synthetic data sets with ground truth.", no_args_is_help=True
)
replay_app = typer.Typer(help="Send data files to Kafka.", no_args_is_help=True)
stream_app = typer.Typer(help="Run a speed-layer streaming job.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
app.add_typer(replay_app, name="replay")
app.add_typer(stream_app, name="stream")


# The per-use-case verbs: one command per use case and verb, generated from the registry
# of use cases (anomalake/usecases/*.yaml). A use case's own code (generator, replay
# messages, stream, backtest) is what its spec's entry points name, called with one
# signature for all.

Stream = Annotated[
    str | None,
    typer.Option(
        "--stream", "--activity", help="which of the use case's streams, if it has several"
    ),
]


def echo_delivery(topic: str, report: Any) -> None:
    """Print a producer's delivery report; exit 1 naming each failure if any."""
    typer.echo(f"{topic}: sent {report.sent}, delivered {report.delivered}, failed {report.failed}")
    if report.failed:
        for err in report.errors:
            typer.echo(f"  {err}", err=True)
        raise typer.Exit(1)


def _entry_point(spec: Any, verb: str) -> Any:
    """The object ``spec.entry_points.<verb>`` names (``module:attribute``), imported."""
    import importlib

    target = getattr(spec.entry_points, verb)
    if target is None:
        raise AnomalakeError(f"use case {spec.name} has no {verb}", "see `anomalake --help`")
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


Topic = Annotated[str | None, typer.Option(help="defaults to the spec's topic")]


def _use_case(name: str, stream: str | None) -> tuple[Settings, Any, str | None]:
    """The settings, the spec of use case ``name`` and the stream chosen of it."""
    settings = get_settings()
    spec = settings.use_case(name)
    return settings, spec, _stream_of(spec, stream)


def _stream_of(spec: Any, stream: str | None) -> str | None:
    """``stream`` checked against the spec's streams (its first one when omitted)."""
    if not spec.streams:
        if stream is not None:
            raise AnomalakeError(f"{spec.name} has one stream", "drop --stream")
        return None
    if stream is None:
        return str(spec.streams[0])
    if stream not in spec.streams:
        raise AnomalakeError(
            f"{spec.name} has no stream {stream!r}", f"use one of {', '.join(spec.streams)}"
        )
    return stream


def _register_use_case(name: str, declared: dict[str, Any]) -> None:
    """Add ``generate|replay|stream|backtest NAME`` for the use case ``declared``."""
    about = declared.get("description", name)
    verbs = declared.get("entry_points", {})
    noun = declared.get("entity_noun")

    if verbs.get("generate"):

        @generate_app.command(name, help=f"Write synthetic {name} data with ground truth: {about}.")
        @one_line_errors
        def generate(
            out: Annotated[Path, typer.Argument(help="folder to write the files into")],
            entities: int = typer.Option(  # a default, not Annotated: its names vary
                3,
                "--entities",
                *([f"--{noun}s"] if noun else []),
                help=f"{noun or declared['entity']}s to generate",
            ),
            hours: Annotated[float, typer.Option(help="hours of data per entity")] = 1.0,
            seed: Annotated[int, typer.Option(help="random seed")] = 0,
            faults: Annotated[
                bool, typer.Option(help="add malformed, duplicate and out-of-order rows")
            ] = False,
        ) -> None:
            spec = get_settings().use_case(name)
            typer.echo(_entry_point(spec, "generate")(out, entities, hours, seed, faults))

    @replay_app.command(name, help=f"Produce {name} files to Kafka in event-time order: {about}.")
    @one_line_errors
    def replay(
        path: Annotated[Path, typer.Argument(help="a file or a folder of the use case's format")],
        speed: Annotated[float, typer.Option(help="x real time; 0 = as fast as possible")] = 0.0,
        live: Annotated[
            bool, typer.Option(help="mark records live: their alerts are sent to people")
        ] = False,
        stream: Stream = None,
        topic: Topic = None,
    ) -> None:
        from anomalake.producer import produce

        settings, spec, chosen = _use_case(name, stream)
        target = topic or spec.topic_of(chosen)
        origin = "live" if live else "replay"
        messages = _entry_point(spec, "messages")(path, speed, origin, chosen)
        echo_delivery(target, produce(settings.kafka, target, messages, None))

    @stream_app.command(name, help=f"The {name} speed layer (runs until SIGINT/SIGTERM): {about}.")
    @one_line_errors
    def stream_command(
        seconds: Annotated[
            float, typer.Option(help="stop after this long; 0 = run until stopped")
        ] = 0,
        stream: Stream = None,
        topic: Topic = None,
    ) -> None:
        from anomalake.install import install as do_install
        from spark.session import get_spark

        settings, spec, chosen = _use_case(name, stream)
        do_install(settings)
        from spark.streams.speed import start

        query = start(get_spark(settings), settings, name, stream=chosen, topic=topic)
        tables = ", ".join(
            t for t in (spec.bronze_table, spec.quarantine_table, spec.alerts_table) if t
        )
        typer.echo(
            f"streaming {topic or spec.topic_of(chosen)} -> {tables}; "
            f"checkpoint {settings.checkpoint_path(query.name)}"
        )
        run_delivering(settings, query, seconds, spec)

    if verbs.get("backtest"):

        @backtest_app.command(
            name, help=f"Re-score stored {name} records with the stream's step (never alerted)."
        )
        @one_line_errors
        def backtest(
            date: Annotated[str, typer.Option("--date", help="first date, YYYY-MM-DD")],
            end: Annotated[str | None, typer.Option("--end", help="last date (inclusive)")] = None,
            stream: Stream = None,
        ) -> None:
            from datetime import date as Date

            from spark.session import get_spark
            from spark.tables import Days

            settings, spec, chosen = _use_case(name, stream)
            days = Days(Date.fromisoformat(date), Date.fromisoformat(end or date))
            run = _entry_point(spec, "backtest")
            typer.echo(run(get_spark(settings), settings, days, chosen))


def run_until_stopped(query: Any, seconds: float) -> None:
    """Wait for ``query`` until SIGINT/SIGTERM or ``seconds``; stop it gracefully."""
    import signal

    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stopping.append(signum)  # acted on by the main loop, outside the signal handler

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    while query.isActive and not stopping and time.monotonic() < deadline:
        query.awaitTermination(1)
    if query.isActive:
        query.stop()
        typer.echo("stopped; the next start resumes from the checkpoint")
    if query.exception():
        raise AnomalakeError(
            f"the streaming query failed: {query.exception()}",
            "read the error above, fix, and restart: the checkpoint resumes it",
        )


def run_delivering(settings: Settings, query: Any, seconds: float, spec: Any = None) -> None:
    """:func:`run_until_stopped`, with the outbox drained to people meanwhile.

    ``spec``: the use case streamed, whose contacts get channels of their own.
    """
    from anomalake.alerts.delivery import DeliveryWorker, Outbox, People
    from anomalake.alerts.escalation import Escalator
    from anomalake.alerts.store import AlertStore
    from spark.alerts import TOPIC_CHANNEL

    policy = spec.alerting if spec is not None else None
    people = People(settings, policy)
    outbox = Outbox.from_settings(settings)
    escalation = policy.escalation if policy is not None else None
    escalator = None
    if escalation is not None:
        escalator = Escalator(
            AlertStore(settings.table_path(spec.alerts_table)),
            outbox,
            escalation,
            [*people.escalation_route, TOPIC_CHANNEL],
        )
    worker = DeliveryWorker(
        outbox, people.channels, settings.alerts.deliver_every_seconds, before_drain=escalator
    )
    if people.channels or escalator is not None:
        worker.start()
        typer.echo(
            f"delivering alerts to {', '.join(people.channels) or 'the alerts topic only'} "
            f"(outbox {settings.alerts_outbox})"
        )
    if escalation is not None:
        typer.echo(
            f"escalating {escalation.severity} alerts unacknowledged after "
            f"{escalation.after_seconds:g} s to "
            f"{', '.join(people.escalation_route) or 'the alerts topic only'}"
        )
    try:
        run_until_stopped(query, seconds)
    finally:
        worker.stop()


eval_app = typer.Typer(help="Score detectors on labelled data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

NAB_PRESETS: dict[str, dict[str, Any]] = {
    "rolling_z": {"kind": "rolling_z", "window": 200, "warmup": 50},
    "ewma": {"kind": "ewma", "alpha": 0.02, "warmup": 50},
}
DETECTORS = tuple(NAB_PRESETS)


def _overlap(config: dict[str, Any], names: list[str], what: str) -> str:
    """Which of ``names`` the configuration was tuned on, in words."""
    seen = set(config.get("split", {}).get("tuning", []))
    shared = [n for n in names if n in seen]
    if not shared:
        return f"none of these {len(names)} {what} were in its tuning half"
    return (
        f"{len(shared)} of these {len(names)} {what} were in its tuning half, so this is "
        f"partly in-sample (held-out figures: `anomalake tune`)"
    )


@eval_app.command("nab")
@one_line_errors
def eval_nab(
    path: Annotated[Path, typer.Argument(help="a NAB-style folder: data/ and labels/")],
    detector: Annotated[str, typer.Option(help=f"one of {', '.join(DETECTORS)}")] = "ewma",
    config: Annotated[
        Path | None,
        typer.Option(help="a configuration `anomalake tune nab` saved (not --detector)"),
    ] = None,
    results: Annotated[Path | None, typer.Option(help="write NAB results files here")] = None,
    name: Annotated[
        str | None, typer.Option(help="detector name in the results files (default: --detector)")
    ] = None,
) -> None:
    """NAB scores (3 profiles), point and event metrics of one detector; NAB results files."""
    from anomalake.detection.registry import describe, scorer
    from anomalake.evaluation import nab_corpus
    from anomalake.evaluation.report import events_line, points_line
    from anomalake.evaluation.tuning import load

    tuned: dict[str, Any] | None = None
    if config is not None:
        tuned = load(config, "nab")
        chosen = tuned["detector"]
    elif detector in NAB_PRESETS:
        chosen = NAB_PRESETS[detector]
    else:
        raise AnomalakeError(f"unknown detector {detector!r}", f"choose from {DETECTORS}")
    corpus = nab_corpus.load_corpus(path)
    scores = nab_corpus.score_corpus(corpus, scorer(chosen))
    windows = sum(len(f.windows) for f in corpus)
    typer.echo(f"{describe(chosen)} on {len(corpus)} files, {windows} windows under {path}")
    in_sample = nab_corpus.optimise(corpus, scores)
    typer.echo("  NAB scores, threshold chosen per profile on these same files (in-sample):")
    for profile, (threshold, score) in in_sample.items():
        typer.echo(f"    {profile:20} {score:7.1f}   (score threshold {threshold:.12g})")
    threshold = in_sample["standard"][0]
    if tuned is not None and "thresholds" in tuned:
        fixed = nab_corpus.at_thresholds(corpus, scores, tuned["thresholds"])
        typer.echo(f"  NAB scores at the thresholds tuned in {config}:")
        for profile, score in fixed.items():
            typer.echo(
                f"    {profile:20} {score:7.1f}   (score threshold "
                f"{tuned['thresholds'][profile]:.12g})"
            )
        typer.echo(f"    {_overlap(tuned, [f.name for f in corpus], 'files')}")
        threshold = tuned["thresholds"]["standard"]
    points, events = nab_corpus.detections(corpus, scores, threshold)
    typer.echo(f"  at the standard-profile threshold {threshold:.12g}, outside probation:")
    typer.echo(f"    {events_line(events, 'windows')}; delays from window start")
    typer.echo(f"    {points_line(points)}  (rows in windows)")
    if results:
        label = name or ("anomalake" if config is not None else detector)
        nab_corpus.write_results(results, label, corpus, scores)
        typer.echo(f"NAB results files in {results / label.replace('_', '')}")


@eval_app.command("nslkdd")
@one_line_errors
def eval_nslkdd(
    path: Annotated[Path, typer.Argument(help="the NSL-KDD folder (KDDTrain+_20Percent.txt, ...)")],
    seed: Annotated[int, typer.Option(help="seeds the validation split and the model")] = 0,
) -> None:
    """Train on KDDTrain+_20Percent (threshold from its validation split); report the tests."""
    from ml.hosts import evaluate_nslkdd

    report = evaluate_nslkdd(path, seed=seed)
    typer.echo(
        f"{report['model']} (seed {seed}), threshold {report['threshold']:.3f} chosen on "
        f"validation rows of the training file; trained in {report['train_seconds']} s"
    )
    for name in ("KDDTest+", "KDDTest-21"):
        r = report[name]
        typer.echo(
            f"  {name:<11} accuracy {r['accuracy']:.3f}  ROC-AUC {r['roc_auc']:.3f}  "
            f"PR-AUC {r['pr_auc']:.3f}  precision {r['precision']:.3f}  recall {r['recall']:.3f}"
            f"  F1 {r['f1']:.3f}  false alarms {100 * r['false_alarm_rate']:.1f} %  "
            f"unseen-type recall {r['unseen_type_recall']:.3f}"
        )


@eval_app.command("skab")
@one_line_errors
def eval_skab(
    path: Annotated[Path, typer.Argument(help="the SKAB folder (valve1/, valve2/, other/)")],
    warmup: Annotated[int, typer.Option(help="rows per run that fit the normal regime")] = 400,
    threshold: Annotated[
        float | None,
        typer.Option(help="score threshold (chi-square CDF); default 0.99 or the config's"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="a configuration `anomalake tune skab` saved")
    ] = None,
) -> None:
    """Point-wise F1, false/missed-alarm rates, events and change points of one detector."""
    from anomalake.detection.registry import describe, scorer
    from anomalake.evaluation.report import changepoints_line, events_line
    from anomalake.evaluation.skab import labelled_runs, run_metrics, run_name, score_runs
    from anomalake.evaluation.tuning import load

    tuned: dict[str, Any] | None = None
    exclude: list[str] = []
    if config is not None:
        tuned = load(config, "skab")
        chosen, exclude = tuned["detector"], list(tuned.get("exclude", []))
        cut = tuned["threshold"] if threshold is None else threshold
    else:
        chosen, cut = (
            {"kind": "hotelling_t2", "warmup": warmup},
            0.99 if threshold is None else threshold,
        )
    runs = labelled_runs(path)
    scored = score_runs(runs, scorer(chosen), exclude)
    points, events, delays = run_metrics(scored, cut)
    sensors = f" without {', '.join(exclude)}" if exclude else ""
    typer.echo(f"{describe(chosen)}{sensors}, threshold {cut:.10g}, on {len(runs)} runs:")
    typer.echo(
        f"  F1 {points.f1:.3f}   false alarms {100 * points.false_alarm_rate:.1f} %   "
        f"missed alarms {100 * points.missed_alarm_rate:.1f} %   "
        f"(precision {points.precision:.3f}, recall {points.recall:.3f})"
    )
    typer.echo(f"  {events_line(events)}; delays from event start")
    typer.echo(f"  {changepoints_line(delays)}")
    if tuned is not None:
        origin = "detector and threshold" if threshold is None else "the detector (not --threshold)"
        typer.echo(
            f"  {origin} came from {config}: {_overlap(tuned, [run_name(p) for p in runs], 'runs')}"
        )
    else:
        typer.echo("  warm-up and threshold as given (no tuning here: `anomalake tune skab`)")


tune_app = typer.Typer(
    help="Choose a detector on half the files, report on the other half.", no_args_is_help=True
)
app.add_typer(tune_app, name="tune")


def _tuned_path(out: Path | None, dataset: str) -> Path:
    return out if out is not None else PROJECT_ROOT / "docs" / "tuned" / f"{dataset}.json"


def _held_out_lines(tuned: Any, echo: Callable[[str], None], what: str) -> None:
    from anomalake.evaluation.report import changepoints_line, events_line, points_line

    for label, outcome in (
        ("TEST HALF (held out, threshold from the tuning half)", tuned.held_out),
        ("all (in-sample, threshold chosen on all)", tuned.in_sample),
    ):
        echo(f"  {label}:")
        echo(f"    {events_line(outcome.events, what)}")
        echo(f"    {points_line(outcome.points)}")
        if outcome.changepoints is not None:
            echo(f"    {changepoints_line(outcome.changepoints)}")


@tune_app.command("nab")
@one_line_errors
def tune_nab(
    path: Annotated[Path, typer.Argument(help="a NAB-style folder: data/ and labels/")],
    out: Annotated[
        Path | None, typer.Option(help="save the chosen configuration here [docs/tuned/nab.json]")
    ] = None,
) -> None:
    """Best of a small grid on the tuning half (NAB standard); thresholds fixed on the test half."""
    from anomalake.evaluation import tuning

    target = _tuned_path(out, "nab")
    tuned = tuning.tune_nab(path, echo=typer.echo)
    r = tuned.report
    typer.echo(f"tuning files ({len(r['split']['tuning'])}): {', '.join(r['split']['tuning'])}")
    typer.echo(f"test files ({len(r['split']['test'])}): {', '.join(r['split']['test'])}")
    typer.echo(f"chosen: {r['name']}")
    typer.echo(
        f"  {'profile':20} {'tuning half':>11}  {'TEST HALF (held out)':>20}  "
        f"{'all files (in-sample)':>21}   threshold from tuning"
    )
    for profile, threshold in r["thresholds"].items():
        typer.echo(
            f"  {profile:20} {r['tuning'][profile]:11.1f}  {r['held_out'][profile]:20.1f}  "
            f"{r['in_sample_all_files'][profile]['score']:21.1f}   {threshold:.12g}"
        )
    typer.echo(
        "  (in-sample: the threshold is chosen per profile on all files, NAB's own procedure)"
    )
    typer.echo("at the standard-profile threshold, outside probation; delays from window start:")
    _held_out_lines(tuned, typer.echo, "windows")
    tuning.save({**r, "command": f"anomalake tune nab {path}"}, target)
    typer.echo(f"saved {target.resolve()}; reuse: anomalake eval nab PATH --config {target}")


@tune_app.command("skab")
@one_line_errors
def tune_skab(
    path: Annotated[Path, typer.Argument(help="the SKAB folder (valve1/, valve2/, other/)")],
    out: Annotated[
        Path | None, typer.Option(help="save the chosen configuration here [docs/tuned/skab.json]")
    ] = None,
) -> None:
    """Best of a small grid by point-wise F1 on tuning runs; fixed threshold on the test runs."""
    from anomalake.evaluation import tuning

    target = _tuned_path(out, "skab")
    tuned = tuning.tune_skab(path, echo=typer.echo)
    r = tuned.report
    typer.echo(f"tuning runs ({len(r['split']['tuning'])}): {', '.join(r['split']['tuning'])}")
    typer.echo(f"test runs ({len(r['split']['test'])}): {', '.join(r['split']['test'])}")
    typer.echo(f"chosen: {r['name']}, threshold {r['threshold']:.10g} (from the tuning runs)")
    typer.echo(
        f"  F1: tuning runs {r['tuning']['f1']:.3f}   TEST RUNS (held out) "
        f"{tuned.held_out.points.f1:.3f}   all runs (in-sample, threshold "
        f"{r['in_sample_all_runs']['threshold']:.10g} chosen on all) "
        f"{tuned.in_sample.points.f1:.3f}"
    )
    _held_out_lines(tuned, typer.echo, "events")
    tuning.save({**r, "command": f"anomalake tune skab {path}"}, target)
    typer.echo(f"saved {target.resolve()}; reuse: anomalake eval skab PATH --config {target}")


batch_app = typer.Typer(help="Run batch DAGs without a scheduler.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("load")
@one_line_errors
def batch_load(
    path: Annotated[Path, typer.Argument(help="an export file or a folder of them")],
) -> None:
    """Land export files in bronze (bad rows in quarantine) for a backfill; idempotent per file."""
    from spark.jobs.markets_batch import load_files_to_bronze
    from spark.session import get_spark

    if not path.exists():
        raise AnomalakeError(f"no such file or folder: {path}", "pass the exports' path")
    settings = get_settings()
    counts = load_files_to_bronze(get_spark(settings), settings, path)
    typer.echo(
        f"loaded {path}: {counts['bronze']} bars in {settings.markets.bronze_table}, "
        f"{counts['quarantine']} rows in {settings.markets.quarantine_table}"
    )


@batch_app.command("run")
@one_line_errors
def batch_run(
    date: Annotated[str, typer.Option("--date", help="logical date, YYYY-MM-DD")],
    end: Annotated[
        str | None, typer.Option("--end", help="last date of a backfill (inclusive), in order")
    ] = None,
    dag_id: Annotated[str, typer.Option("--dag", help="the DAG to run")] = "markets_batch",
) -> None:
    """Run a DAG for a logical date (or each date to --end) in this process, no scheduler."""
    import os
    from datetime import UTC, datetime, timedelta

    from anomalake.stack import migrate_airflow_db

    settings = get_settings()
    os.environ.update(settings.airflow_env())  # before airflow is imported
    migrate_airflow_db(settings)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings.dags_folder))
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise AnomalakeError(
            f"no DAG {dag_id!r} in {settings.dags_folder}",
            f"choose one of {', '.join(sorted(bag.dag_ids))}",
        )
    logical = datetime.fromisoformat(date).replace(tzinfo=UTC)
    last = datetime.fromisoformat(end or date).replace(tzinfo=UTC)
    while logical <= last:
        run = dag.test(logical_date=logical)
        typer.echo(f"{dag_id} {logical.date()}: {run.state}")
        if run.state != "success":
            raise typer.Exit(1)
        logical += timedelta(days=1)


models_app = typer.Typer(
    help="The model registry: versions, champion/challenger aliases, promotion, rollback.",
    no_args_is_help=True,
)
train_app = typer.Typer(help="Train, register and promote models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")

HOSTS_DATASETS = ("nslkdd", "toniot")
TONIOT_ACTIVITIES = ("memory", "process")


@contextmanager
def _mlflow_errors() -> Iterator[None]:
    """MLflow's own errors (permissions, a bad request) as one line naming the server."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        uri = get_settings().mlflow.uri
        first = " ".join(str(exc.message).split())[:300]
        raise AnomalakeError(
            f"MLflow at {uri} refused: {first}", "check the server's log and the model name"
        ) from None


@models_app.command("list")
@one_line_errors
def models_list(
    metric: Annotated[
        str | None, typer.Option(help="key metric shown (holdout_<metric>); promotion metric")
    ] = None,
) -> None:
    """Every version of this environment's registered models: aliases, run, key metric."""
    from ml.registry import list_models

    settings = get_settings()
    with _mlflow_errors():
        rows = list_models(settings, metric=metric)
    if not rows:
        typer.echo(f"no registered models named {settings.name_prefix}* at {settings.mlflow.uri}")
        return
    key = rows[0].metric
    typer.echo(f"{'model':32} {'version':>7}  {'aliases':28} {key:>18}  run")
    for r in rows:
        value = "-" if r.value is None else f"{r.value:.4f}"
        aliases = ",".join(r.aliases) or "-"
        typer.echo(f"{r.name:32} {r.version:>7}  {aliases:28} {value:>18}  {r.run_id}")


@models_app.command("promote")
@one_line_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="registered model (the prefix may be left out)")],
    margin: Annotated[
        float | None, typer.Option(help="required improvement; ANOMALAKE_HOSTS__PROMOTION_MARGIN")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="compared metric; ANOMALAKE_HOSTS__PROMOTION_METRIC")
    ] = None,
) -> None:
    """Score @challenger against @champion on the challenger's logged holdout; promote if better."""
    from ml.registry import promote_challenger

    with _mlflow_errors():
        d = promote_challenger(get_settings(), name, metric=metric, margin=margin)
    champion = "-" if d.champion_score is None else f"{d.champion_score:.4f}"
    typer.echo(
        f"{d.model_name}: challenger v{d.challenger_version} {d.metric} "
        f"{d.challenger_score:.4f}, champion "
        f"{'v' + d.champion_version if d.champion_version else 'none'} {champion} "
        f"on {d.holdout_rows} holdout rows"
    )
    outcome = "promoted" if d.promoted else "not promoted"
    typer.echo(f"{outcome}: {d.reason}; champion is v{d.champion_after} (run {d.run_id})")


@models_app.command("rollback")
@one_line_errors
def models_rollback(
    name: Annotated[str, typer.Argument(help="registered model (the prefix may be left out)")],
) -> None:
    """Move @champion back to the version the current champion replaced."""
    from ml.registry import rollback

    with _mlflow_errors():
        r = rollback(get_settings(), name)
    typer.echo(f"{r.model_name}: champion moved back from v{r.from_version} to v{r.to_version}")


@train_app.command("hosts")
@one_line_errors
def train_hosts(
    path: Annotated[
        Path, typer.Argument(help="NSL-KDD folder (KDDTrain+_20Percent.txt), or ToN-IoT CSV/folder")
    ],
    dataset: Annotated[
        str | None,
        typer.Option(help="nslkdd or toniot; guessed from PATH when omitted"),
    ] = None,
    activity: Annotated[str, typer.Option(help="ToN-IoT activity: memory or process")] = "memory",
    seed: Annotated[int, typer.Option(help="seeds the split and the model")] = 0,
) -> None:
    """Quality gate -> train -> log to MLflow -> register as challenger -> promote if better."""
    from anomalake.loaders.nslkdd import FILES
    from expectations.runner import QualityGateFailed
    from ml.hosts_pipeline import retrain_nslkdd, retrain_toniot

    if not path.exists():
        raise AnomalakeError(f"no such file or folder: {path}", "pass the training data's path")
    if dataset is None:
        kdd = path.suffix == ".txt" or (path / FILES["train"]).is_file()
        dataset = "nslkdd" if kdd else "toniot"
    if dataset not in HOSTS_DATASETS:
        raise AnomalakeError(f"unknown dataset {dataset!r}", f"use one of {HOSTS_DATASETS}")
    if dataset == "toniot" and activity not in TONIOT_ACTIVITIES:
        raise AnomalakeError(f"unknown activity {activity!r}", f"use one of {TONIOT_ACTIVITIES}")
    settings = get_settings()
    try:
        with _mlflow_errors():
            if dataset == "nslkdd":
                out = retrain_nslkdd(settings, path, seed=seed)
            else:
                out = retrain_toniot(settings, path, activity, seed=seed)
    except QualityGateFailed as failed:
        r = failed.result
        raise AnomalakeError(
            f"{path}: {len(r.failed_critical)} critical expectation(s) failed: "
            f"{', '.join(r.failed_critical)}",
            f"fix the data (nothing was trained); see {r.validation_page or r.data_docs_index}",
        ) from None
    d, q = out["decision"], out["quality"]
    warnings = f", {len(q['warnings'])} warning(s)" if q["warnings"] else ""
    typer.echo(f"quality gate passed{warnings}: {q['data_docs']}")
    typer.echo(
        f"{out['model_name']} v{out['version']} registered as challenger "
        f"(run {out['training_run_id']})"
    )
    outcome = "promoted" if d["promoted"] else "not promoted"
    typer.echo(
        f"{outcome}: {d['reason']}; champion is v{d['champion_after']} "
        f"({d['metric']} on {d['holdout_rows']} holdout rows)"
    )


@train_app.command("markets")
@one_line_errors
def train_markets(
    path: Annotated[Path, typer.Argument(help="generated exports with labels.csv")],
    seed: Annotated[int, typer.Option(help="seeds the model")] = 0,
) -> None:
    """IsolationForest on bars (split by day) -> MLflow -> challenger -> promote if better."""
    from ml.markets_pipeline import MAX_INVALID_SHARE, retrain_markets

    with _mlflow_errors():
        r = retrain_markets(get_settings(), path, seed=seed)
    typer.echo(
        f"data gate: {100 * r.invalid_share:.2f} % of rows invalid "
        f"(limit {100 * MAX_INVALID_SHARE:.0f} %) -> "
        f"{'passed' if r.quality_passed else 'FAILED: the model will not be promoted'}"
    )
    t = r.test
    typer.echo(
        f"test days: precision {t.precision:.3f} recall {t.recall:.3f} F1 {t.f1:.3f} "
        f"ROC-AUC {t.roc_auc:.3f}; {r.model_name} v{r.version} "
        f"{'promoted' if r.decision.promoted else 'not promoted'}: {r.decision.reason}"
    )


backtest_app = typer.Typer(
    help="Score stored events again with today's champion.", no_args_is_help=True
)
app.add_typer(backtest_app, name="backtest")


def _register_use_cases() -> None:
    from anomalake.usecases import names
    from anomalake.usecases.spec import read_declaration

    for name in names():
        _register_use_case(name, read_declaration(name))


_register_use_cases()


@eval_app.command("infra")
@one_line_errors
def eval_infra(
    path: Annotated[Path, typer.Argument(help="SKAB-format runs: generated or SKAB's own")],
    config: Annotated[
        Path | None, typer.Option(help="detectors YAML; the configured one when unset")
    ] = None,
) -> None:
    """The infra detector set, through the stream's own step, on labelled sensor runs."""
    from anomalake.detection.detector_set import DetectorSetConfig
    from anomalake.evaluation.report import events_line, points_line
    from anomalake.evaluation.sensors import evaluate_files

    settings = get_settings()
    yaml_path = config or settings.infra_detectors_config
    report = evaluate_files(
        path, settings, DetectorSetConfig.from_file(yaml_path, settings.infra.sensors)
    )
    typer.echo(f"{yaml_path.name} on {report.files} files, {report.readings} readings:")
    typer.echo(f"  {points_line(report.points)}")
    typer.echo(f"  {events_line(report.events)}")


@train_app.command("wearables")
@one_line_errors
def train_wearables(
    data: Annotated[
        Path | None,
        typer.Option(help="a generated folder with labels.csv; generated from settings if unset"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds the model")] = 0,
) -> None:
    """Episode classifier on generated wearers -> MLflow -> challenger -> promote if better."""
    from ml.wearables import train_and_register

    with _mlflow_errors():
        r = train_and_register(get_settings(), data, seed=seed)
    m, d = r["metrics"], r["decision"]
    typer.echo(
        f"validation wearers: {m['windows']:.0f} windows, macro F1 {m['macro_f1']:.3f}, "
        f"ROC-AUC (any episode) {m.get('roc_auc', float('nan')):.3f}; "
        f"prepared in {r['prepare_seconds']:.0f} s, fitted in {r['fit_seconds']:.0f} s"
    )
    p = r["operating_point"]
    typer.echo(
        f"operating point: score >= {p['threshold']:.6g}, {p['confirm_windows']:.0f} windows "
        f"in a row; on {p['wearer_days']:.2f} validation wearer-days "
        f"{p['detected']:.0f}/{p['episodes']:.0f} episodes, {p['false_alarms']:.0f} false alarms "
        f"({p['false_alarms_per_day']:.2f} per day), median delay "
        f"{p['median_delay_seconds']:.0f} s"
    )
    typer.echo(
        f"{r['model_name']} v{r['version']} {'promoted' if d['promoted'] else 'not promoted'}: "
        f"{d['reason']} (run {r['run_id']})"
    )


@eval_app.command("wearables")
@one_line_errors
def eval_wearables(
    path: Annotated[Path, typer.Argument(help="E4 exports: generated (with labels.csv) or real")],
) -> None:
    """The stream's own step with the registered champion, offline, on E4 exports."""
    from anomalake.evaluation.wearables import evaluate, report_lines
    from anomalake.generators.wearables import load_labels
    from anomalake.replay import wearables_messages
    from anomalake.speed.wearables import WearablesStep, score_messages
    from ml.serving import ChampionScorer

    settings = get_settings()
    w = settings.wearables
    scorer = ChampionScorer.of_spec(settings, w)
    assert scorer is not None, "the wearables spec declares its model"
    step = WearablesStep.from_settings(settings, None, scorer)
    labelled = (path / "labels.csv").is_file()
    with _mlflow_errors():
        scored = score_messages(wearables_messages(path), step)
    report = evaluate(
        scored, load_labels(path) if labelled else None, w.window_seconds, w.step_seconds
    )
    versions = sorted(set(scored["model_version"].dropna()))
    model = f"{scorer.name}@{scorer.alias} (version {', '.join(versions) or 'none'})"
    typer.echo(f"{model} on {path}:")
    for line in report_lines(report, labelled):
        typer.echo(f"  {line}")


bench_app = typer.Typer(help="Benchmarks: scripts that print figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("stream")
@one_line_errors
def bench_stream(
    symbols: Annotated[int, typer.Option(help="symbols in the pre-loaded topic")] = 50,
    days: Annotated[int, typer.Option(help="trading days per symbol (375 bars each)")] = 16,
    rate: Annotated[float, typer.Option(help="fixed input rate of the latency run")] = 5000.0,
    seconds: Annotated[float, typer.Option(help="length of the latency run")] = 60.0,
) -> None:
    """Raw Kafka consume rate vs the speed layer's sustained rate; latency at a fixed rate."""
    from bench.stream_markets import main as run_bench

    run_bench(n_symbols=symbols, days=days, rate=rate, seconds=seconds, echo=typer.echo)


@bench_app.command("wearables")
@one_line_errors
def bench_wearables(
    wearers: Annotated[int, typer.Option(help="devices, one frame a second each")] = 1000,
    seconds: Annotated[int, typer.Option(help="measured seconds after the warm-up")] = 300,
    warmup: Annotated[int, typer.Option(help="seconds of input before measuring")] = 60,
) -> None:
    """How many wearers the speed layer follows in real time, and frame -> alert latency."""
    from bench.stream_wearables import main as run_bench

    run_bench(wearers=wearers, seconds=seconds, warmup_seconds=warmup, echo=typer.echo)


@bench_app.command("batch")
@one_line_errors
def bench_batch(
    symbols: Annotated[int, typer.Option(help="symbols in the generated exports")] = 25,
    years: Annotated[
        list[int] | None, typer.Option("--years", help="sizes to run, in years of 250 days")
    ] = None,
) -> None:
    """The markets batch DAG's tasks over 1 and 4 years: time, peak memory, vs DuckDB."""
    from bench.batch_markets import main as run_bench

    run_bench(n_symbols=symbols, years=tuple(years or (1, 4)), echo=typer.echo)


alerts_app = typer.Typer(
    help="The alert lifecycle: list, acknowledge, resolve.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")

UseCase = Annotated[str, typer.Option(help="whose alerts: a use case (anomalake/usecases/*.yaml)")]
By = Annotated[str | None, typer.Option(help="who; defaults to the login name")]


def _alerts_table(use_case: str) -> str:
    """The alert-lifecycle table of ``use_case`` (an unknown one is refused in one line)."""
    return get_settings().use_case(use_case).alerts_table


def _alert_store(settings: Settings, table: str) -> AlertStore:
    """The alerts table ``table`` (read and written without a Spark session)."""
    from anomalake.alerts.store import AlertStore

    return AlertStore(settings.table_path(table))


def _who(by: str | None) -> str:
    import getpass

    return by or getpass.getuser()


@alerts_app.command("list")
@one_line_errors
def alerts_list(
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged or resolved (all when omitted)")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many, latest updated first")] = 50,
    use_case: UseCase = "infra",
) -> None:
    """Alerts, latest updated first: id, status, severity, entity, rule, detections, times."""
    from anomalake.alerts.store import public

    settings = get_settings()
    table = _alerts_table(use_case)
    rows = [public(r) for r in _alert_store(settings, table).list(status=status, limit=limit)]
    if not rows:
        typer.echo(f"no {status + ' ' if status else ''}alerts in {table}")
        return
    typer.echo(
        f"{'alert_id':32}  {'status':12} {'severity':8} {'entity':20} {'rule':20} "
        f"{'count':>6}  {'last event (UTC)':19}  {'origin':8} by"
    )
    for r in rows:
        by = r["resolved_by"] if r["status"] == "resolved" else r["acknowledged_by"]
        last = r["last_event_time"].strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{r['alert_id']:32}  {r['status']:12} {r['severity']:8} {r['entity'][:20]:20} "
            f"{r['rule'][:20]:20} {r['detections']:>6}  {last:19}  {r['origin']:8} {by or '-'}"
        )


@alerts_app.command("ack")
@one_line_errors
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="id from `anomalake alerts list`")],
    by: By = None,
    use_case: UseCase = "infra",
) -> None:
    """Acknowledge an open alert: someone is on it (detections keep folding into it)."""
    settings = get_settings()
    table = _alerts_table(use_case)
    alert = _alert_store(settings, table).acknowledge(alert_id, _who(by), table)
    typer.echo(f"{alert_id} acknowledged by {alert['acknowledged_by']}")


@alerts_app.command("resolve")
@one_line_errors
def alerts_resolve(
    alert_id: Annotated[str, typer.Argument(help="id from `anomalake alerts list`")],
    by: By = None,
    note: Annotated[str | None, typer.Option(help="what was done")] = None,
    use_case: UseCase = "infra",
) -> None:
    """Resolve an alert; detections within ANOMALAKE_ALERTS__SUPPRESS_SECONDS still fold in."""
    settings = get_settings()
    table = _alerts_table(use_case)
    alert = _alert_store(settings, table).resolve(alert_id, _who(by), table, note=note)
    typer.echo(f"{alert_id} resolved by {alert['resolved_by']}")


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
