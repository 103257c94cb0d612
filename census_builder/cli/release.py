"""Command line for releases: ``publish``, ``release ...`` and ``notes``.

``release`` has the subcommands alias, unalias, retract, unretract, lts, mirrors and list.

``register_release_commands`` adds the subcommands to the main parser; each sets ``handler`` (args -> exit
code), which ``census_builder.cli.main.main`` calls. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from census_builder import options
from census_builder.cli.settings import setting_flag

logger = logging.getLogger("census_builder")


def _dest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, metavar="DEST", help="local directory or s3://bucket/prefix")
    p.add_argument(
        "--endpoint-url",
        default=None,
        help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL); credentials and region come "
        "from the usual AWS environment variables and files",
    )


def register_release_commands(sub: Any) -> None:
    """Add ``publish``, ``release`` and ``notes`` to the subparsers ``sub`` of the main parser."""
    p = sub.add_parser("publish", help="copy a validated build to DEST/VERSION and add it to DEST/release.json")
    p.add_argument("--version", required=True, type=options.version, help="the build to publish")
    setting_flag(p, "workdir")
    _dest_options(p)
    p.add_argument("--lts", action="store_true", help="flag the release as long-term stable")
    p.add_argument(
        "--release-date",
        type=options.iso_date,
        default=None,
        help="ISO date recorded as release_date (default: today, UTC)",
    )
    setting_flag(p, "publish_jobs")
    p.set_defaults(handler=_publish)

    r = sub.add_parser("release", help="manage DEST/release.json and mirrors.json: aliases, retractions, LTS, listing")
    rsub = r.add_subparsers(dest="release_command", required=True)
    a = rsub.add_parser("alias", help="point alias NAME (e.g. latest, stable) at release VERSION")
    a.add_argument("name")
    a.add_argument("version")
    _dest_options(a)
    a.set_defaults(handler=_alias)
    t = rsub.add_parser("retract", help="mark release VERSION as retracted")
    t.add_argument("version", type=options.version)
    t.add_argument("--reason", required=True)
    t.add_argument("--replaced-by", default=None, help="release (or alias) replacing it; its aliases move there")
    t.add_argument("--info-url", default=None, help="permalink to more information")
    _dest_options(t)
    t.set_defaults(handler=_retract)
    ua = rsub.add_parser("unalias", help="remove alias NAME (the release it names stays published)")
    ua.add_argument("name")
    _dest_options(ua)
    ua.set_defaults(handler=_unalias)
    ur = rsub.add_parser("unretract", help="undo the retraction of release VERSION (aliases that moved stay)")
    ur.add_argument("version", type=options.version)
    _dest_options(ur)
    ur.set_defaults(handler=_unretract)
    lt = rsub.add_parser("lts", help="flag release VERSION long-term stable (flags.lts), or --clear the flag")
    lt.add_argument("version", type=options.version)
    lt.add_argument("--clear", action="store_true", help="clear the flag instead of setting it")
    _dest_options(lt)
    lt.set_defaults(handler=_lts)
    m = rsub.add_parser(
        "mirrors",
        help="show DEST/mirrors.json and how a consumer opens DEST with cellxgene_census, or --set a mirror",
    )
    _dest_options(m)
    m.add_argument("--set", default=None, metavar="NAME", help="add or replace mirror NAME")
    m.add_argument(
        "--base-uri",
        default=None,
        help="with --set: where the mirror's data is, s3://bucket/prefix or a local directory (default: DEST)",
    )
    m.add_argument("--region", default=None, help="with --set: the S3 bucket's region")
    m.add_argument("--default", action="store_true", help="with --set: make NAME the default mirror")
    m.add_argument(
        "--url",
        default=None,
        help="the HTTP(S) URL at which DEST's release.json and mirrors.json are served (for the printed snippet)",
    )
    m.set_defaults(handler=_mirrors)
    ls = rsub.add_parser("list", help="list releases and aliases")
    _dest_options(ls)
    ls.add_argument("--json", action="store_true", help="print release.json as it is")
    ls.set_defaults(handler=_list)

    n = sub.add_parser("notes", help="write release notes (markdown and PNG figures) for a build")
    n.add_argument("--version", required=True, type=options.version)
    n.add_argument(
        "--previous",
        default=None,
        help="release to compare with (default: the newest published, non-retracted release named before "
        "VERSION in the release.json of --from; without a destination, the newest complete build in --workdir "
        "named before VERSION)",
    )
    setting_flag(n, "workdir")
    n.add_argument(
        "--from",
        dest="from_dest",
        default=None,
        metavar="DEST",
        help="destination whose release.json lists the published releases (default: where VERSION was "
        "published, as recorded in DIR/VERSION/published.json)",
    )
    n.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint for an s3:// --from")
    n.add_argument(
        "--out", type=Path, default=None, help="output directory (default DIR/VERSION/release_notes, beside the build)"
    )
    n.set_defaults(handler=_notes)


def _publish(args: argparse.Namespace) -> int:
    from census_builder.cli.logs import log_to_version_dir
    from census_builder.release.publish import publish

    log_to_version_dir(args.workdir, args.version, "publish.log")

    result = publish(
        args.workdir,
        args.version,
        args.to,
        endpoint_url=args.endpoint_url,
        lts=args.lts,
        release_date=args.release_date,
        workers=args.jobs,
    )
    logger.info(
        "published %s: %d objects (%d sent, %d already there, %d stray removed); soma at %s",
        result.version,
        result.objects,
        result.uploaded,
        result.skipped,
        result.removed,
        result.entry.soma.uri,
    )
    return 0


def _store(args: argparse.Namespace) -> Any:
    from census_builder.release.destination import Destination
    from census_builder.release.directory import open_store

    return open_store(Destination.parse(args.to, endpoint_url=args.endpoint_url))


def _alias(args: argparse.Namespace) -> int:
    directory = _store(args).update(lambda d: d.with_alias(args.name, args.version))
    logger.info("alias %s -> %s", args.name, directory.aliases[args.name])
    return 0


def _retract(args: argparse.Namespace) -> int:
    _store(args).update(
        lambda d: d.with_retraction(
            args.version, reason=args.reason, replaced_by=args.replaced_by, info_url=args.info_url
        )
    )
    logger.info("release %s retracted%s", args.version, f"; replaced by {args.replaced_by}" if args.replaced_by else "")
    return 0


def _unalias(args: argparse.Namespace) -> int:
    named: list[str] = []

    def change(d: Any) -> Any:
        named[:] = [d.aliases.get(args.name, "")]
        return d.without_alias(args.name)

    _store(args).update(change)
    logger.info("alias %s removed (it named %s)", args.name, named[0])
    return 0


def _unretract(args: argparse.Namespace) -> int:
    _store(args).update(lambda d: d.without_retraction(args.version))
    v = args.version
    logger.info("release %s is no longer retracted; aliases stay where they are (release alias NAME %s)", v, v)
    return 0


def _lts(args: argparse.Namespace) -> int:
    lts = not args.clear
    _store(args).update(lambda d: d.with_lts(args.version, lts))
    logger.info("release %s: lts %s", args.version, "set" if lts else "cleared")
    return 0


def _mirrors(args: argparse.Namespace) -> int:
    from census_builder.errors import ReleaseDirectoryError
    from census_builder.release.destination import Destination
    from census_builder.release.mirrors import (
        MIRRORS_JSON,
        Mirror,
        consumer_snippet,
        read_mirrors,
        update_mirrors,
        with_mirror,
    )

    dest = Destination.parse(args.to, endpoint_url=args.endpoint_url)
    if args.set is None:
        if args.base_uri or args.region or args.default:
            raise ReleaseDirectoryError("--base-uri, --region and --default go with --set NAME")
        mirrors = read_mirrors(dest)
    else:
        mirror = Mirror.for_uri(args.base_uri or dest.base_uri, region=args.region)
        mirrors = update_mirrors(dest, lambda m: with_mirror(m, args.set, mirror, default=args.default))
        logger.info("mirror %s: %s (%s)", args.set, mirror.base_uri, mirror.provider)
    print(json.dumps(mirrors, indent=2))
    if not mirrors:
        print(f"no {MIRRORS_JSON} at {dest}: publish writes one, or run release mirrors --set NAME --to {args.to}")
        return 0
    url = args.url or "https://HOST/PATH-SERVING-DEST"
    print(f"\n# A consumer opens a release of {dest} (release.json and {MIRRORS_JSON} served at {url}):")
    print(consumer_snippet(url, str(mirrors.get("default", "NAME"))))
    return 0


def _list(args: argparse.Namespace) -> int:
    directory = _store(args).read()
    if args.json:
        print(json.dumps(directory.to_json(), indent=2))
        return 0
    if not directory.releases and not directory.aliases:
        print(f"no releases at {args.to}")
        return 0
    rows = [("NAME", "BUILD", "RELEASED", "FLAGS", "ALIASES", "SOMA")]
    for name in sorted(directory.releases, reverse=True):
        e = directory.releases[name]
        flags = ",".join(f for f, on in (("lts", e.lts), ("retracted", e.retracted)) if on) or "-"
        rows.append(
            (
                name,
                e.release_build,
                e.release_date or "-",
                flags,
                ",".join(directory.aliases_of(name)) or "-",
                e.soma.uri,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    for name in sorted(directory.releases, reverse=True):
        ret = directory.releases[name].retraction
        if ret is not None:
            print(
                f"{name} retracted {ret.date}: {ret.reason}"
                + (f" (replaced by {ret.replaced_by})" if ret.replaced_by else "")
                + (f" {ret.info_url}" if ret.info_url else "")
            )
    for problem in directory.problems():
        logger.warning("release.json: %s", problem)
    return 0


def _notes(args: argparse.Namespace) -> int:
    from census_builder.cli.logs import log_to_version_dir
    from census_builder.release.notes import make_notes

    log_to_version_dir(args.workdir, args.version, "notes.log")

    md = make_notes(
        args.workdir,
        args.version,
        previous=args.previous,
        out_dir=args.out,
        dest=args.from_dest,
        endpoint_url=args.endpoint_url,
    )
    logger.info("notes: %s", md)
    return 0
