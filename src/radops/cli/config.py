"""`radops config`: show and change settings shared by every executor."""

from __future__ import annotations

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


@app.command("show", epilog=examples("radops config show", "radops config show --json"))
def show(json_output: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Show every setting, its value and where the value comes from."""
    from radops.api.settings import config_path, settings
    from radops.cli import render

    found = settings()
    if json_output:
        # "sources": where each value comes from ("file", "env VAR", or null: not set).
        render.print_json(
            {s.key: s.value for s in found}
            | {"path": config_path(), "sources": {s.key: s.source for s in found}}
        )
    else:
        render.print_table(
            ("SETTING", "VALUE", "FROM"), [(s.key, s.value or "", s.source or "") for s in found]
        )
        render.print_line(f"\nConfig file: {config_path()}")


@app.command("set", epilog=examples("radops config set registry ghcr.io/my-org"))
def set_(
    key: str = typer.Argument(..., help=KEY_HELP, autocompletion=complete_setting),
    value: str = typer.Argument(..., help="The new value."),
) -> None:
    """Set a setting in the config file (its environment variable still wins)."""
    from radops.api.settings import set_setting

    set_setting(key, value)


@app.command("unset", epilog=examples("radops config unset registry"))
def unset(
    key: str = typer.Argument(..., help=KEY_HELP, autocompletion=complete_setting),
) -> None:
    """Remove a setting from the config file."""
    from radops.api.settings import unset_setting

    unset_setting(key)
