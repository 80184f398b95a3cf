"""The ``anomalake`` command line: the one entry point for people and for make."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from anomalake.errors import AnomalakeError
from anomalake.settings import get_settings

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
    """Check Java and Maven; resolve the Kafka broker and Spark connector jars."""
    from anomalake.install import install as do_install

    for jar_set in do_install(get_settings(), force=force):
        typer.echo(f"{jar_set.name:6} {len(jar_set.jars):3} jars in {jar_set.directory}")


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
    events: Annotated[int, typer.Option(help="events to generate")] = 5000,
    symbols: Annotated[int, typer.Option(help="entities (symbols)")] = 5,
) -> None:
    """Run the main job on embedded defaults: generate -> Kafka -> Spark -> Delta."""
    from anomalake.demo import run_demo

    run_demo(get_settings(), n_events=events, n_symbols=symbols, echo=typer.echo)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
