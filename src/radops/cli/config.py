"""`radops config`: show and change settings shared by every executor."""

from __future__ import annotations

import os

import typer

from radops.cli.options import complete_setting
from radops.cli.render import examples

app = typer.Typer(
    help="Show and change radops settings (registry, GCP project, zone, endpoint, SSH).",
    no_args_is_help=True,
)

KEY_HELP = (
    "Setting name: registry, gcp_project, gcp_zone, gcp_api_endpoint, gcp_autostop, ssh_persist, "
    "registry_pull_username or registry_pull_token_file."
)


def _check_key(key: str) -> str:
    from radops.config import setting_names
    from radops.errors import UsageError

    if key not in setting_names():
        raise UsageError(f"unknown setting {key!r}", f"Settings: {', '.join(setting_names())}.")
    return key


@app.command("show", epilog=examples("radops config show", "radops config show --json"))
def show(json_output: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Show every setting, its value and where the value comes from."""
    from radops.cli import render
    from radops.config import SETTINGS_ENV, resolve_setting
    from radops.store import ExecutorStore

    store = ExecutorStore()
    settings = store.load().settings
    rows = []
    for key, env in SETTINGS_ENV.items():
        value = resolve_setting(settings, key)
        source = f"env {env}" if os.environ.get(env) else "file" if value else ""
        rows.append((key, value or "", source))
    if json_output:
        # "sources": where each value comes from ("file", "env VAR", or null: not set).
        render.print_json(
            {key: value or None for key, value, _ in rows}
            | {"path": str(store.path), "sources": {key: src or None for key, _, src in rows}}
        )
    else:
        render.print_table(("SETTING", "VALUE", "FROM"), rows)
        render.print_line(f"\nConfig file: {store.path}")


@app.command("set", epilog=examples("radops config set registry ghcr.io/my-org"))
def set_(
    key: str = typer.Argument(..., help=KEY_HELP, autocompletion=complete_setting),
    value: str = typer.Argument(..., help="The new value."),
) -> None:
    """Set a setting in the config file (its environment variable still wins)."""
    from radops.store import ExecutorStore

    _check_key(key)
    if key == "ssh_persist":
        from radops.ssh.mux import parse_persist

        parse_persist(value)
    if key == "gcp_autostop":
        from radops.gcp.autostop import parse_duration

        parse_duration(value, "gcp_autostop")
    with ExecutorStore().edit() as config:
        setattr(config.settings, key, value)


@app.command("unset", epilog=examples("radops config unset registry"))
def unset(
    key: str = typer.Argument(..., help=KEY_HELP, autocompletion=complete_setting),
) -> None:
    """Remove a setting from the config file."""
    from radops.store import ExecutorStore

    _check_key(key)
    with ExecutorStore().edit() as config:
        setattr(config.settings, key, None)
