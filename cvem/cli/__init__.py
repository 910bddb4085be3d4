"""``cvem``: the cloudvamp front-end command line (a thin click layer over the library).

Each sub-module adds its commands to :data:`cli`; errors from the library
(:class:`~cvem.errors.CloudvampError`) become a one-line message and exit status 1.
"""
from __future__ import annotations

import logging

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="cloudvamp")
@click.option("--endpoint", metavar="URL", default=None,
              help="oned XML-RPC endpoint (default: config file, $ONE_XMLRPC, "
                   "http://localhost:2633/RPC2).")
@click.option("--auth", "auth_file", metavar="FILE", default=None,
              help="File holding 'user:password' (default: config, $ONE_AUTH, ~/.one/one_auth).")
@click.option("--config", "config_file", metavar="FILE", default=None,
              help="cvem configuration file (default /etc/one/cvem.conf).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx, endpoint, auth_file, config_file, verbose):
    """cloudvamp: hand unused guest memory back to OpenNebula without starving guests.

    \b
    Examples:
      cvem simulate                          # the main job on the built-in simulated cloud
      cvem simulate --traces ../shared/traces/bitbrains-rnd-2013-8
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj.update(endpoint=endpoint, auth_file=auth_file, config_file=config_file)


def _remember(key):
    def callback(ctx, _param, value):
        if value is not None:
            ctx.ensure_object(dict)[key] = value
        return value
    return callback


def connection_options(command):
    """Accept ``--endpoint/--auth/--config`` after the sub-command too (``cvem run --config
    FILE`` is what operators type); a value given there wins over the group's."""
    for name, key, meta in (("--config", "config_file", "FILE"), ("--auth", "auth_file", "FILE"),
                            ("--endpoint", "endpoint", "URL")):
        command = click.option(name, key, metavar=meta, default=None, expose_value=False,
                               is_eager=True, callback=_remember(key),
                               help=f"Same as `cvem {name} {meta} ...`.")(command)
    return command


from . import simulate  # noqa: E402,F401  (registers its commands)
from . import bench  # noqa: E402,F401
from . import service  # noqa: E402,F401  (run, plan, status, check-config)
