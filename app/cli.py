"""Command-line tools: `flask users create-admin EMAIL`, `flask storage init|check`, `flask dev`
(what run_dev.sh runs), plus Flask-Migrate's `flask db ...`.

A store or database that does not answer is reported in one line with a non-zero exit
status, never a traceback: an operator runs these by hand or from a deployment step."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import InterfaceError, OperationalError

from app.exceptions import DepotError
from app.services.storage_audit import StorageAuditService
from app.services.users import UserService
from app.storage.base import StorageError

# `storage check`: 1 when the store is not consistent, 2 when it could not be checked at all.
EXIT_UNCHECKED = 2

users_cli = AppGroup("users", help="Manage user accounts.")
storage_cli = AppGroup("storage", help="Prepare the file store and check it against the database.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not 8 <= len(password) <= 256:
        raise click.BadParameter("the password must be 8 to 256 characters long", param_hint="password")
    return password


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--name", default="Administrator", show_default=True, help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def create_admin(email: str, name: str, password_stdin: bool) -> None:
    """Create an admin account with EMAIL (the password is prompted for)."""
    password = _read_password(password_stdin)
    try:
        user = current_app.injector.get(UserService).create_admin(email, password, name)
    except DepotError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Created admin {user.email} (id {user.id}).")


@storage_cli.command("init")
def storage_init() -> None:
    """Create the S3 bucket if it does not exist (the local folder needs nothing); idempotent."""
    try:
        created = current_app.injector.get(StorageAuditService).prepare_store()
    except StorageError as error:
        raise click.ClickException(f"the file store could not be prepared: {error}") from None
    click.echo("file store created" if created else "file store ready")


class Unchecked(click.ClickException):
    """The check could not run to its end (the store or the database did not answer)."""

    exit_code = EXIT_UNCHECKED


def _store_description() -> str:
    """Which store the settings name, for the operator reading an error."""
    config = current_app.config
    if config["STORAGE_BACKEND"] == "s3":
        return f"S3 bucket {config['S3_BUCKET']!r} at {config['S3_ENDPOINT_URL'] or 'AWS'}"
    return f"local folder {config['UPLOAD_DIR']}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _duration(seconds: int) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@storage_cli.command("check")
@click.option(
    "--repair", is_flag=True, help="Remove files without a row, abandoned staged files and expired resumable uploads."
)
@click.option("--quick", is_flag=True, help="Compare sizes only; skip re-hashing every file.")
@click.option(
    "--grace",
    default=3600,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds a file must be old before it counts as a leftover (younger ones may be committing).",
)
def storage_check(repair: bool, quick: bool, grace: int) -> None:
    """Report rows whose file is missing or corrupt, and leftovers of crashes; exit 1 if any
    remain, 2 if the store or the database cannot be read."""
    try:
        report = current_app.injector.get(StorageAuditService).check(
            repair=repair, verify_hashes=not quick, grace_seconds=grace
        )
    except StorageError as error:
        raise Unchecked(f"the file store ({_store_description()}) could not be read: {_one_line(error)}") from None
    except (OperationalError, InterfaceError) as error:
        raise Unchecked(f"the database could not be read: {_one_line(error.orig or error)}") from None
    for label, items in (
        ("upload rows whose file is missing", report.missing),
        ("upload rows whose file is corrupt (size or SHA-256 differs)", report.corrupt),
        ("files without an upload row", report.orphans),
        ("abandoned staged files", report.stale_staged),
        ("expired resumable uploads", report.expired_resumable),
        *([("removed by --repair", report.removed)] if repair else []),
    ):
        click.echo(f"{label}: {len(items)}")
        for item in items:
            click.echo(f"  {item}")
    if grace:
        hint = " (they may be uploads in progress; --grace 0 checks them too)" if report.too_young else ""
        young = len(report.too_young)
        click.echo(f"files younger than the {_duration(grace)} grace period, not checked: {young}{hint}")
    click.echo(f"resumable uploads in progress (their staged bytes are kept): {len(report.resumable)}")
    click.echo("consistent" if report.consistent else "NOT consistent")
    if not report.consistent:
        sys.exit(1)


@click.command("dev")
@click.option(
    "--port",
    envvar="PORT",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port on 127.0.0.1 (or PORT, from the environment or .env).",
)
@with_appcontext
def dev_server(port: int) -> None:
    """Apply the migrations, then serve on 127.0.0.1 with the development server.

    One process does both (not `flask db upgrade` then `flask run`), so a restart of
    run_dev.sh imports the app once."""
    from flask_migrate import upgrade
    from werkzeug.serving import run_simple

    upgrade()
    run_simple("127.0.0.1", port, current_app._get_current_object(), threaded=True)


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(dev_server)
