"""Command-line tools: `flask users create-admin EMAIL` (plus Flask-Migrate's `flask db ...`)."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.exceptions import DepotError
from app.services.users import UserService

users_cli = AppGroup("users", help="Manage user accounts.")


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


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
