"""`pinnprov kibana ...`: Elasticsearch index templates, Kibana saved objects and alerting rules, as code.

  pinnprov kibana validate                    check saved objects and rules against the index mappings
  pinnprov kibana templates [--es-url URL]    install the index templates and indices (idempotent)
  pinnprov kibana import [--kibana-url URL]   import data views, Lens charts and the dashboard (overwrite)
  pinnprov kibana alerts [--kibana-url URL]   create or update the Kibana alerting rules (idempotent)
  pinnprov kibana ndjson [-o FILE]            write the saved objects as one ndjson file (for the UI)

URLs: --es-url, else PINNPROV_ES_URL, else http://127.0.0.1:9200; --kibana-url, else PINNPROV_KIBANA_URL,
else http://127.0.0.1:5601. Credentials never come from flags: PINNPROV_ES_API_KEY or PINNPROV_ES_USERNAME/
PINNPROV_ES_PASSWORD (or *_FILE), PINNPROV_KIBANA_* likewise (falling back to the Elasticsearch ones);
private CAs with PINNPROV_ES_CA_CERTS / PINNPROV_KIBANA_CA_CERTS. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers

DEFAULT_ES_URL = "http://127.0.0.1:9200"


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("kibana", help="index templates, Kibana dashboards and alerting rules",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="kibana_action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="check saved objects and alert rules (no network)")
    validate.add_argument("--saved-objects", type=Path, metavar="DIR", help="saved objects folder (default: shipped)")
    validate.add_argument("--alert-rules", type=Path, metavar="DIR", help="alert rules folder (default: shipped)")
    validate.set_defaults(handler=handle_validate)

    templates = actions.add_parser("templates", help="install the Elasticsearch index templates and indices")
    templates.add_argument("--es-url", metavar="URL", help=f"Elasticsearch URL (default $PINNPROV_ES_URL, "
                           f"else {DEFAULT_ES_URL})")
    _prefix(templates)
    templates.set_defaults(handler=handle_templates)

    for name, helptext, handler in (
        ("import", "import data views, Lens visualizations and the dashboard into Kibana", handle_import),
        ("alerts", "create or update the Kibana alerting rules (index threshold)", handle_alerts),
    ):
        sub = actions.add_parser(name, help=helptext)
        sub.add_argument("--kibana-url", metavar="URL", help="Kibana URL (default $PINNPROV_KIBANA_URL, else "
                         "http://127.0.0.1:5601)")
        sub.add_argument("--space", metavar="ID", help="Kibana space (default: the default space)")
        _prefix(sub)
        sub.set_defaults(handler=handler)

    ndjson = actions.add_parser("ndjson", help="write the saved objects as one ndjson file")
    ndjson.add_argument("-o", "--output", type=Path, metavar="FILE", help="output file (default: stdout)")
    _prefix(ndjson)
    ndjson.set_defaults(handler=handle_ndjson)


def _prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-prefix", default=None, metavar="P",
                        help="index prefix (default $PINNPROV_ES_INDEX_PREFIX, else pinnprov)")


def _index_prefix(args: argparse.Namespace) -> str:
    from pinnprov.core.es_indices import DEFAULT_PREFIX, validate_prefix
    from pinnprov.core.settings import resolve

    explicit: str | None = args.index_prefix
    return resolve("--index-prefix", explicit, "PINNPROV_ES_INDEX_PREFIX", DEFAULT_PREFIX, validate_prefix)


def _report(outcomes: list[Any]) -> int:
    for outcome in outcomes:
        print(outcome.line())
    failed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


def handle_validate(args: argparse.Namespace) -> int:
    from pinnprov.kibana.ndjson import load_objects
    from pinnprov.kibana.validator import validate_alert_rules, validate_saved_objects

    problems = validate_saved_objects(args.saved_objects) + validate_alert_rules(args.alert_rules)
    for problem in problems:
        print(f"invalid: {problem}")
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    count = len(load_objects(args.saved_objects))
    rules = len(list((args.alert_rules or _rules_dir()).glob("*.json")))
    print(f"ok: {count} saved objects and {rules} alert rules are consistent with the index templates")
    return 0


def _rules_dir() -> Path:
    from pinnprov.kibana import alert_rules_dir

    return alert_rules_dir()


def handle_templates(args: argparse.Namespace) -> int:
    from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
    from pinnprov.core.settings import resolve

    url = resolve("--es-url", args.es_url, "PINNPROV_ES_URL", DEFAULT_ES_URL, str)
    if not args.verbose:
        import logging

        logging.getLogger("elastic_transport").setLevel(logging.ERROR)  # the error line below says it all
    sink = ElasticsearchSink(url, index_prefix=_index_prefix(args), setup=False)
    try:
        for line in sink.setup():
            print(line)
    except Exception as error:  # noqa: BLE001 - any client error becomes one line
        from pinnprov.collector.es_client import describe_error

        raise ValueError(describe_error(error)) from None
    finally:
        sink.shutdown()
    return 0


def _client(args: argparse.Namespace) -> Any:
    from pinnprov.kibana.importer import KibanaClient

    return KibanaClient(args.kibana_url, space=args.space)


def handle_import(args: argparse.Namespace) -> int:
    from pinnprov.kibana.importer import import_saved_objects
    from pinnprov.kibana.validator import validate_saved_objects

    problems = validate_saved_objects()
    if problems:
        raise ValueError(f"saved objects are invalid, not importing: {problems[0]} (see `pinnprov kibana validate`)")
    return _report(import_saved_objects(_client(args), prefix=_index_prefix(args)).outcomes)


def handle_alerts(args: argparse.Namespace) -> int:
    from pinnprov.kibana.connectors import apply_connectors
    from pinnprov.kibana.importer import apply_alert_rules
    from pinnprov.kibana.validator import validate_alert_rules

    problems = validate_alert_rules()
    if problems:
        raise ValueError(f"alert rules are invalid: {problems[0]} (see `pinnprov kibana validate`)")
    client = _client(args)
    connectors = apply_connectors(client)  # first: rule actions name them
    rules = apply_alert_rules(client, prefix=_index_prefix(args), connectors=connectors.available)
    return _report(connectors.outcomes + rules.outcomes)


def handle_ndjson(args: argparse.Namespace) -> int:
    from pinnprov.kibana.ndjson import build_ndjson

    data = build_ndjson(prefix=_index_prefix(args))
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.output.write_bytes(data)
        count = len(data.splitlines())
        print(f"wrote {args.output} ({count} saved objects)", file=sys.stderr)
    return 0
