"""`refforge` command line. Every make target calls one of these sub-commands.

    refforge build sources.yaml [--source NAME] [--stage ingest|proposals|negatives|all] [--executor ray|local]
    refforge demo [--out out/demo]            generate the demo input and build the demo corpus
    refforge verify out/<name>                re-check hashes, schema, round-trips, id uniqueness
    refforge inspect out/<name> [--n 20]      write a static HTML viewer
    refforge converters                       list the registered converters
    refforge lint-templates                   lint every prompt template
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.errors import RefforgeError

log = logging.getLogger("refforge")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _summary(report: dict, out: Path | None) -> None:
    run = report["run"]
    log.info("stage %s: %d shards (%d built, %d resumed), %d rows", run["stage"], run["shards_total"],
             run["shards_built"], run["shards_resumed"], report["rows"])
    for src, a in sorted(report["sources"].items()):
        skipped = {k: sum(v.values()) for k, v in a["skipped"].items()}
        log.info("  %s: inputs %s, emitted %s, skipped %s", src, a["inputs"], a["emitted"], skipped)
    stage_stats = {k: v for k, v in report["stats"].items() if k.startswith(("grid.", "negatives.", "dialogue."))}
    if stage_stats:
        log.info("  stats: %s", ", ".join(f"{k}={v}" for k, v in stage_stats.items()))
    if not report["all_accounted"]:
        log.error("unaccounted inputs: %s", report["unaccounted"])
    if out is not None:
        log.info("corpus written to %s (open with: datasets.load_dataset(%r))", out, str(out))


def cmd_build(args: argparse.Namespace) -> int:
    from pipeline.config import load_config, with_overrides
    from pipeline.runner import build

    cfg = with_overrides(load_config(args.config), executor=args.executor, seed=args.seed, name=args.name,
                         output_dir=args.output_dir, format=args.format,
                         progress=False if args.no_progress else None)
    report = build(cfg, stage=args.stage, only_source=args.source)
    _summary(report, cfg.output_path() if args.stage == "all" else None)
    return 0 if report["all_accounted"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.config import load_config, with_overrides
    from pipeline.demo import generate
    from pipeline.runner import build

    root = Path(__file__).resolve().parents[1]
    generate(root / "out" / "demo-input", n_images=args.images, seed=0)
    cfg = with_overrides(load_config(root / "configs" / "demo.yaml"), executor=args.executor,
                         progress=False if args.no_progress else None)
    report = build(cfg)
    _summary(report, cfg.output_path())
    log.info("inspect it: refforge inspect %s   verify it: refforge verify %s", cfg.output_path(),
             cfg.output_path())
    return 0 if report["all_accounted"] else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.verify import verify

    problems = verify(Path(args.corpus))
    for p in problems:
        log.error("%s", p)
    log.info("verify %s: %s", args.corpus, "OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from pipeline.inspect_html import write_inspect_page

    page = write_inspect_page(Path(args.corpus), n=args.n, out=Path(args.out) if args.out else None)
    log.info("wrote %s", page)
    return 0


def cmd_converters(args: argparse.Namespace) -> int:
    from converters import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        sys.stdout.write(f"{name:16s} {cls.__module__}.{cls.__name__} (version {cls.version})\n")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from pipeline.template_lint import lint
    from pipeline.templates import TemplateBank

    problems = lint(TemplateBank.load())
    for p in problems:
        log.error("%s", p)
    log.info("%d template problem(s)", len(problems))
    return 0 if not problems else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refforge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="regenerate a corpus from a sources.yaml")
    b.add_argument("config", help="path of the sources.yaml")
    b.add_argument("--source", help="only this source (a key of `sources:`)")
    b.add_argument("--stage", choices=["ingest", "proposals", "negatives", "all"], default="all",
                   help="stop after this stage (proposals / negatives fill their caches); default all")
    b.add_argument("--executor", choices=["ray", "local"], help="override run.executor")
    b.add_argument("--seed", type=int, help="override run.seed")
    b.add_argument("--name", help="override run.name (corpus folder name)")
    b.add_argument("--output-dir", help="override run.output_dir")
    b.add_argument("--format", choices=["trp", "text", "getok"], help="override run.format")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(fn=cmd_build)
    d = sub.add_parser("demo", help="generate the demo input and build out/demo")
    d.add_argument("--images", type=int, default=48)
    d.add_argument("--executor", choices=["ray", "local"])
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(fn=cmd_demo)
    v = sub.add_parser("verify", help="re-check a corpus: hashes, schema, round-trip, ids")
    v.add_argument("corpus")
    v.set_defaults(fn=cmd_verify)
    i = sub.add_parser("inspect", help="write a static HTML page of samples with overlays")
    i.add_argument("corpus")
    i.add_argument("--n", type=int, default=20)
    i.add_argument("--out", help="HTML path (default <corpus>/inspect/index.html)")
    i.set_defaults(fn=cmd_inspect)
    sub.add_parser("converters", help="list registered converters").set_defaults(fn=cmd_converters)
    sub.add_parser("lint-templates", help="lint every prompt template").set_defaults(fn=cmd_lint)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.fn(args)
    except RefforgeError as e:
        log.error("%s", e)
        return 2
    finally:
        if "ray" in sys.modules:
            from pipeline.execute import shutdown

            shutdown()


if __name__ == "__main__":
    sys.exit(main())
