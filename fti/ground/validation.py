"""Great Expectations at the pipeline boundaries.

Each process builds one ephemeral context (parallel tasks never share a config file) and each
validation adds its suite to it and removes it after; it renders its Data Docs page into a
per-run folder, and raises
:class:`ValidationFailed` naming every failed expectation, its row count and example values.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class BadInput(ValueError):
    """Data a pipeline cannot use as delivered (unreadable, a column without a usable type);
    retrying cannot fix it, so a task fails at once (``fti.ground.runs.fail_fast``)."""


class ValidationFailed(RuntimeError):
    """A data boundary check failed; the message lists what failed."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.describe())


@dataclass
class FailedExpectation:
    """One expectation that failed, with what it found."""

    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    unexpected_count: int | None
    element_count: int | None
    examples: list[Any]
    observed: Any = None
    error: str | None = None
    #: the check's name (``meta["check"]``, else the expectation type and column) and its rule
    check: str = ""
    description: str | None = None
    #: ``halt`` (nothing published, nothing downstream) or ``warn`` (the day proceeds)
    severity: str = "halt"

    def describe(self) -> str:
        """The failure as one line: its severity, the check, the expectation, its arguments
        and what was found."""
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.kwargs.items() if v is not None)
        rule = f" ({self.description})" if self.description else ""
        what = f"[{self.severity}] {self.check}{rule}: {self.expectation}({args})"
        if self.error:
            return f"{what}: could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            share = (
                f" ({self.unexpected_count / self.element_count:.1%})" if self.element_count else ""
            )
            rows = f"{self.unexpected_count} of {self.element_count} rows{share}"
            examples = f", e.g. {self.examples[:5]!r}" if self.examples else ""
            return f"{what}: {rows}{examples}"
        return f"{what}: observed {self.observed!r}"


