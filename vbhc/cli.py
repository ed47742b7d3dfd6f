"""The `vbhc` command: init, demo, import, precompute, status, report, audit, external, serve."""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

from vbhc.progress import ProgressPrinter
from vbhc.settings import PROJECT_ROOT, data_dir, database_url, in_checkout

#: `vbhc demo --mode`: every hospital's patient rows in one registry (a collaboration), or the own hospital's
#: patient rows with the other hospitals as external figures (vbhc.demo_external)
DEMO_MODES = ("shared", "own")


def _cmd_init(args: argparse.Namespace) -> int:
    from vbhc.store import get_engine, row_counts, upgrade_schema

    upgrade_schema(get_engine())
    print(f"Database ready at {_safe_url()}")
    for table, n in row_counts().items():
        print(f"  {table}: {n:,}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from vbhc.ingest import ImportRefused, import_files

    progress = ProgressPrinter()
    try:
        report = import_files(
            args.files, imported_by=args.by or _whoami(), actor=_whoami(), force=args.force, progress=progress
        )
    except ImportRefused as exc:
        progress.finish()
        print(exc.report.summary(), file=sys.stderr)
        return 2
    progress.finish()
    print(report.summary())
    if getattr(args, "precompute", True):
        # the whole period at both levels: the first pages and `vbhc report --all`; a server adds the years in the
        # background (stored once per import too), `vbhc precompute --years` does it here
        status = _precompute(years=False, report_charts=getattr(args, "report_charts", True))
        return status or _detect_signals()
    return 0


def _detect_signals() -> int:
    """Turn the flags in the stored hospital-level results of the new dataset version into signals
    (vbhc.improvement), so the team's meeting finds them; only when the views were stored (else it would compute
    every condition again)."""
    from vbhc.improvement import detect_signals
    from vbhc.results import ResultStore
    from vbhc.store import get_engine

    engine = get_engine()
    if not ResultStore(engine).enabled:
        return 0
    runs = detect_signals(engine, _whoami())
    flags, opened = sum(r.flags for r in runs), sum(len(r.opened) for r in runs)
    print(f"Signals: {flags:,} units x indicators outside the 99.8% limits, {opened:,} new signal(s)")
    return 0


def _precompute(*, years: bool | None = None, report_charts: bool = True) -> int:
    """Compute and store the default indicator views of the current data (vbhc.results), so the dashboard's
    first page, every server process and `vbhc report` read them instead of computing them; with `report_charts`
    also the charts of `vbhc report --all --format pdf` (vbhc.reports.run.prepare_report_charts)."""
    from vbhc.results import ResultStore, default_views, precompute, prepare_pages
    from vbhc.settings import report_charts_at_import
    from vbhc.store import get_engine

    progress = ProgressPrinter(sys.stderr, unit="views")  # the stderr of now (a default binds it at import)
    engine = get_engine()
    if not ResultStore(engine).enabled:
        print("Indicator views not precomputed: the results store is off (VBHC_RESULTS_DIR) or not usable")
        return 0
    started = time.perf_counter()
    views = default_views(engine, years=years)
    computed, stored = precompute(engine, views, progress=progress)
    progress.finish()
    print(
        f"Indicator views: {computed:,} computed, {stored:,} already stored, in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    charts = None
    if (
        report_charts and report_charts_at_import()
    ):  # the report's charts in a child on the other core while this process prepares the pages
        from vbhc.reports.run import start_report_charts

        charts = start_report_charts(engine.url.render_as_string(hide_password=False), lowest_priority=False)
    progress = ProgressPrinter(sys.stderr, unit="parts")
    prepared = prepare_pages(engine, views, progress=progress)
    progress.finish()
    took = time.perf_counter() - started
    print(f"Signals, unit charts, PROM-response, cost, PREM and registry tables: {prepared:,} computed in {took:.1f} s")
    if charts is not None:
        from vbhc.reports.run import finish_report_charts

        code, out = finish_report_charts(charts)
        print(
            out.strip() if not code else f"Report charts not prepared (exit status {code}): `vbhc report` renders them"
        )
    return 0


def _report_charts() -> int:
    """Render and store the charts of `vbhc report --all --format pdf` (vbhc.reports.run.prepare_report_charts)."""
    from vbhc.reports import ReportError
    from vbhc.reports.run import prepare_report_charts
    from vbhc.store import get_engine

    started = time.perf_counter()
    try:
        drawn = prepare_report_charts(get_engine())
    except ReportError as exc:  # e.g. no care cycles: `vbhc report` says the same when asked
        print(f"Report charts not prepared: {exc}")
    else:
        seconds = time.perf_counter() - started
        print(f"Report charts (vbhc report --all --format pdf): {drawn:,} rendered in {seconds:.1f} s")
    return 0


def _cmd_precompute(args: argparse.Namespace) -> int:
    from vbhc.store import get_engine, upgrade_schema

    upgrade_schema(get_engine())
    if args.charts_only:
        return _report_charts()
    return _precompute(years=True if args.years else None)


def _cmd_demo(args: argparse.Namespace) -> int:
    from vbhc.demo import generate_demo

    out = Path(args.out) if args.out else data_dir() / "demo"
    progress = ProgressPrinter()
    started = time.perf_counter()
    result = generate_demo(out, cycles=args.cycles, seed=args.seed, progress=progress)
    progress.finish()
    print(f"Demo registry written to {out} in {time.perf_counter() - started:.1f} s")
    for table, n in result.counts.items():
        print(f"  {table}: {n:,} rows")
    print(f"  planted truth: {result.truth_path}")
    if result.follow_up:  # vital status of the cancer care cycles (survival indicators)
        print(f"  vital status: {result.follow_up}")
    if result.prems:  # patient experience (PREM) answers of every unit
        print(f"  prem_responses: {result.prem_rows:,} rows")
    files = result.import_order()
    external_file, model_files = None, []
    if getattr(args, "mode", "shared") == "own":
        files, external_file, model_files = _own_hospital_demo(out, files, result.truth_path)
    if args.no_import:
        return 0
    precompute = getattr(args, "precompute", True)
    # the report's charts (~20 s of rendering on the default demo) are left to the server's warm-up and `vbhc
    # precompute`: the first run of a fresh clone waits for the demo's import
    code = _cmd_import(
        argparse.Namespace(files=files, by="demo", force=False, precompute=precompute, report_charts=False)
    )
    if code or external_file is None:
        return code or (_demo_history(result.truth_path) if precompute else 0)
    # the own hospital's registry holds no other hospital's patients: its history's signals would have no peers
    code = _cmd_external_import(argparse.Namespace(file=external_file))
    for path in model_files:  # the registry's published case-mix models, stored as the quality directorate would
        code = code or _cmd_external_import_model(argparse.Namespace(file=path))
    return code


def _own_hospital_demo(out: Path, files: list[Path], truth_path: Path) -> tuple[list[Path], Path, list[Path]]:
    """The demo as one hospital has it (vbhc.demo_external): its own patient rows in out/own_hospital and the
    other hospitals' figures, computed in a throw-away registry of every hospital's rows."""
    import datetime as dt
    import json
    import tempfile

    from sqlalchemy import create_engine

    from vbhc.demo_external import external_files, own_hospital_files
    from vbhc.ingest import import_files
    from vbhc.store import upgrade_schema

    own = json.loads(Path(truth_path).read_text(encoding="utf-8"))["own_hospital"]
    own_files = own_hospital_files(files, own, out / "own_hospital")
    with tempfile.TemporaryDirectory(prefix="vbhc-demo-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'every_hospital.db'}")
        try:
            upgrade_schema(engine)
            print("Computing the other hospitals' figures from a registry of every hospital ...")
            import_files(files, engine, imported_by="demo")
            figures, models = external_files(engine, own, out, published=dt.date.today())
        finally:
            engine.dispose()
    print(f"  own hospital's files: {own_files[0].parent}")
    print(f"  external figures: {figures}")
    if models:
        print(f"  published case-mix models: {len(models)} in {models[0].parent}")
    return own_files, figures, models


def _demo_history(truth_path: Path) -> int:
    """The demo's improvement history (vbhc.demo_history): targets, explained signals and two actions, written
    after the signals were detected on the stored results (so only when the views were precomputed)."""
    import json

    from vbhc.demo_history import benchmarks_from_store, write_history
    from vbhc.results import ResultStore
    from vbhc.store import get_engine

    engine = get_engine()
    if not ResultStore(engine).enabled:
        return 0
    truth = json.loads(Path(truth_path).read_text(encoding="utf-8"))
    conditions = sorted({o["condition"] for o in truth.get("outliers", []) if o["hospital"] == truth["own_hospital"]})
    print(write_history(engine, truth, benchmarks_from_store(engine, conditions)).summary())
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from vbhc.registry import condition_volumes
    from vbhc.store import row_counts

    print(f"Database: {_safe_url()}")
    for table, n in row_counts().items():
        print(f"  {table}: {n:,}")
    volumes = condition_volumes()
    if not volumes.empty:
        print(volumes.to_string(index=False))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    """Print or export the audit log. Whoever can run this has the database itself; the export is logged too."""
    import datetime as dt

    import pandas as pd

    from vbhc import audit
    from vbhc.store import get_engine, upgrade_schema

    engine = get_engine()
    upgrade_schema(engine)
    try:
        since = dt.date.fromisoformat(args.since) if args.since else None
    except ValueError:
        print(f"--since must be a date in the form YYYY-MM-DD, got {args.since!r}", file=sys.stderr)
        return 2
    df = audit.read(engine, since=since, user=args.user, action=args.action)
    if args.csv:
        data = audit.to_csv(df)
        from vbhc.reports.core import ReportError, write_report

        try:
            write_report(args.csv, data)  # whole or not at all, and never over a device
        except ReportError as exc:
            print(f"vbhc audit: {exc}", file=sys.stderr)
            return 2
        audit.record(
            engine,
            _whoami(),
            "export",
            detail={"what": "audit_log", "file": Path(args.csv).name, "events": len(df), "via": "cli"},
            sha256=audit.sha256_of(data),
        )
        print(f"{len(df):,} audit event(s) written to {args.csv}")
        return 0
    if df.empty:
        print("No audit events.")
        return 0
    shown = df.assign(at=df["at"].dt.strftime("%Y-%m-%d %H:%M:%S")).drop(columns=["id"])
    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(shown.to_string(index=False))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Write a report and record it in the audit log (who, file, sha256, conditions, format), as the dashboard
    records its downloads; a refused report is recorded too ("export_refused")."""
    from vbhc import audit
    from vbhc.reports import ReportError, make_report
    from vbhc.store import get_engine, upgrade_schema

    engine = get_engine()
    upgrade_schema(engine)
    who = args.as_user.strip() if args.as_user and args.as_user.strip() else _whoami()
    if bool(args.condition) == bool(args.all):
        refusal = ReportError("condition_or_all")
        audit.record(
            engine,
            who,
            "export_refused",
            detail={
                "what": "report",
                "format": args.format,
                "file": args.out.name,
                "reason": refusal.audited(),
                "via": "cli",
                "os_user": _whoami(),
            },
        )
        print(f"vbhc report: {refusal}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        path = make_report(
            args.out,
            fmt=args.format,
            conditions=None if args.all else args.condition,
            period=args.period,
            level=args.level,
            lang=args.lang,
            unit=args.unit,
            suppress_below=args.suppress_below,
            engine=engine,
            actor=who,
            via="cli",
            external=not args.no_external,
        )
    except ReportError as exc:
        print(f"vbhc report: {exc}", file=sys.stderr)
        return 2
    print(f"Report written to {path} in {time.perf_counter() - started:.1f} s (recorded in the audit log)")
    return 0


def _cmd_external_import(args: argparse.Namespace) -> int:
    """Store a file of external benchmark figures (vbhc.external): all rows or none, audited."""
    from vbhc.access import local_viewer
    from vbhc.external import ExternalRefused, import_figures
    from vbhc.store import get_engine, upgrade_schema

    engine = get_engine()
    upgrade_schema(engine)
    try:
        done = import_figures(engine, local_viewer(_whoami()), Path(args.file), file_name=Path(args.file).name)
    except ExternalRefused as exc:
        print(f"vbhc external import: {exc}; nothing was stored", file=sys.stderr)
        return 2
    replaced = f", replacing {done.replaced} older file(s) of this source and period" if done.replaced else ""
    print(f"{done.rows:,} external figure(s) stored from {Path(args.file).name}{replaced}")
    for warning in done.warnings:
        print(f"warning: {warning}")
    return 0


def _cmd_external_import_model(args: argparse.Namespace) -> int:
    """Store a published case-mix model (vbhc.external_models): checked as a whole, versioned, audited."""
    from vbhc.access import local_viewer
    from vbhc.external import ExternalRefused
    from vbhc.external_models import import_model
    from vbhc.store import get_engine, upgrade_schema

    engine = get_engine()
    upgrade_schema(engine)
    try:
        stored = import_model(engine, local_viewer(_whoami()), Path(args.file))
    except ExternalRefused as exc:
        print(f"vbhc external import-model: {exc}; nothing was stored", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vbhc external import-model: {args.file}: {exc.strerror or exc}; nothing was stored", file=sys.stderr)
        return 2
    model = stored.model
    older = f", superseding version {stored.superseded}" if stored.superseded else ""
    print(
        f"Case-mix model of {model.condition} / {model.indicator} ({model.source}, {model.period}) stored as "
        f"version {stored.version}{older}"
    )
    return 0


def _cmd_external_export(args: argparse.Namespace) -> int:
    """Write the own hospital's summary figures in the external format (small numbers withheld), audited."""
    import datetime as dt

    from vbhc import registry
    from vbhc.access import local_viewer
    from vbhc.catalog import default_catalog
    from vbhc.external import export_summary, grid_withheld
    from vbhc.indicators import compute_indicators, load_condition_data, restrict
    from vbhc.registry import parse_period
    from vbhc.reports.core import ReportError, check_writable, write_report
    from vbhc.reports.privacy import SuppressionRule
    from vbhc.reports.run import check_on_grid
    from vbhc.store import get_engine, upgrade_schema

    engine = get_engine()
    upgrade_schema(engine)
    catalog = default_catalog()
    problems = []
    if args.condition not in catalog.conditions:
        problems.append(f"unknown condition {args.condition!r}: choose from {', '.join(catalog.conditions)}")
    try:
        published = dt.date.fromisoformat(args.published) if args.published else dt.date.today()
    except ValueError:
        problems.append(f"--published must be a date (YYYY-MM-DD), got {args.published!r}")
    fmt = args.out.suffix.lower().lstrip(".")
    if fmt not in ("csv", "xlsx"):
        problems.append(f"--out must end in .csv or .xlsx, got {args.out.name!r}")
    try:
        check_writable(args.out)  # before the work, as `vbhc report`
    except ReportError as exc:
        problems.append(str(exc))
    units = registry.units(engine)
    own = args.hospital or sorted(set(units.loc[units["own_hospital"], "hospital"].astype(str)))
    if not own:
        problems.append("no own hospital in the registry: name it with --hospital")
    if problems:
        print(f"vbhc external export: {problems[0]}", file=sys.stderr)
        return 2
    rule = SuppressionRule.from_settings(args.suppress_below)
    try:
        # with small numbers withheld, all dates or one calendar year only (as `vbhc report`): a quarter or a range
        # of dates is the difference of such exports, and would give their withheld cells back
        check_on_grid([args.condition], parse_period(args.period), rule.threshold, engine, "export_off_grid")
        data = load_condition_data(args.condition, args.period, engine=engine)
    except ValueError as exc:  # ReportError is one: its English line
        print(f"vbhc external export: {exc}", file=sys.stderr)
        return 2
    # the own hospital as a comparison group of the registry: its table's expected values are the registry's
    # case-mix models recalibrated to it, and those models are fitted on every hospital's rows once (data.fitted)
    result = compute_indicators(restrict(data, hospitals=own), args.level)
    models = None
    if args.expected_from_registry:  # the collaboration's shared model, as fitted (not recalibrated to the own level)
        models = dict(data.fitted)
    content = export_summary(
        engine,
        local_viewer(_whoami()),
        result,
        source=args.source,
        published=published,
        period=args.period or "all",
        file_format=fmt,
        models=models,
        hospitals=own,
        rule=rule,
        file_name=args.out.name,
        # the cells `vbhc report` withholds in this period, over the grid of all dates and every year
        withheld=grid_withheld(engine, result, args.period, rule) if rule.active else None,
    )
    try:
        write_report(args.out, content)  # whole or not at all, as a report
    except ReportError as exc:
        print(f"vbhc external export: {exc}", file=sys.stderr)
        return 1
    print(f"Summary figures of {', '.join(own)} written to {args.out} (recorded in the audit log)")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from vbhc.store import get_engine, row_counts, upgrade_schema

    if not in_checkout():
        print(
            "vbhc serve runs the dashboard from a source checkout (streamlit_app.py, ui/ and views/ are not part "
            "of the installed package): run it from a clone of the repository (bash scripts/dashboard)",
            file=sys.stderr,
        )
        return 2

    problem = _config_problem()
    if problem is not None:
        print(f"vbhc serve: {problem}", file=sys.stderr)
        return 2
    upgrade_schema(get_engine())
    if row_counts()["care_cycles"] == 0 and not args.no_demo:
        print("The database is empty: generating the demo registry first (about a minute).")
        # the server prepares the indicator views in the background (its pages show the progress), so the first
        # page is not held up by precomputing them here
        code = _cmd_demo(
            argparse.Namespace(
                out=None, cycles=args.cycles, seed=args.seed, no_import=False, precompute=False, mode=args.demo_mode
            )
        )
        if code:
            return code
    command = serve_command(args.port, args.address, headless=args.headless)
    print(f"Starting the dashboard on http://{args.address}:{args.port}")
    return subprocess.call(command, cwd=PROJECT_ROOT)


def _config_problem() -> str | None:
    """The first mistake in the files the pages read on every run, as one line naming the file, the entry, the key
    and the problem (vbhc.access's loaders), or None. The roles mapping is read when viewers sign in through OpenID
    Connect (it must then be there) and checked wherever it is present; the published comparison groups always
    (quality, care teams and the local user pick among them too). A server started with a broken file ran, and
    every page told every viewer only that no role could be given or no group chosen."""
    from vbhc.access import AccessConfigError, load_access, load_comparison_groups
    from vbhc.settings import access_file

    try:
        if _signs_in_with_oidc() or access_file().is_file():
            load_access()
        load_comparison_groups()
    except AccessConfigError as exc:
        return str(exc)
    return None


def _signs_in_with_oidc() -> bool:
    """Whether the server will sign viewers in through OpenID Connect (ui.auth.mode): VBHC_AUTH, else an [auth]
    section in a Streamlit secrets file it reads (the checkout's .streamlit/ or the user's ~/.streamlit/)."""
    import tomllib

    from vbhc.settings import auth_mode

    chosen = auth_mode()
    if chosen is not None:
        return chosen == "oidc"
    for folder in (PROJECT_ROOT / ".streamlit", Path.home() / ".streamlit"):
        try:
            if "auth" in tomllib.loads((folder / "secrets.toml").read_text(encoding="utf-8")):
                return True
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # no such file, or one Streamlit itself reports
    return False


def serve_command(port: int, address: str, *, headless: bool) -> list[str]:
    """The Streamlit command `vbhc serve` runs (from PROJECT_ROOT): benchmarks/restart_speed.py starts the same.
    ui.serve is `streamlit run` that loads the pages' libraries while the first browser loads Streamlit's page."""
    command = [
        sys.executable,
        "-m",
        "ui.serve",
        "run",
        str(PROJECT_ROOT / "streamlit_app.py"),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--browser.gatherUsageStats",
        "false",
        # the code does not change while it serves: without a file watcher a new viewer's session costs the
        # server about half the CPU (each session otherwise sets up watches on every module of the project)
        "--server.fileWatcherType",
        "none",
        # no full garbage collection after every script run: with the indicator results in memory it takes
        # 0.3-0.8 s and holds the interpreter lock, so every click waited for it and so did every other viewer
        # (Python's own generational collection still runs; .streamlit/config.toml says the same)
        "--runner.postScriptGC",
        "false",
        # no "magic": Streamlit would rewrite each page's syntax tree before its first run in a process (165 ms of
        # CPU for the team page, on the restart's first page); no page has a bare expression for it to show
        "--runner.magicEnabled",
        "false",
    ]
    return [*command, "--server.headless", "true"] if headless else command


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url()).render_as_string(hide_password=True)


def _whoami() -> str:
    from vbhc.audit import os_user

    return os_user()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vbhc", description="Value-based healthcare outcomes dashboard")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create or upgrade the database schema")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("demo", help="generate the synthetic demo registry and import it")
    p.add_argument("--cycles", type=int, default=50_000, help="number of care cycles (default 50,000)")
    p.add_argument("--seed", type=int, default=20261124, help="random seed (same seed, same files)")
    p.add_argument("--out", help="folder for the generated files (default: data/demo)")
    p.add_argument("--no-import", action="store_true", help="only write the files")
    p.add_argument(
        "--no-precompute", dest="precompute", action="store_false", help="do not compute the indicator views after"
    )
    p.add_argument(
        "--mode",
        choices=DEMO_MODES,
        default="shared",
        help="shared: every hospital's patient rows (a collaboration, the default); own: the own hospital's patient "
        "rows and the other hospitals as external figures (a national registry's feedback)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("import", help="validate and import registry files (CSV/XLSX) as one batch")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--by", help="who imports (recorded in the import batch)")
    p.add_argument("--force", action="store_true", help="re-check files whose exact content was imported before")
    p.add_argument(
        "--no-precompute", dest="precompute", action="store_false", help="do not compute the indicator views after"
    )
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("precompute", help="compute and store the indicator views of the current data")
    p.add_argument("--years", action="store_true", help="also every year, whatever the registry's size")
    p.add_argument(
        "--charts-only",
        action="store_true",
        help="only render and store the charts of `vbhc report --all --format pdf` (a server's warm-up runs this)",
    )
    p.set_defaults(func=_cmd_precompute)

    p = sub.add_parser("status", help="show what the database holds")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("audit", help="print the audit log, or export it to CSV")
    p.add_argument("--since", help="only events from this date on (YYYY-MM-DD, UTC)")
    p.add_argument("--user", help="only events of this user")
    p.add_argument(
        "--action",
        choices=["view", "export", "export_refused", "import", "import_refused", "denied", "sign_in", "sign_out"],
    )
    p.add_argument("--csv", help="write the events to this CSV file instead of printing them")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("report", help="write the Excel workbook or PDF meeting report (quality directorate)")
    p.add_argument("--condition", action="append", help="condition id (repeat for several); or --all")
    p.add_argument("--all", action="store_true", help="every condition with care cycles in the period")
    p.add_argument("--period", help="2024, 2024Q2, 2024-03, 2022-2024 or 2024-01-01..2024-06-30 (default: all dates)")
    p.add_argument("--level", default="hospital", help="unit level: hospital, department or condition_team")
    p.add_argument("--format", default="xlsx", help="xlsx (workbook) or pdf (meeting report per condition team)")
    p.add_argument("--lang", default="nl", help="nl or en (default nl)")
    p.add_argument("--unit", help="PDF: the condition team's unit (default: the own hospital)")
    p.add_argument(
        "--suppress-below", type=int, default=None, help="small-number threshold (default VBHC_SUPPRESS_BELOW or 10)"
    )
    p.add_argument("--out", required=True, type=Path, help="file to write (written atomically)")
    p.add_argument(
        "--no-external",
        action="store_true",
        help="compare with the registry's units even where external benchmark figures are stored",
    )
    p.add_argument(
        "--as",
        dest="as_user",
        metavar="NAME",
        help="who asked for the report, as recorded in the audit log (default: VBHC_USER or the OS user); the report "
        "holds what the quality directorate may see whatever this person's role: a care team's or manager's file "
        "comes from the dashboard's download",
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("external", help="benchmark figures from outside: import them, or export the own summary")
    ext = p.add_subparsers(dest="external_command", required=True)
    q = ext.add_parser("import", help="validate and store a file of external figures (CSV/XLSX), all or nothing")
    q.add_argument("file", type=Path)
    q.set_defaults(func=_cmd_external_import)
    q = ext.add_parser(
        "import-model",
        help="validate and store a published case-mix model of one indicator (CSV/XLSX); a newer import of the same "
        "source, condition, indicator and definition version supersedes the older, which stays readable",
    )
    q.add_argument("file", type=Path)
    q.set_defaults(func=_cmd_external_import_model)
    q = ext.add_parser("export", help="write the own hospital's summary figures in the same format")
    q.add_argument("--condition", required=True, help="condition id")
    q.add_argument("--period", help="2024, 2024Q2, 2022-2024, ... (default: all dates)")
    q.add_argument("--level", default="hospital", help="unit level: hospital or department")
    q.add_argument("--hospital", action="append", help="own hospital code (default: the registry's own hospital)")
    q.add_argument("--source", required=True, help="the name partners see, e.g. 'UMC X 2024'")
    q.add_argument("--published", default=None, help="publication date YYYY-MM-DD (default: today)")
    q.add_argument(
        "--expected-from-registry",
        action="store_true",
        help="expected counts from the case-mix model of every hospital in this registry (a shared model)",
    )
    q.add_argument(
        "--suppress-below", type=int, default=None, help="small-number threshold (default VBHC_SUPPRESS_BELOW or 10)"
    )
    q.add_argument("--out", required=True, type=Path, help="file to write: .csv or .xlsx")
    q.set_defaults(func=_cmd_external_export)

    p = sub.add_parser("serve", help="start the dashboard (creates the demo registry on first run)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="localhost")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--no-demo", action="store_true", help="do not generate demo data into an empty database")
    p.add_argument("--cycles", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument(
        "--demo-mode",
        choices=DEMO_MODES,
        default="shared",
        help="the demo's mode (as vbhc demo --mode): shared patient rows, or own hospital plus external figures",
    )
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command `argv` (default: this process's command line, as the `vbhc` console script and `python -m
    vbhc.cli` call it: the process ends when it returns, see _before_exit)."""
    try:
        return _main(argv)
    finally:
        if argv is None:
            _before_exit()


def _before_exit() -> None:
    """Freeze the garbage collector's view of every object alive now (gc.freeze): the process ends next.

    Why: at exit the interpreter collects cyclic garbage several times while it tears its modules down, each a
    traversal of every object of pandas, SQLAlchemy, SQLModel, psycopg and the rest (~190,000 after an import):
    ~0.5 s of CPU (several seconds of wall on a busy host) at the end of every `vbhc` command. Frozen objects are
    left out of those collections: each is still released when its last reference goes (only cycles among them
    are left to the operating system), and every exit handler runs. Only for the process's own command line: a
    caller of main([...]) (tests, benchmarks, scripts) goes on, and should go on collecting what it drops."""
    gc.freeze()


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "cycles", 1) is not None and getattr(args, "cycles", 1) < 1:
        print("--cycles must be at least 1", file=sys.stderr)
        return 2
    from vbhc.settings import SettingError, check_settings

    try:
        check_settings()
        return args.func(args)
    except SettingError as exc:
        print(f"vbhc {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; an unfinished import is rolled back", file=sys.stderr)
        return 130
    except Exception as exc:  # no traceback reaches a user; VBHC_DEBUG=1 shows it to a developer
        if os.environ.get("VBHC_DEBUG") == "1":
            raise
        print(f"vbhc {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: Exception) -> str:
    """What went wrong, in one line; never a database error's SQL or parameters (they may carry values)."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        return f"the database refused the request ({type(exc).__name__}); nothing was changed"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    return f"unexpected error ({type(exc).__name__}); run again with VBHC_DEBUG=1 for the details"


if __name__ == "__main__":
    sys.exit(main())
