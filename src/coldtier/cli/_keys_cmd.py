"""``coldtier shred``, ``coldtier keys ...`` and the ``--encryption`` / ``--new-key`` options (DESIGN.md §9)."""

from __future__ import annotations

from typing import Any

import click

import coldtier
from coldtier.keys import available_key_providers, open_key_provider

from ._common import EXIT_OK, dump_json, json_option, one_line, open_url, opt_option, url_argument

ENCRYPTION_HELP = (
    "Key provider URL of an encrypted archive (file:///path/keyring[?passphrase_env=VAR], "
    "aws-kms:///path/keyring?key_id=...&region=...); default: COLDTIER_ENCRYPTION.  Secrets only "
    "from the environment (the URL names the variable)."
)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value:
        ctx.meta[f"coldtier.{param.name}"] = value


def encryption_param() -> click.Option:
    """``--encryption K``: given to ``open_archive`` by :func:`coldtier.cli._common.open_url`."""
    return click.Option(
        ["--encryption"],
        metavar="KEYS",
        envvar="COLDTIER_ENCRYPTION",
        expose_value=False,
        callback=_remember,
        help=ENCRYPTION_HELP,
    )


def new_key_param() -> click.Option:
    return click.Option(
        ["--new-key"],
        is_flag=True,
        expose_value=False,
        callback=_remember,
        help="For a tenant whose key was shredded: create a new key and archive under it "
        "(without it such a tenant is refused, so shredded and new data never mix).",
    )


def resume_key(archive: coldtier.Archive, tenant: str) -> None:
    """With ``--new-key``, give a shredded tenant a new key before its batch is archived."""
    if not click.get_current_context().find_root().meta.get("coldtier.new_key"):
        return
    try:
        key_id = archive.new_key(tenant)
    except coldtier.InvalidRequest:  # the tenant's key is live (or it has none yet): nothing to do
        return
    click.echo(f"coldtier: tenant {tenant}: new key {key_id}", err=True)


@click.command("shred", short_help="Destroy a tenant's key: its encrypted data becomes unreadable.")
@url_argument
@click.option("--tenant", "-t", required=True, help="Tenant whose key is destroyed.")
@click.option("--yes", is_flag=True, help="Confirm: shredding cannot be undone.")
@opt_option
@json_option
def shred_cmd(*, url: str | None, tenant: str, yes: bool, opts: tuple[str, ...], as_json: bool) -> int:
    """Destroy TENANT's encryption key, durably; no object is touched (Object Lock stays intact).

    Afterwards nobody, coldtier included, can read that tenant's payload,
    metadata or entity ids; read raises "shredded", verify counts the objects
    as shredded (not damaged), and archive refuses the tenant unless --new-key.
    """
    if not yes:
        raise click.UsageError(f"shredding tenant {tenant}'s key cannot be undone: pass --yes")
    archive = open_url(url, opts)
    done = archive.shred(tenant)
    if as_json:
        dump_json({"tenant_id": tenant, "key_ids": list(done.key_ids), "effective": done.effective})
    else:
        click.echo(str(done))
    return EXIT_OK


@click.group("keys", short_help="Key providers: list them, rotate a keyring's master.")
def keys_cmd() -> None:
    """Per-tenant keys of encrypted archives (DESIGN.md §9)."""


@keys_cmd.command("providers")
def providers_cmd() -> int:
    """List key provider URL schemes and their implementations."""
    for scheme, target in available_key_providers().items():
        click.echo(f"{scheme + '://':<12} {target}")
    return EXIT_OK


@keys_cmd.command("rotate")
@click.option("--encryption", "old", metavar="KEYS", required=True, envvar="COLDTIER_ENCRYPTION", help=ENCRYPTION_HELP)
@click.option("--to", "new", metavar="KEYS", required=True, help="The same keyring with its new master.")
@json_option
def rotate_cmd(*, old: str, new: str, as_json: bool) -> int:
    """Rewrap every tenant key of a keyring under a new master; no object is rewritten.

    E.g. --encryption 'file:///k?passphrase_env=OLD' --to 'file:///k?passphrase_env=NEW',
    or from one KMS key_id to another.  Run it again if it was interrupted.
    """
    count = open_key_provider(old).rotate(open_key_provider(new))
    if as_json:
        dump_json({"rewrapped": count})
    else:
        click.echo(one_line(f"rewrapped {count} tenant key{'s' if count != 1 else ''}; objects untouched"))
    return EXIT_OK