@dataclass
class ValidationReport:
    """The outcome of one validation: what passed, what failed, and its HTML report."""

    boundary: str
    success: bool
    evaluated: int
    rows: int
    failed: list[FailedExpectation] = field(default_factory=list)
    report_page: Path | None = None

    @property
    def halted(self) -> list[FailedExpectation]:
        """The failures that stop the data (severity ``halt``)."""
        return [f for f in self.failed if f.severity == "halt"]

    @property
    def warned(self) -> list[FailedExpectation]:
        """The failures that only warn (severity ``warn``)."""
        return [f for f in self.failed if f.severity == "warn"]

    def describe(self) -> str:
        """Every failure, one per line, under a line that counts them."""
        if self.halted:
            head = (
                f"{self.boundary}: {len(self.halted)} of {self.evaluated} expectations failed "
                f"on {self.rows} rows"
            )
        elif self.warned:
            head = (
                f"{self.boundary}: {len(self.warned)} of {self.evaluated} expectations warned "
                f"on {self.rows} rows (none halts)"
            )
        else:
            head = f"{self.boundary}: all {self.evaluated} expectations passed on {self.rows} rows"
        order = [*self.halted, *self.warned]
        lines = [head, *(f"  - {f.describe()}" for f in order)]
        if self.report_page:
            lines.append(f"  report: {self.report_page}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able values (``result.json``)."""
        return {
            "boundary": self.boundary,
            "success": self.success,
            "evaluated": self.evaluated,
            "rows": self.rows,
            "failed": [f.describe() for f in self.halted],
            "warned": [f.describe() for f in self.warned],
            "report": str(self.report_page) if self.report_page else None,
        }


def _show(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else repr(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


_lock = threading.Lock()
_WARN = ("warning", "FailureSeverity.WARNING", "info", "FailureSeverity.INFO")


@functools.cache
def _context():
    """One ephemeral GX context per process (nothing on disk: parallel tasks share no config
    file); building one costs a noticeable part of a validation, so it is built once."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@functools.cache
def _page_view():
    """One Data Docs page view per process: its Jinja environment caches the parsed templates
    (a new view per page parses them all again)."""
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView()


def check_name(expectation: Any) -> str:
    """An expectation's check name: ``meta["check"]`` where the suite names it, else its
    type and column (``expect_column_values_to_not_be_null(carrier)``)."""
    meta = getattr(expectation, "meta", None) or {}
    if meta.get("check"):
        return str(meta["check"])
    column = getattr(expectation, "column", None)
    kind = getattr(expectation, "expectation_type", type(expectation).__name__)
    return f"{kind}({column})" if column else kind


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def with_severity(
    expectations: Sequence[Any], warn: Sequence[str] = (), halt: Sequence[str] = ()
) -> list[Any]:
    """``expectations`` with their severity set by configuration: a check whose name matches
    a ``warn`` pattern warns, one matching a ``halt`` pattern halts (``halt`` wins); the rest
    keep the suite's default (GX's ``severity``: critical halts, warning warns)."""
    from great_expectations.expectations.metadata_types import FailureSeverity

    out = []
    for e in expectations:
        name = check_name(e)
        if _matches(name, halt):
            e = e.copy(update={"severity": FailureSeverity.CRITICAL})
        elif _matches(name, warn):
            e = e.copy(update={"severity": FailureSeverity.WARNING})
        out.append(e)
    return out


def validate_frame(
    df: pd.DataFrame,
    *,
    boundary: str,
    expectations: Sequence[Any],
    report_dir: Path | None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate ``df`` against ``expectations`` (``gxe.*`` objects), keeping an HTML report.

    ``boundary`` names the data in messages (e.g. ``raw/flights 2013-01-05``). With
    ``report_dir``, the validation's Data Docs page (``report.html``, rendered by GX's own
    renderer) and a JSON summary (``result.json``) are written there. A failed expectation of
    severity ``warning`` is reported but does not fail the validation.
    """
    import great_expectations as gx

    context = _context()
    # unique names: one context serves every validation of the process, each removed after
    base = "".join(c if c.isalnum() else "_" for c in boundary).strip("_") or "data"
    name = f"{base}_{uuid.uuid4().hex[:8]}"
    with _lock:
        batch_definition = (
            context.data_sources.add_pandas(name=f"{name}_source")
            .add_dataframe_asset(name=name)
            .add_batch_definition_whole_dataframe(name="partition")
        )
        # copies: GX binds an expectation to the suite it is added to, and a caller may
        # validate several frames with the same expectations
        suite = context.suites.add(
            gx.ExpectationSuite(
                name=name, expectations=[e.copy(update={"id": None}) for e in expectations]
            )
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        try:
            # pass or fail first (about a third cheaper than the summary); only a partition that
            # fails is validated again for the counts and examples its error message shows
            validation = definition.run(
                batch_parameters={"dataframe": df}, result_format={"result_format": "BOOLEAN_ONLY"}
            )
            if not all(r.success for r in validation.results):
                validation = definition.run(
                    batch_parameters={"dataframe": df},
                    result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10},
                )
        finally:
            context.validation_definitions.delete(name)
            context.suites.delete(name)
            context.data_sources.delete(f"{name}_source")

    failed = []
    for r in validation.results:
        if r.success:
            continue
        cfg = r.expectation_config
        # a row condition only selects the rows a check reads (one table of a frame of several)
        hidden = ("batch_id", "row_condition", "condition_parser")
        kwargs = {k: v for k, v in cfg.kwargs.items() if k not in hidden}
        res = r.result or {}
        error = None
        column = kwargs.get("column")
        if column is not None and column not in df.columns:
            error = f"column {column!r} is missing"
        elif r.exception_info and r.exception_info.get("raised_exception"):
            error = str(r.exception_info.get("exception_message")).splitlines()[0]
        observed = _jsonable(res.get("observed_value"))
        check = (cfg.meta or {}).get("check") or (f"{cfg.type}({column})" if column else cfg.type)
        severity = "warn" if str(getattr(cfg, "severity", "critical")) in _WARN else "halt"
        if cfg.type == "expect_table_columns_to_match_set" and isinstance(observed, list):
            missing = sorted(set(kwargs.get("column_set") or []) - set(observed))
            observed = {"missing columns": missing} if missing else observed
        failed.append(
            FailedExpectation(
                expectation=cfg.type,
                column=column,
                kwargs=kwargs,
                unexpected_count=res.get("unexpected_count"),
                element_count=res.get("element_count"),
                examples=[_jsonable(v) for v in res.get("partial_unexpected_list") or []],
                observed=observed,
                error=error,
                check=check,
                description=getattr(cfg, "description", None),
                severity=severity,
            )
        )
    report_page = None
    listed = findings(failed, df)
    if report_dir is not None:
        # A Data Docs *site* rebuilt from an ephemeral context deletes the pages of earlier
        # runs, and each site copies ~4 MB of static assets: one rendered page per run instead.
        from great_expectations.render.renderer import ValidationResultsPageRenderer

        report_dir.mkdir(parents=True, exist_ok=True)
        report_page = report_dir / "report.html"
        page = ValidationResultsPageRenderer().render(validation)
        report_page.write_text(_with_findings(_page_view().render(page), boundary, listed))
    report = ValidationReport(
        boundary=boundary,
        success=not any(f.severity == "halt" for f in failed),
        evaluated=len(validation.results),
        rows=len(df),
        failed=failed,
        report_page=report_page,
    )
    if report_dir is not None:
        (report_dir / "result.json").write_text(
            json.dumps({**report.to_dict(), "findings": listed}, indent=2, default=str)
        )
    if raise_on_failure and not report.success:
        raise ValidationFailed(report)
    return report


#: the columns of a comparison frame (``fti.ground.history.frame``): one metric a row, with the
#: band it was held to and the reference days the band came from
BAND_COLUMNS = ("metric", "observed", "low", "high", "reference")


def findings(failed: Sequence[FailedExpectation], df: pd.DataFrame) -> list[dict[str, Any]]:
    """Each failed or warned check as ``{check, severity, observed, expected, reference}``.

    On a comparison frame (the day against its history), one entry per metric outside its
    band: the observed value, the band, and the reference days it came from. Otherwise the
    check's own finding (its observed value, or how many rows broke it and examples) next to
    what it expects (its arguments).
    """
    out: list[dict[str, Any]] = []
    banded = all(c in df.columns for c in BAND_COLUMNS)
    for f in failed:
        if banded and f.column in df.columns:
            for _, row in df[df[f.column].notna()].iterrows():
                high = row["high"]
                hi = "" if high is None or (isinstance(high, float) and math.isnan(high)) else high
                table = row["table"] if "table" in df.columns and row["table"] else ""
                out.append(
                    {
                        "check": f.check,
                        "severity": f.severity,
                        "metric": f"{table}: {row['metric']}" if table else row["metric"],
                        "observed": _number(row["observed"]),
                        "expected": f"{_number(max(row['low'], 0))}..{_number(hi)}",
                        "median": _number(row.get("median")),
                        "reference": row["reference"],
                    }
                )
            continue
        if f.error:
            observed = f.error
        elif f.unexpected_count is not None:
            observed = f"{f.unexpected_count} of {f.element_count} rows, e.g. {f.examples[:5]}"
        else:
            observed = _show(f.observed)
        expected = ", ".join(
            f"{k}={_show(v)}" for k, v in f.kwargs.items() if v is not None and k != "column"
        )
        out.append(
            {
                "check": f.check,
                "severity": f.severity,
                "metric": f.column or "",
                "observed": observed,
                "expected": f.description or expected or f.expectation,
                "median": "",
                "reference": expected if f.description else "the suite's rule",
            }
        )
    return out


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def _with_findings(page: str, boundary: str, listed: list[dict[str, Any]]) -> str:
    """The Data Docs page with a table of the failed and warned checks at its top: what each
    observed next to the band it expected and the days that band came from (GX's own page
    lists the results, not the band nor where it came from)."""
    import html

    if not listed:
        return page
    cells = ("check", "severity", "metric", "observed", "expected", "median", "reference")
    head = "".join(f"<th>{c}</th>" for c in cells)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in cells) + "</tr>"
        for row in listed
    )
    section = (
        '<section id="fti-findings" class="container-fluid" style="padding:1em">'
        f"<h3>{html.escape(boundary)}: failed and warned checks</h3>"
        '<table class="table table-sm table-bordered">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )
    at = page.find("<body")
    if at < 0:
        return section + page
    close = page.find(">", at) + 1
    return page[:close] + section + page[close:]
